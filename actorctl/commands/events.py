"""`actorctl events`: stored and live events, with no gap and no duplicate."""

from __future__ import annotations

import datetime
import json
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

from actorctl.client import ClientError
from actorctl.common import client_of, container_id_arg, guard, parse_time

if TYPE_CHECKING:
    from actors.wire.events import EventRecord

__all__ = ["events"]


def format_event(event: EventRecord) -> str:
    moment = datetime.datetime.fromtimestamp(event["timestamp"]).isoformat(timespec="milliseconds")
    text = f"{event['seq']:>6} {moment} {event['type']:<16} {event['id']}"
    if event.get("pid") is not None:
        text += f" pid={event['pid']}"
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
@click.option("--id", "container_id", metavar="ID", callback=container_id_arg, help="Only events of this container.")
@click.option("--no-follow", is_flag=True, help="Print the stored events and exit.")
@click.pass_context
def events(ctx: click.Context, as_json: bool, after: int | None, since: str | None,
           container_id: str | None, no_follow: bool) -> None:
    """Print events: the stored ones, then live ones as they happen.

    Without --after or --since only new events are followed; --no-follow prints
    what is stored and exits.
    """
    from actorctl.events import follow, stored  # zmq and msgpack: not for --help
    from actors.wire.events import EVENT_FIELDS

    client = client_of(ctx)
    since_ts = parse_time(since) if since else None
    start = after if after is not None else (0 if since_ts is not None or no_follow else None)

    def emit(stream: Iterator[EventRecord]) -> None:
        for event in stream:
            shown = {key: event.get(key) for key in EVENT_FIELDS if key in event or key != "attempt"}
            click.echo(json.dumps(shown) if as_json else format_event(event))
            sys.stdout.flush()

    try:
        if no_follow:
            emit(stored(client, start or 0, since_ts, container_id))
            return
        info = client.call("version")
        if start is None:
            start = client.call("events.replay", {"after": 2**62})["last_seq"]
        emit(follow(client, info["events_address"], start, since_ts, container_id))
    except ClientError as exc:
        raise guard(exc) from None
    except KeyboardInterrupt:
        pass
