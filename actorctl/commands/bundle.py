"""`actorctl bundle create`: an OCI bundle of busybox, of an OCI image, or around an existing rootfs."""

from __future__ import annotations

import os

import click

from actorctl.common import Failure, print_json
from actorctl.printable import printable

__all__ = ["bundle"]


@click.group()
def bundle() -> None:
    """Make OCI bundles: busybox ones to try actord with, or from images and root filesystems.

    \b
    Example:
      actorctl bundle create ./bundle -- sleep 60
    """


@bundle.command("create")
@click.option("--json", "as_json", is_flag=True, help='Print {"bundle": ABSOLUTE_DIR}.')
@click.option("--tty", is_flag=True, help="Give the process a terminal (process.terminal).")
@click.option("--force", is_flag=True,
              help="Replace an existing rootfs with a fresh one (its old content is removed, never written to).")
@click.option("--from-oci", "from_oci", metavar="LAYOUT[:TAG]",
              help="Unpack image TAG (default latest) of the OCI image layout LAYOUT with umoci: its Env, "
                   "Entrypoint and Cmd, WorkingDir and User become the process's; ARGS replace its Cmd. "
                   "DIRECTORY must be new or empty.")
@click.option("--rootfs", metavar="PATH", type=click.Path(exists=True, file_okay=False),
              help="Write only DIRECTORY/config.json, around the existing root filesystem PATH (by absolute "
                   "path), which the container sees read-only (a tmpfs on /tmp if it has one) and nothing "
                   "writes to. ARGS are required.")
@click.argument("directory", type=click.Path(file_okay=False))
@click.argument("args", nargs=-1)
def create(as_json: bool, tty: bool, force: bool, from_oci: str | None, rootfs: str | None, directory: str,
           args: tuple[str, ...]) -> None:
    """Create a bundle in DIRECTORY whose process runs ARGS: a busybox one (default: sleep 3600),
    or one from an OCI image (--from-oci) or around an existing rootfs (--rootfs).

    A DIRECTORY that already has a rootfs is refused unless --force: a rootfs a
    container has used may hold its symlinks, so it is never written into.

    \b
    Examples:
      actorctl bundle create ./bundle -- sh -c 'echo hello; sleep 60'
      actorctl bundle create --from-oci ./layout:1.36 ./web -- httpd -f
      actorctl bundle create --rootfs /srv/rootfs ./shared -- /bin/sh -c 'ls /'
    """
    if from_oci and rootfs:
        raise click.UsageError("--from-oci and --rootfs exclude each other")
    if force and (from_oci or rootfs):
        raise click.UsageError("--force is for busybox bundles: --from-oci needs a new or empty DIRECTORY, "
                               "--rootfs writes only config.json")
    # subprocess, shutil, tempfile: not for --help
    from actorctl.bundle import create_bundle
    from actorctl.images import ImageError, bundle_around_rootfs, bundle_from_layout, parse_layout_ref

    try:
        if from_oci:
            layout, tag = parse_layout_ref(from_oci)
            create_from = f" from {layout}:{tag}"
            bundle_from_layout(layout, tag, directory, list(args), terminal=tty)
        elif rootfs:
            create_from = f" around {os.path.abspath(rootfs)}"
            bundle_around_rootfs(rootfs, directory, list(args), terminal=tty)
        else:
            create_from = ""
            create_bundle(directory, list(args) or ["sleep", "3600"], terminal=tty, force=force)
    except (OSError, RuntimeError, ImageError) as exc:
        raise Failure(str(exc)) from None
    if as_json:
        print_json({"bundle": os.path.abspath(directory)})
    else:
        click.echo(printable(f"bundle ready in {os.path.abspath(directory)}{create_from}"))
