"""Read-only requests: version, containers.list, containers.state, events.replay."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actors.supervisor.deferred import DEFERRED
from actors.wire.api import Params

if TYPE_CHECKING:
    from actors.supervisor.actor import Supervisor


def version(sup: Supervisor, request: dict[str, Any]) -> dict[str, Any]:
    """The daemon's facts, and `degraded`: why it cannot do all it should (empty when healthy)."""
    return {**sup.info, "degraded": [] if sup.storage_trouble is None else [sup.storage_trouble]}


def list_containers(sup: Supervisor, request: dict[str, Any]) -> list[dict[str, Any]]:
    return [c.to_json() for c in sorted(sup.containers.values(), key=lambda c: c.id) if c.listed]


def state(sup: Supervisor, request: dict[str, Any]) -> dict[str, Any]:
    container_id = Params(request["params"]).container_id()
    return sup.find(container_id).to_json()


def replay(sup: Supervisor, request: dict[str, Any]) -> object:
    """Stored events are the EventLog's; it answers the client itself."""
    sup.send("eventlog", "replay", route=request["route"], request_id=request["id"], params=request["params"])
    return DEFERRED
