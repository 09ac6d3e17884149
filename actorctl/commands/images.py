"""`actorctl images ...`: pull, import, list, inspect, remove and prune the daemon's images.

Every one is a request to actord, which owns the images: they work from anywhere the client
reaches the daemon (tcp with CURVE too); an import streams the archive to it.
"""

from __future__ import annotations

import datetime
import sys
import time
from typing import Any

import click

from actorctl.client import ClientError
from actorctl.common import client_of, format_duration, guard, print_json
from actorctl.printable import printable

__all__ = ["images"]


@click.group()
def images() -> None:
    """Images in actord's store (<root>/images): pulled from registries or imported from
    archives, run with `containers start --image`.

    \b
    Example:
      actorctl images pull busybox && actorctl containers start --image busybox web1 -- sleep 60
    """


class _ProgressLine:
    """A pull's progress on one line redrawn in place (a terminal), or a plain line per step."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        self.redraw = sys.stderr.isatty()
        self.width = 0

    def __call__(self, event: dict[str, Any]) -> None:
        line = f"{printable(self.ref)}: {printable(str(event.get('stage', '')))} " \
               f"{printable(str(event.get('item', '')))[:19]}"
        if self.redraw:
            click.echo(f"\r{line.ljust(self.width)}", nl=False, err=True)
            self.width = max(self.width, len(line))
        else:
            click.echo(line, err=True)

    def finish(self) -> None:
        if self.redraw and self.width:
            click.echo(f"\r{' ' * self.width}\r", nl=False, err=True)


@images.command("pull")
@click.option("--json", "as_json", is_flag=True,
              help="Print the pulled image as JSON: {name, tag, digest, id, size, created}.")
@click.option("--quiet", "-q", is_flag=True, help="No progress, only the image's digest at the end.")
@click.argument("reference", metavar="NAME[:TAG][@DIGEST]")
@click.pass_context
def pull(ctx: click.Context, as_json: bool, quiet: bool, reference: str) -> None:
    """Pull an image from its registry into actord's store (by tag or by digest).

    actord runs skopeo with its --registries-conf (mirrors, plain-HTTP insecure registries,
    unqualified-search-registries: a NAME without a registry is tried against each, in
    order; none configured: docker.io) and its --auth-file. A multi-platform image is pulled
    for actord's platform. Progress goes to stderr: one line redrawn on a terminal, a line
    per step otherwise. Two pulls of one image at once share one download.

    \b
    Examples:
      actorctl images pull busybox:1.36
      actorctl images pull registry.example:5000/team/app@sha256:<64 hex digits>
    """
    shown = _ProgressLine(reference)
    try:
        image = client_of(ctx).pull(reference, progress=None if quiet or as_json else shown)
    except ClientError as exc:
        shown.finish()
        raise guard(exc) from None
    shown.finish()
    if as_json:
        print_json(image.raw)
    elif quiet:
        click.echo(image.digest)
    else:
        click.echo(f"{printable(image.reference)}\nDigest: {image.digest}")


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

    The file is streamed to actord (so this works from another machine too), which checks it
    and imports it with skopeo. Names are kept as docker normalizes them: `busybox` is
    `docker.io/library/busybox:latest`, and any of its spellings finds it. An image already in
    the store under the same NAME:TAG is replaced. An archive holding anything but the regular
    files and directories such an archive has (a link, a device, a `..` or unknown name, a name
    twice) is refused, the member named.

    \b
    Example:
      actorctl images import --name busybox ./busybox-oci.tar
    """
    try:
        imported = client_of(ctx).import_image(archive, name)
    except ClientError as exc:
        raise guard(exc) from None
    if as_json:
        print_json({"imported": imported})
        return
    from actors.images.reference import parse_reference

    for ref in imported:
        click.echo(f"imported {printable(parse_reference(ref).familiar())}")


