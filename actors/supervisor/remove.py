"""containers.remove: forget a container its restart policy keeps (stopped or restarting), or,
with `force`, kill a running one and end it whatever its policy; for the id of a bundle
`containers.prepare` made and no start used: release that bundle."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actors.supervisor.deferred import DEFERRED
from actors.wire.api import Params
from actors.wire.messages import Request

if TYPE_CHECKING:
    from actors.supervisor.actor import Supervisor


def request(sup: Supervisor, request: Request) -> dict[str, Any] | object:
    params = Params(request.params)
    container_id = params.container_id()
    if container_id in sup.prepared and container_id not in sup.life.containers:
        sup.prepared.discard(container_id)
        sup.release_if_gone(container_id)
        return {}
    if params.flag("force"):
        killing = sup.life.force_remove(container_id, (request.route, request.request_id))
        if killing is not None:
            sup.carry_out(killing)
            return DEFERRED  # answered with the init's exit event
    sup.carry_out(sup.life.remove(container_id))
    return {}
