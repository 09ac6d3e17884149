"""`actorctl images ...`: import, list and remove images in the store under actord's root."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from actorctl.common import Failure, call, print_json
from actorctl.printable import printable

if TYPE_CHECKING:
    from actorctl.imagestore import ImageStore

__all__ = ["images", "root_of"]


def root_of(ctx: click.Context, given: str | None = None) -> Path:
    """actord's root: `given`, or what the daemon's `version` reply says."""
    if given:
        return Path(given).resolve()
    root = call(ctx, "version").get("root")
    if not root:
        raise Failure("the daemon does not say where its root is: give --root")
    return Path(root)


def _store(ctx: click.Context) -> ImageStore:
    from actorctl.imagestore import ImageStore  # tarfile, subprocess: not for --help

    return ImageStore(root_of(ctx, ctx.meta.get("images.root")))


@click.group()
@click.option("--root", metavar="DIR", help="actord's root (default: asked from the daemon).")
@click.pass_context
def images(ctx: click.Context, root: str | None) -> None:
    """Images in the store under actord's root (<root>/images), for `containers start --image`.

    \b
    Example:
      actorctl images import ./busybox.tar && actorctl images list
    """
    ctx.meta["images.root"] = root


@images.command("import")
@click.option("--name", metavar="NAME",
              help="The name of images the archive tags only with a tag (OCI) or not at all (docker); "
                   "default: the file's name without its .tar / .tar.gz / .oci.")
@click.option("--json", "as_json", is_flag=True, help='Print {"imported": ["NAME:TAG", ...]}.')
@click.argument("archive", type=click.Path(exists=True, dir_okay=False))
@click.pass_context
def import_(ctx: click.Context, name: str | None, as_json: bool, archive: str) -> None:
    """Import every image of ARCHIVE: an OCI image layout tarball or a `docker save` archive.

    An image already in the store under the same NAME:TAG is replaced. An archive
    holding anything but the regular files and directories such an archive has (a
    link, a device, a `..` or unknown name, a name twice) is refused, the member named.

    \b
    Example:
      actorctl images import --name busybox ./busybox-oci.tar
    """
    from actorctl.images import ImageError, default_image_name, parse_image_ref

    default_name = name or default_image_name(archive)
    try:
        parse_image_ref(default_name)
        imported = [str(ref) for ref in _store(ctx).import_archive(Path(archive), default_name)]
        if as_json:
            print_json({"imported": imported})
        for ref in [] if as_json else imported:
            click.echo(f"imported {printable(ref)}")
    except ImageError as exc:
        raise Failure(str(exc)) from None


@images.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of {name, tag, digest, size}.")
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """List the images in the store.

    \b
    Example:  actorctl images list --json
    """
    from actorctl.images import ImageError

    try:
        stored = _store(ctx).images()
    except ImageError as exc:
        raise Failure(str(exc)) from None
    if as_json:
        print_json([image.as_json() for image in stored])
        return
    rows = [("NAME", "TAG", "DIGEST", "SIZE")]
    rows += [(printable(i.ref.name), printable(i.ref.tag), printable(i.digest.removeprefix("sha256:")[:12]),
              str(i.size)) for i in stored]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)) + "  " + row[3])


@images.command("rm")
@click.argument("reference", metavar="NAME[:TAG]")
@click.pass_context
def rm(ctx: click.Context, reference: str) -> None:
    """Remove an image from the store (containers already started from it keep their own copy).

    \b
    Example:  actorctl images rm busybox:latest
    """
    from actorctl.images import ImageError, parse_image_ref

    try:
        _store(ctx).remove(parse_image_ref(reference))
    except ImageError as exc:
        raise Failure(str(exc)) from None
