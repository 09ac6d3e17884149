"""containers.remove: forget a container its restart policy keeps (stopped or restarting)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actors.wire.api import Params
from actors.wire.messages import Request

if TYPE_CHECKING:
    from actors.supervisor.actor import Supervisor


def request(sup: Supervisor, request: Request) -> dict[str, Any]:
    sup.carry_out(sup.life.remove(Params(request.params).container_id()))
    return {}
