"""What every actorctl command shares: calling the daemon, exit codes, argument parsing."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from actorctl.client import DEFAULT_ADDRESS, Client, ClientError, DaemonError, Unreachable
from actorctl.printable import printable

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

__all__ = ["EXIT_CANNOT_EXECUTE", "EXIT_CTL_ERROR", "EXIT_NOT_FOUND", "EXIT_REFUSED", "EXIT_TIMEOUT",
           "EXIT_UNREACHABLE", "AttachFailure", "AttachableCommand", "CannotExecute", "ExecutableNotFound",
           "Failure", "NoAnswer", "NoDaemon", "attach_failure", "client_of", "complete_container_id",
           "container_id_arg", "failures", "format_duration", "guard", "parse_label_filter", "parse_signal",
           "parse_time", "print_json", "print_json_line"]

EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_TIMEOUT = 1, 3, 4
EXIT_CTL_ERROR, EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND = 125, 126, 127
"""With --attach, as `docker run`: actorctl's own failures, so that they never look like the process's status."""

_EXEC_FAILED = re.compile(r"unable to start container process: exec: .*?: (.*)\Z", re.DOTALL)
"""runc's error when the process's executable cannot be run; the reason after the last colon."""


class Failure(click.ClickException):
    """The daemon refused or failed (or so did the command): exit 1 with the message, escaped
    (it may echo a bundle path, a label or a runtime's output)."""

    exit_code = EXIT_REFUSED

    def format_message(self) -> str:
        return printable(self.message)


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


class AttachFailure(Failure):
    """Under --attach, actorctl or the daemon failed: exit 125."""

    exit_code = EXIT_CTL_ERROR


class CannotExecute(AttachFailure):
    """Under --attach, the process's executable exists but cannot be executed: exit 126."""

    exit_code = EXIT_CANNOT_EXECUTE


class ExecutableNotFound(AttachFailure):
    """Under --attach, the process's executable does not exist: exit 127."""

    exit_code = EXIT_NOT_FOUND


def attach_failure(error: ClientError) -> AttachFailure:
    """The CLI failure for a client error under --attach: 127 when the process's executable does not
    exist, 126 when it cannot be executed (runc's create or exec says why), 125 for anything else."""
    if isinstance(error, DaemonError) and error.code == "runtime_error":
        match = _EXEC_FAILED.search(error.message)
        if match:
            reason = match.group(1)
            if "no such file or directory" in reason or "not found" in reason:
                return ExecutableNotFound(error.message)
            return CannotExecute(error.message)
    return AttachFailure(error.message if isinstance(error, DaemonError) else str(error))


class AttachableCommand(click.Command):
    """A command with an --attach flag: given it, actorctl's own failures (usage errors included)
    exit 125, so that a script tells them from the process's status."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        options = args[:args.index("--")] if "--" in args else list(args)  # parsing consumes `args`
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.ClickException as exc:
            if "--attach" not in options:
                raise
            exc.show()
            raise click.exceptions.Exit(EXIT_CTL_ERROR) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            if not ctx.params.get("attached") or isinstance(exc, AttachFailure):
                raise
            exc.show()
            raise click.exceptions.Exit(EXIT_CTL_ERROR) from None


def client_of(ctx: click.Context) -> Client:
    client = ctx.find_object(Client)
    assert client is not None, "the root command makes the client"
    return client


@contextlib.contextmanager
def failures(attached: bool = False) -> Iterator[None]:
    """Turn the client library's errors into the CLI's: exit 1, 3 or 4 (`guard`); under
    --attach (`attached`) 125, 126 or 127 (`attach_failure`)."""
    try:
        yield
    except ClientError as exc:
        raise (attach_failure(exc) if attached else guard(exc)) from None


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


def parse_time(value: str, param_hint: str = "--since") -> float:
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
                                 param_hint=param_hint) from None
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


def complete_container_id(ctx: click.Context, param: click.Parameter,
                          incomplete: str) -> list[CompletionItem]:
    """Shell completion: the ids of the containers the daemon shows, asked with a short timeout."""
    from click.shell_completion import CompletionItem

    root = ctx.find_root()
    address = root.params.get("address") or os.environ.get("ACTORD_ADDRESS") or DEFAULT_ADDRESS
    try:
        with Client(address, 1.0) as client:
            listed = client.containers()
    except ClientError:
        return []
    return [CompletionItem(container.id, help=container.status) for container in listed
            if container.id.startswith(incomplete)]


def parse_label_filter(value: str, param_hint: str = "--filter") -> tuple[str, str | None]:
    """`KEY` (the label is set) or `KEY=VALUE` (set to VALUE)."""
    key, sep, wanted = value.partition("=")
    if not key:
        raise click.BadParameter(f"label={value!r}: give label=KEY or label=KEY=VALUE", param_hint=param_hint)
    return key, wanted if sep else None


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


def print_json_line(value: Any) -> None:
    """One JSON object on one line, flushed: for streams (wait, logs, events)."""
    click.echo(json.dumps(value, sort_keys=True))
    sys.stdout.flush()
