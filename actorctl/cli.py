"""`actorctl`: the command-line client of actord.

Exit codes: 0 ok, 1 the daemon refused or failed, 2 usage error,
3 cannot reach the daemon, 4 timed out.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import signal
import sys
import time
from typing import Any, Callable, Iterator, NoReturn

import click

from actorctl.bundle import create_bundle
from actorctl.client import DEFAULT_ADDRESS, CallTimeout, Client, DaemonError, Unreachable
from actorctl.events import follow, stored
from actors import __version__
from actors.wire.api import CONTAINER_ID

__all__ = ["main"]

EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_TIMEOUT = 1, 3, 4


class Failure(click.ClickException):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def call(ctx: click.Context, method: str, params: dict[str, Any] | None = None) -> Any:
    client: Client = ctx.find_object(Client)
    try:
        return client.call(method, params)
    except DaemonError as exc:
        raise Failure(exc.message, EXIT_REFUSED) from None
    except Unreachable as exc:
        raise Failure(str(exc), EXIT_UNREACHABLE) from None
    except CallTimeout as exc:
        raise Failure(str(exc), EXIT_TIMEOUT) from None


def parse_signal(value: str) -> int:
    """`TERM`, `SIGTERM`, `term` or `15`."""
    if value.isdigit():
        return int(value)
    name = value.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise click.BadParameter(f"unknown signal {value!r}") from None


def parse_time(value: str) -> float:
    """A unix timestamp, an ISO 8601 time, or a duration ago such as `30s`, `5m`, `2h`."""
    try:
        return float(value)
    except ValueError:
        pass
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", value)
    if match:
        scale = {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
        return time.time() - float(match.group(1)) * scale
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a timestamp, an ISO time or a duration like 5m") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.timestamp()


def container_id_arg(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not CONTAINER_ID.match(value):
        raise click.BadParameter(
            f"{value!r}: ids are 1 to 64 of A-Z a-z 0-9 _ . -, starting with a letter or digit"
        )
    return value


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--address", envvar="ACTORD_ADDRESS", default=DEFAULT_ADDRESS, show_default=True,
              show_envvar=True, help="The daemon's control socket.")
@click.option("--timeout", type=click.FloatRange(0.01, 86400), default=10.0, show_default=True,
              help="Seconds to wait for the daemon's answer.")
@click.version_option(__version__, prog_name="actorctl")
@click.pass_context
def cli(ctx: click.Context, address: str, timeout: float) -> None:
    """Drive actord: start and signal containers, list them, follow events.

    \b
    Exit codes: 0 ok, 1 the daemon refused or failed (message on stderr),
    2 usage error, 3 cannot reach the daemon, 4 timed out.
    """
    ctx.obj = Client(address, timeout)
    ctx.call_on_close(ctx.obj.close)


@cli.command()
@click.pass_context
def version(ctx: click.Context) -> None:
    """Show the client's and the daemon's versions."""
    info = call(ctx, "version")
    click.echo(f"actorctl {__version__}")
    click.echo(f"actord {info['version']} (protocol {info['protocol']}, pid {info['pid']})")
    click.echo(f"runtime {info['runtime']}")
    click.echo(f"state dir {info['state_dir']}")


@cli.group()
def containers() -> None:
    """Start, list, inspect and signal containers."""


@containers.command("start")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Attach a label (repeatable).")
@click.argument("container_id", metavar="ID", callback=container_id_arg)
@click.argument("bundle", type=click.Path(file_okay=False))
@click.pass_context
def containers_start(ctx: click.Context, labels: tuple[str, ...], container_id: str, bundle: str) -> None:
    """Start container ID from the OCI bundle directory BUNDLE.

    Returns once the container's init process runs, and prints its host pid.
    """
    label_map = {}
    for label in labels:
        key, sep, value = label.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{label!r} is not KEY=VALUE", param_hint="--label")
        label_map[key] = value
    result = call(ctx, "containers.start",
                  {"id": container_id, "bundle": os.path.abspath(bundle), "labels": label_map})
    init = next((p for p in result["processes"] if p["pid"] == "init"), None)
    click.echo(f"{container_id} started" + (f" (pid {init['system_pid']})" if init else ""))


@containers.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def containers_list(ctx: click.Context, as_json: bool) -> None:
    """List running and paused containers."""
    result = call(ctx, "containers.list")
    if as_json:
        print_json(result)
        return
    rows = [("ID", "STATUS", "PID", "PROCESSES", "BUNDLE")]
    for container in result:
        init = next((p for p in container["processes"] if p["pid"] == "init"), {})
        rows.append((container["id"], container["status"], str(init.get("system_pid", "-")),
                     str(len(container["processes"])), container["bundle"]))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4])


@containers.command("state")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.argument("container_id", metavar="ID", callback=container_id_arg)
@click.pass_context
def containers_state(ctx: click.Context, as_json: bool, container_id: str) -> None:
    """Show one container and its processes."""
    result = call(ctx, "containers.state", {"id": container_id})
    if as_json:
        print_json(result)
        return
    click.echo(f"id:      {result['id']}\nstatus:  {result['status']}\nbundle:  {result['bundle']}")
    for key, value in sorted(result["labels"].items()):
        click.echo(f"label:   {key}={value}")
    for process in result["processes"]:
        click.echo(f"process: {process['pid']} pid={process['system_pid']} shim={process['shim_pid']} "
                   f"args={' '.join(process['args'])}")


@containers.command("kill")
@click.option("--signal", "-s", "signame", default="TERM", show_default=True,
              help="Signal name (TERM, SIGKILL) or number.")
@click.option("--pid", "process_id", metavar="NAME", help="Signal this process of the container (default: init).")
@click.option("--all", "every", is_flag=True, help="Signal every process in the container.")
@click.argument("container_id", metavar="ID", callback=container_id_arg)
@click.pass_context
def containers_kill(ctx: click.Context, signame: str, process_id: str | None, every: bool,
                    container_id: str) -> None:
    """Send a signal to a container's init (or one process, or all of them)."""
    if every and process_id:
        raise click.UsageError("--pid and --all exclude each other")
    try:
        signum = parse_signal(signame)
    except click.BadParameter as exc:
        exc.param_hint = "--signal"
        raise
    params: dict[str, Any] = {"id": container_id, "signal": signum, "all": every}
    if process_id:
        params["pid"] = process_id
    call(ctx, "containers.signal", params)