@images.command("list")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON array of {name, tag, digest, id, size, created}: the full name "
                   "(docker.io/library/busybox), its tag (null if pulled by digest), the manifest's digest, "
                   "the config's digest, bytes of config and layers, the creation time (RFC 3339, or null).")
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """List the images in the store, as docker does: REPOSITORY (the familiar name: busybox
    for docker.io/library/busybox), TAG, IMAGE ID (the config's digest, 12 hex digits),
    CREATED and SIZE (config and compressed layers).

    \b
    Example:  actorctl images list --json
    """
    try:
        stored = client_of(ctx).images()
    except ClientError as exc:
        raise guard(exc) from None
    if as_json:
        print_json([image.raw for image in stored])
        return
    from actors.images.reference import parse_reference

    now = time.time()
    rows = [("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE")]
    rows += [(printable(parse_reference(i.reference).familiar_name), printable(i.tag or "<none>"),
              i.id.removeprefix("sha256:")[:12], _age(i.created, now), _docker_size(i.size)) for i in stored]
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


@images.command("inspect")
@click.option("--json", "as_json", is_flag=True,
              help="Print the whole image as JSON: its images.list fields, names, architecture, os, config "
                   "(Env, Entrypoint, Cmd, WorkingDir, User, Labels...), layers (diff ids, bottom first) and "
                   "containers (ids of those made from it).")
@click.argument("reference", metavar="NAME[:TAG][@DIGEST]|ID")
@click.pass_context
def inspect(ctx: click.Context, as_json: bool, reference: str) -> None:
    """Show one image: its names, id, digest, size, platform, what it runs, its layers and the
    containers made from it.

    \b
    Examples:
      actorctl images inspect busybox
      actorctl images inspect --json busybox | jq .config.Env
    """
    try:
        image = client_of(ctx).inspect_image(reference)
    except ClientError as exc:
        raise guard(exc) from None
    if as_json:
        print_json(image)
        return
    config = image.get("config") or {}
    command = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
    lines = [("names", ", ".join(image.get("names") or [])), ("id", str(image.get("id"))),
             ("digest", str(image.get("digest"))), ("size", _docker_size(int(image.get("size") or 0))),
             ("created", str(image.get("created") or "N/A")),
             ("platform", f"{image.get('os')}/{image.get('architecture')}"),
             ("command", " ".join(command)), ("workdir", str(config.get("WorkingDir") or "")),
             ("user", str(config.get("User") or "")), ("layers", str(len(image.get("layers") or []))),
             ("used by", ", ".join(image.get("containers") or []))]
    for name, value in lines:
        click.echo(f"{name + ':':<10}{printable(value)}")


@images.command("rm")
@click.option("--force", "-f", is_flag=True,
              help="Remove it even while containers use it (they keep running on its layers).")
@click.argument("reference", metavar="NAME[:TAG][@DIGEST]|ID")
@click.pass_context
def rm(ctx: click.Context, force: bool, reference: str) -> None:
    """Remove an image from the store; refused while a container uses it, unless --force.

    NAME is normalized as docker does (busybox is docker.io/library/busybox); by digest, every
    tag of NAME on that manifest goes; by id, every name of the image. Blobs and layers nothing
    else keeps are collected.

    \b
    Example:  actorctl images rm busybox:latest
    """
    try:
        removed = client_of(ctx).remove_image(reference, force)
    except ClientError as exc:
        raise guard(exc) from None
    for name in removed:
        click.echo(f"untagged {printable(name)}")


@images.command("prune")
@click.option("--json", "as_json", is_flag=True, help='Print {"removed": [names], "layers": [diff ids]}.')
@click.pass_context
def prune(ctx: click.Context, as_json: bool) -> None:
    """Remove the images no tag names (pulled by digest alone) that no container uses, and every
    layer no image or container keeps.

    \b
    Example:  actorctl images prune
    """
    try:
        result = client_of(ctx).prune_images()
    except ClientError as exc:
        raise guard(exc) from None
    if as_json:
        print_json(result)
        return
    for name in result["removed"]:
        click.echo(f"deleted {printable(name)}")
    click.echo(f"{len(result['layers'])} layers removed")
