"""`actorctl events`: stored and live events, with no gap and no duplicate."""

from __future__ import annotations

import datetime
import json
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import click

from actorctl.client import Client, Event, NotFound
from actorctl.common import client_of, complete_container_id, container_id_arg, failures, parse_label_filter, parse_time
from actorctl.printable import printable

__all__ = ["events"]

EVENT_TYPE_NAMES = ("start-container", "start-process", "exit", "oom", "pause", "resume", "restart")
"""actors.wire.events.EVENT_TYPES, spelled here so that --help imports no wire codec."""


class LabelMatcher:
    """Whether a container's labels match `wanted` ((key, value or None) pairs), asking the daemon
    once per container."""

    def __init__(self, client: Client, wanted: list[tuple[str, str | None]]) -> None:
        self.client = client
        self.wanted = wanted
        self.known: dict[str, bool] = {}

    def matches(self, event: Event) -> bool:
        container_id = event.container_id
        if event.type == "start-container":
            self.known.pop(container_id, None)  # an id used again may have other labels
        if container_id not in self.known:
            try:
                labels = self.client.container(container_id).labels
            except NotFound:
                return False  # gone: perhaps not for good (asked again at its next event)
            self.known[container_id] = all(key in labels and (value is None or labels[key] == value)
                                           for key, value in self.wanted)
        return self.known[container_id]


def format_event(event: Mapping[str, Any]) -> str:
    moment = datetime.datetime.fromtimestamp(event["timestamp"]).isoformat(timespec="milliseconds")
    text = f"{event['seq']:>6} {moment} {printable(event['type']):<16} {printable(event['id'])}"
    process = event.get("pid")
    if process is not None:
        text += f" pid={printable(process)}"
    if event.get("status") is not None:
        text += f" status={event['status']}"
    if event.get("attempt") is not None:
        text += f" attempt={event['attempt']}"
    return text


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, flushed per event.")
@click.option("--after", type=click.IntRange(0), default=None, metavar="SEQ",
              help="Start after this sequence number (0: everything stored).")
@click.option("--since", metavar="TIME", help="Only events at or after TIME (unix time, ISO time, or 5m ago).")
@click.option("--id", "container_id", metavar="ID", callback=container_id_arg, help="Only events of this container.",
              shell_complete=complete_container_id)
@click.option("--type", "types", multiple=True, type=click.Choice(EVENT_TYPE_NAMES), metavar="TYPE",
              help=f"Only events of this type (repeatable): {', '.join(EVENT_TYPE_NAMES)}.")
@click.option("--filter", "filters", multiple=True, metavar="label=KEY[=VALUE]",
              help="Only events of containers with this label (repeatable; all must match). The labels are "
                   "those of the containers the daemon knows while the events are read: events of a "
                   "container gone by then are not shown.")
@click.option("--no-follow", is_flag=True, help="Print the stored events and exit.")
@click.pass_context
def events(ctx: click.Context, as_json: bool, after: int | None, since: str | None,
           container_id: str | None, types: tuple[str, ...], filters: tuple[str, ...], no_follow: bool) -> None:
    """Print events: the stored ones, then live ones as they happen.

    Without --after or --since only new events are followed; --no-follow prints
    what is stored and exits. --json prints one object per line: seq, type, id,
    pid, status, timestamp, boot (and attempt, for a restart).

    \b
    Examples:
      actorctl events --type exit --filter label=tier=web
      actorctl events --after 0 --no-follow --json --id web1
    """
    from actors.wire.events import EVENT_FIELDS  # msgpack: not for --help

    labels = []
    for item in filters:
        key, sep, value = item.partition("=")
        if key != "label" or not sep:
            raise click.BadParameter(f"{item!r}: filter by label=KEY or label=KEY=VALUE", param_hint="--filter")
        labels.append(parse_label_filter(value))
    client = client_of(ctx)
    labelled = LabelMatcher(client, labels) if labels else None
    since_ts = parse_time(since) if since else None
    start = after if after is not None else (0 if since_ts is not None or no_follow else None)

    def emit(stream: Iterator[Event]) -> None:
        for event in stream:
            if labelled is not None and not labelled.matches(event):
                continue
            record = event.raw
            shown = {key: record.get(key) for key in EVENT_FIELDS if key in record or key != "attempt"}
            click.echo(json.dumps(shown) if as_json else format_event(record))
            sys.stdout.flush()

    try:
        with failures():
            emit(client.events(start, container_id=container_id, types=types or None, since=since_ts,
                               follow=not no_follow))
    except KeyboardInterrupt:
        pass
