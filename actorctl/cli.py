"""`actorctl`: the command-line client of actord.

Exit codes: 0 ok, 1 the daemon refused or failed, 2 usage error,
3 cannot reach the daemon, 4 timed out.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from actorctl.client import DEFAULT_ADDRESS, Client
from actorctl.commands.bundle import bundle
from actorctl.commands.checkpoints import checkpoints
from actorctl.commands.containers import containers
from actorctl.commands.events import events
from actorctl.common import EXIT_REFUSED, call
from actors import __version__

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    2 usage error, 3 cannot reach the daemon, 4 timed out.
    """
    try:
        ctx.obj = Client(address, timeout, curve_server_key=curve_server_key, curve_client_key=curve_client_key)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    ctx.call_on_close(ctx.obj.close)


@cli.command()
@click.pass_context
def version(ctx: click.Context) -> None:
    """Show the client's and the daemon's versions, and whether the daemon is degraded (then exit 1)."""
    info = call(ctx, "version")
    click.echo(f"actorctl {__version__}")
    click.echo(f"actord {info['version']} (protocol {info['protocol']}, pid {info['pid']})")
    click.echo(f"runtime {info['runtime']}")
    click.echo(f"state dir {info['state_dir']}")
    degraded = info.get("degraded") or []
    for reason in degraded:
        click.echo(f"degraded: {reason}")
    if degraded:
        ctx.exit(EXIT_REFUSED)


for group in (containers, events, checkpoints, bundle):
    cli.add_command(group)


def main() -> NoReturn:
    sys.exit(cli(prog_name="actorctl"))
