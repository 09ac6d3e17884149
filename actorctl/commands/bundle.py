"""`actorctl bundle create`: a busybox OCI bundle to try actord with."""

from __future__ import annotations

import os

import click

from actorctl.bundle import create_bundle
from actorctl.common import EXIT_REFUSED, Failure

__all__ = ["bundle"]


@click.group()
def bundle() -> None:
    """Make OCI bundles to try actord with."""


@bundle.command("create")
@click.option("--tty", is_flag=True, help="Give the process a terminal (process.terminal).")
@click.argument("directory", type=click.Path(file_okay=False))
@click.argument("args", nargs=-1)
def create(tty: bool, directory: str, args: tuple[str, ...]) -> None:
    """Create a busybox bundle in DIRECTORY whose process runs ARGS (default: sleep 3600).

    \b
    Example:  actorctl bundle create ./bundle -- sh -c 'echo hello; sleep 60'
    """
    try:
        create_bundle(directory, list(args) or ["sleep", "3600"], terminal=tty)
    except (OSError, RuntimeError) as exc:
        raise Failure(str(exc), EXIT_REFUSED) from None
    click.echo(f"bundle ready in {os.path.abspath(directory)}")
