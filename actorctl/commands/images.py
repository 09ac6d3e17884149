"""`actorctl images ...`: import, list and remove images in the store under actord's root."""

from __future__ import annotations

import datetime
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from actorctl.common import Failure, call, format_duration, print_json
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
@click.option("--json", "as_json", is_flag=True,
              help='Print {"imported": ["NAME:TAG", ...]}, each name in full (docker.io/library/busybox:latest).')
@click.argument("archive", type=click.Path(exists=True, dir_okay=False))
@click.pass_context
def import_(ctx: click.Context, name: str | None, as_json: bool, archive: str) -> None:
    """Import every image of ARCHIVE: an OCI image layout tarball or a `docker save` archive.

    Names are kept as docker normalizes them: `busybox` is `docker.io/library/busybox:latest`,
    and any of its spellings finds it. An image already in the store under the same NAME:TAG is
    replaced. An archive holding anything but the regular files and directories such an archive
    has (a link, a device, a `..` or unknown name, a name twice) is refused, the member named.

    \b
    Example:
      actorctl images import --name busybox ./busybox-oci.tar
    """
    from actorctl.images import ImageError, default_image_name, parse_image_ref

    default_name = name or default_image_name(archive)
    try:
        parse_image_ref(default_name, name_only=True)
        imported = _store(ctx).import_archive(Path(archive), default_name)
        if as_json:
            print_json({"imported": [str(ref) for ref in imported]})
        for ref in [] if as_json else imported:
            click.echo(f"imported {printable(ref.familiar())}")
    except ImageError as exc:
        raise Failure(str(exc)) from None


@images.command("list")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON array of {name, tag, digest, size, id, created}: the full name "
                   "(docker.io/library/busybox), the manifest's digest, bytes of config and layers, "
                   "the config's digest and its creation time (RFC 3339, or null).")
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """List the images in the store, as docker does: REPOSITORY (the familiar name: busybox
    for docker.io/library/busybox), TAG, IMAGE ID (the config's digest, 12 hex digits),
    CREATED and SIZE (config and compressed layers).

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
    now = time.time()
    rows = [("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE")]
    rows += [(printable(i.ref.familiar_name), printable(i.ref.tag or "<none>"),
              i.summary.config_digest.removeprefix("sha256:")[:12], _age(i.summary.created, now),
              _docker_size(i.summary.size)) for i in stored]
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)) + "  " + row[4])


def _age(created: str | None, now: float) -> str:
    """`3d 4h ago` (as actorctl prints durations elsewhere), or N/A for an image that does not say."""
    try:
        moment = datetime.datetime.fromisoformat(created) if created else None
    except ValueError:
        moment = None
    if moment is None:
        return "N/A"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return f"{format_duration(max(0.0, now - moment.timestamp()))} ago"


def _docker_size(size: int) -> str:
    """Bytes as docker lists them: three significant digits, powers of 1000 (`2.16MB`)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            break
        value /= 1000
    return f"{value:.3g}{unit}"


@images.command("rm")
@click.argument("reference", metavar="NAME[:TAG][@DIGEST]")
@click.pass_context
def rm(ctx: click.Context, reference: str) -> None:
    """Remove an image from the store (containers already started from it keep their own copy).

    NAME is normalized as docker does (busybox is docker.io/library/busybox); by digest, every
    tag of NAME on that manifest goes.

    \b
    Example:  actorctl images rm busybox:latest
    """
    from actorctl.images import ImageError, parse_image_ref

    try:
        _store(ctx).remove(parse_image_ref(reference))
    except ImageError as exc:
        raise Failure(str(exc)) from None
