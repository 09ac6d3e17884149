"""`actorctl bundle create`: a busybox OCI bundle to try actord with."""

from __future__ import annotations

import os

import click

from actorctl.common import Failure, print_json

__all__ = ["bundle"]


@click.group()
def bundle() -> None:
    """Make OCI bundles to try actord with.

    \b
    Example:
      actorctl bundle create ./bundle -- sleep 60
    """


@bundle.command("create")
@click.option("--json", "as_json", is_flag=True, help='Print {"bundle": ABSOLUTE_DIR}.')
@click.option("--tty", is_flag=True, help="Give the process a terminal (process.terminal).")
@click.option("--force", is_flag=True,
              help="Replace an existing rootfs with a fresh one (its old content is removed, never written to).")
@click.argument("directory", type=click.Path(file_okay=False))
@click.argument("args", nargs=-1)
def create(as_json: bool, tty: bool, force: bool, directory: str, args: tuple[str, ...]) -> None:
    """Create a busybox bundle in DIRECTORY whose process runs ARGS (default: sleep 3600).

    A DIRECTORY that already has a rootfs is refused unless --force: a rootfs a
    container has used may hold its symlinks, so it is never written into.

    \b
    Example:  actorctl bundle create ./bundle -- sh -c 'echo hello; sleep 60'
    """
    from actorctl.bundle import create_bundle  # subprocess, shutil, tempfile: not for --help

    try:
        create_bundle(directory, list(args) or ["sleep", "3600"], terminal=tty, force=force)
    except (OSError, RuntimeError) as exc:
        raise Failure(str(exc)) from None
    if as_json:
        print_json({"bundle": os.path.abspath(directory)})
    else:
        click.echo(f"bundle ready in {os.path.abspath(directory)}")