def format_event(event: dict[str, Any]) -> str:
    moment = datetime.datetime.fromtimestamp(event["timestamp"]).isoformat(timespec="milliseconds")
    text = f"{event['seq']:>6} {moment} {event['type']:<16} {event['id']}"
    if event.get("pid") is not None:
        text += f" pid={event['pid']}"
    if event.get("status") is not None:
        text += f" status={event['status']}"
    return text


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, flushed per event.")
@click.option("--after", type=click.IntRange(0), default=None, metavar="SEQ",
              help="Start after this sequence number.")
@click.option("--since", metavar="TIME", help="Only events at or after TIME (unix time, ISO time, or 5m ago).")
@click.option("--id", "container_id", metavar="ID", help="Only events of this container.")
@click.option("--no-follow", is_flag=True, help="Print the stored events and exit.")
@click.pass_context
def events(ctx: click.Context, as_json: bool, after: int | None, since: str | None,
           container_id: str | None, no_follow: bool) -> None:
    """Print events: the stored ones, then live ones as they happen.

    Without --after or --since, only new events are shown (add --after 0 for all stored ones).
    """
    client: Client = ctx.find_object(Client)
    if container_id is not None:
        container_id_arg(ctx, ctx.command.params[0], container_id)
    since_ts = parse_time(since) if since else None
    start = after if after is not None else (0 if since_ts is not None or no_follow else None)

    def emit(stream: Iterator[dict[str, Any]]) -> None:
        for event in stream:
            shown = {key: event.get(key) for key in ("seq", "type", "id", "pid", "status", "timestamp")}
            click.echo(json.dumps(shown) if as_json else format_event(event))
            sys.stdout.flush()

    def guarded(action: Callable[[], None]) -> None:
        try:
            action()
        except DaemonError as exc:
            raise Failure(exc.message, EXIT_REFUSED) from None
        except Unreachable as exc:
            raise Failure(str(exc), EXIT_UNREACHABLE) from None
        except CallTimeout as exc:
            raise Failure(str(exc), EXIT_TIMEOUT) from None

    if no_follow:
        guarded(lambda: emit(stored(client, start or 0, since_ts, container_id)))
        return
    info: dict[str, Any] = {}
    guarded(lambda: info.update(client.call("version")))
    if start is None:
        result: dict[str, Any] = {}
        guarded(lambda: result.update(client.call("events.replay", {"after": 2**62})))
        start = result["last_seq"]
    try:
        guarded(lambda: emit(follow(client, info["events_address"], start, since_ts, container_id)))
    except KeyboardInterrupt:
        pass


@cli.group()
def bundle() -> None:
    """Make OCI bundles to try actord with."""


@bundle.command("create")
@click.argument("directory", type=click.Path(file_okay=False))
@click.argument("args", nargs=-1)
def bundle_create(directory: str, args: tuple[str, ...]) -> None:
    """Create a busybox bundle in DIRECTORY whose process runs ARGS (default: sleep 3600).

    \b
    Example:  actorctl bundle create ./bundle -- sh -c 'echo hello; sleep 60'
    """
    try:
        create_bundle(directory, list(args) or ["sleep", "3600"])
    except (OSError, RuntimeError) as exc:
        raise Failure(str(exc), EXIT_REFUSED) from None
    click.echo(f"bundle ready in {os.path.abspath(directory)}")


def main() -> NoReturn:
    sys.exit(cli(prog_name="actorctl", standalone_mode=True))
