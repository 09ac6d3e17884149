"""`actorctl`: the command-line client of actord.

Exit codes: 0 ok, 1 the daemon refused or failed, 2 usage error,
3 cannot reach the daemon, 4 timed out.
"""

from __future__ import annotations

import gc
import importlib
import sys
from typing import Any, NoReturn

import click

from actorctl.client import DEFAULT_ADDRESS, Client
from actorctl.common import EXIT_REFUSED, client_of, failures, format_duration, print_json
from actorctl.printable import printable
from actors import __version__

__all__ = ["main"]


class LazyGroup(click.Group):
    """A group whose subcommands' modules are imported only when one is invoked, or listed by
    --help: each `actorctl` run is a new process, which should pay only for the imports of the
    command it runs."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy
        """Command name -> "module:attribute" of the click command."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            module, _, attribute = self.lazy[cmd_name].partition(":")
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]}, lazy={
    "bundle": "actorctl.commands.bundle:bundle",
    "checkpoints": "actorctl.commands.checkpoints:checkpoints",
    "completion": "actorctl.commands.completion:completion",
    "containers": "actorctl.commands.containers:containers",
    "events": "actorctl.commands.events:events",
    "health": "actorctl.commands.health:health",
    "images": "actorctl.commands.images:images",
    "pods": "actorctl.commands.pods:pods",
})
@click.option("--address", envvar="ACTORD_ADDRESS", default=DEFAULT_ADDRESS, show_default=True,
              show_envvar=True, help="The daemon's control socket.")
@click.option("--timeout", type=click.FloatRange(0.01, 86400), default=10.0, show_default=True,
              help="Seconds to wait for the daemon's answer.")
@click.option("--curve-server-key", envvar="ACTORD_CURVE_SERVER_KEY", show_envvar=True, metavar="FILE",
              type=click.Path(exists=True, dir_okay=False),
              help="The daemon's public CURVE certificate (.key), to reach a daemon listening on the network.")
@click.option("--curve-client-key", envvar="ACTORD_CURVE_CLIENT_KEY", show_envvar=True, metavar="FILE",
              type=click.Path(exists=True, dir_okay=False),
              help="This client's CURVE certificate with its secret key (.key_secret); the daemon admits it "
                   "if its public key is among its --curve-authorized-keys.")
@click.version_option(__version__, prog_name="actorctl")
@click.pass_context
def cli(ctx: click.Context, address: str, timeout: float, curve_server_key: str | None,
        curve_client_key: str | None) -> None:
    """Drive actord: start and signal containers, run processes in them, follow events.

    \b
    Exit codes: 0 ok, 1 the daemon refused or failed (message on stderr),
    2 usage error, 3 cannot reach the daemon, 4 timed out. With --attach
    (containers start, exec): the process's status, or 125 (actorctl or the
    daemon failed), 126 (its executable cannot be run), 127 (it does not exist).
    `containers wait` exits with the first container's status.

    \b
    Examples:
      actorctl containers start web1 ./bundle
      ACTORD_ADDRESS=ipc:///tmp/s/actord.sock actorctl containers list --json
    """
    try:
        ctx.obj = Client(address, timeout, curve_server_key=curve_server_key, curve_client_key=curve_client_key)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    ctx.call_on_close(ctx.obj.close)


@cli.command()
@click.option("--json", "as_json", is_flag=True,
              help='Print {"client": {"version": V}, "daemon": {...}}: the daemon\'s part is its `version` '
                   "reply (version, protocol, pid, runtime, state_dir, uptime, degraded, events_address, ...).")
@click.pass_context
def version(ctx: click.Context, as_json: bool) -> None:
    """Show the client's and the daemon's versions, and whether the daemon is degraded (then exit 1).

    \b
    Example:
      actorctl version --json
    """
    with failures():
        info = client_of(ctx).version()
    if as_json:
        print_json({"client": {"version": __version__}, "daemon": info.raw})
        if info.degraded:
            ctx.exit(EXIT_REFUSED)
        return
    click.echo(f"actorctl {__version__}")
    click.echo(f"actord {info.version} (protocol {info.protocol}, pid {info.pid})")
    click.echo(f"runtime {printable(info.runtime)}")
    click.echo(f"state dir {printable(info.state_dir)}")
    if info.uptime is not None:
        click.echo(f"up {format_duration(info.uptime)}")
    for reason in info.degraded:
        click.echo(f"degraded: {printable(reason)}")
    if info.degraded:
        ctx.exit(EXIT_REFUSED)


def main() -> NoReturn:
    try:
        sys.exit(cli(prog_name="actorctl"))
    finally:
        # The interpreter's last garbage collection at exit walks every object the imports
        # made (some 5 ms of a 55 ms run); a process about to end frees nothing by it.
        gc.freeze()
