"""What every actorctl command shares: calling the daemon, exit codes, argument parsing."""

from __future__ import annotations

import datetime
import json
import re
import signal
import time
from typing import Any

import click

from actorctl.client import Client, ClientError, DaemonError, Unreachable

__all__ = ["EXIT_REFUSED", "EXIT_TIMEOUT", "EXIT_UNREACHABLE", "Failure", "NoAnswer", "NoDaemon", "call",
           "container_id_arg", "format_duration", "guard", "parse_signal", "parse_time", "print_json"]

EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_TIMEOUT = 1, 3, 4


class Failure(click.ClickException):
    """The daemon refused or failed (or so did the command): exit 1 with the message."""

    exit_code = EXIT_REFUSED


class NoDaemon(Failure):
    """The daemon cannot be reached: exit 3."""

    exit_code = EXIT_UNREACHABLE


class NoAnswer(Failure):
    """The daemon did not answer in time: exit 4."""

    exit_code = EXIT_TIMEOUT


def guard(error: ClientError) -> Failure:
    """The CLI failure (and exit code) for a client error."""
    if isinstance(error, DaemonError):
        return Failure(error.message)
    if isinstance(error, Unreachable):
        return NoDaemon(str(error))
    return NoAnswer(str(error))


def client_of(ctx: click.Context) -> Client:
    client = ctx.find_object(Client)
    assert client is not None, "the root command makes the client"
    return client


def call(ctx: click.Context, method: str, params: dict[str, Any] | None = None) -> Any:
    try:
        return client_of(ctx).call(method, params)
    except ClientError as exc:
        raise guard(exc) from None


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
        raise click.BadParameter(f"unknown signal {value!r}", param_hint="--signal") from None


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
        raise click.BadParameter(f"{value!r} is not a timestamp, an ISO time or a duration like 5m",
                                 param_hint="--since") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.timestamp()


def container_id_arg(ctx: click.Context | None, param: click.Parameter | None, value: str) -> str:
    from actors.wire.api import CONTAINER_ID  # with the wire codec (msgpack): not for --help

    if value is not None and not CONTAINER_ID.match(value):
        raise click.BadParameter(
            f"{value!r}: ids are 1 to 64 of A-Z a-z 0-9 _ . -, starting with a letter or digit"
        )
    return value


def format_duration(seconds: float) -> str:
    """`3d 4h`, `2h 05m`, `4m 10s`, `12s`: the two largest units."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True))
