"""`containers start --image`: unpack the image into <root>/bundles/<id> and start that bundle
(`ImageStore.start_container`); `containers rm` deletes the copy (`Client.remove`)."""

from __future__ import annotations

from typing import Any

import click

from actorctl.client import ClientError
from actorctl.commands.images import root_of
from actorctl.common import Failure, attach_failure, client_of, guard

__all__ = ["start_from_image"]


def start_from_image(ctx: click.Context, image: str, params: dict[str, Any], attached: bool = False) -> Any:
    """Unpack `image` (NAME[:TAG][@DIGEST], normalized as docker does) from the store into the
    container's own bundle, start it; the start's result.

    A leftover copy of an exited container of the same id is replaced; the copy is deleted
    again if actord refuses the start."""
    from actorctl.images import ImageError, parse_image_ref
    from actorctl.imagestore import ImageStore

    container_id = params["id"]
    try:
        ref = parse_image_ref(image)  # a bad reference is refused before the daemon is asked anything
        return ImageStore(root_of(ctx)).start_container(
            ref, container_id, lambda: client_of(ctx).knows(container_id),
            lambda bundle: client_of(ctx).call("containers.start", {**params, "bundle": str(bundle)}))
    except ClientError as exc:
        raise (attach_failure(exc) if attached else guard(exc)) from None
    except ImageError as exc:
        raise Failure(str(exc)) from None

