"""Containers of images: `containers start --image` unpacks the image into <root>/bundles/<id>
and starts that bundle; `containers rm` deletes the copy once actord no longer knows the container.

A copy is in use while actord knows its container (running, or kept by a restart policy: a
restart runs from the same rootfs), so it is deleted only after actord says it does not
know the id, and under the bundles lock, which a start holds from that same question to
its answer: a remove and a start of one id never interleave.
"""

from __future__ import annotations

from typing import Any

import click

from actorctl.client import ClientError, DaemonError
from actorctl.commands.images import root_of
from actorctl.common import Failure, attach_failure, client_of, guard

__all__ = ["remove_container", "start_from_image"]

NOT_FOUND = "not_found"


def _known(ctx: click.Context, container_id: str) -> bool:
    """Does actord know the container (running, paused, restarting or stopped)?"""
    try:
        client_of(ctx).call("containers.state", {"id": container_id})
    except DaemonError as exc:
        if exc.code == NOT_FOUND:
            return False
        raise guard(exc) from None
    return True


def start_from_image(ctx: click.Context, image: str, params: dict[str, Any], attached: bool = False) -> Any:
    """Unpack `image` from the store into the container's own bundle, start it; the start's result.

    A leftover copy of an exited container of the same id is replaced; the copy is deleted
    again if actord refuses the start."""
    from actorctl.images import ImageError, parse_image_ref
    from actorctl.imagestore import ImageStore

    container_id = params["id"]
    try:
        return ImageStore(root_of(ctx)).start_container(
            parse_image_ref(image), container_id, lambda: _known(ctx, container_id),
            lambda bundle: client_of(ctx).call("containers.start", {**params, "bundle": str(bundle)}))
    except DaemonError as exc:
        raise (attach_failure(exc) if attached else guard(exc)) from None
    except ImageError as exc:
        raise Failure(str(exc)) from None


def remove_container(ctx: click.Context, container_id: str) -> None:
    """`containers rm`: the daemon forgets a kept container; its image copy (if any) goes too,
    also when the daemon had already forgotten the container (then only the copy goes)."""
    from actorctl.imagestore import ImageStore

    store = ImageStore(root_of(ctx))
    try:
        client_of(ctx).call("containers.remove", {"id": container_id})
    except DaemonError as exc:
        if exc.code != NOT_FOUND or not store.bundle_of(container_id).exists():
            raise guard(exc) from None
    except ClientError as exc:
        raise guard(exc) from None
    if store.bundle_of(container_id).exists():
        with store.bundles_locked():
            if not _known(ctx, container_id):
                store.remove_bundle(container_id)
