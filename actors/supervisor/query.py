"""Read-only requests: version, health, containers.list, containers.state, events.replay."""

from __future__ import annotations

import bisect
from collections import Counter
from typing import TYPE_CHECKING, Any

from actors.supervisor.deferred import DEFERRED
from actors.supervisor.phases import PUBLISHED_STATUS
from actors.wire.api import Params
from actors.wire.messages import Replay, Request

if TYPE_CHECKING:
    from actors.supervisor.actor import Supervisor


def degraded(sup: Supervisor) -> list[str]:
    """Why the daemon cannot do all it should (empty when healthy)."""
    reasons = [] if sup.storage_trouble is None else [sup.storage_trouble]
    return reasons + ([] if sup.health is None else sup.health.degraded())


def uptime(sup: Supervisor) -> float | None:
    return None if sup.health is None else sup.health.uptime()


def version(sup: Supervisor, request: Request) -> dict[str, Any]:
    """The daemon's facts, its uptime (seconds), and `degraded`."""
    return {**sup.info, "uptime": uptime(sup), "degraded": degraded(sup)}


def health(sup: Supervisor, request: Request) -> dict[str, Any]:
    """`healthy` or `degraded` (and why), the uptime and the containers by status."""
    reasons = degraded(sup)
    by_status = Counter(PUBLISHED_STATUS.get(container.phase, container.phase.value)
                        for container in sup.life.containers.values())
    return {"status": "degraded" if reasons else "healthy", "degraded": reasons, "uptime": uptime(sup),
            "containers": dict(sorted(by_status.items())), "pid": sup.info.get("pid"),
            "version": sup.info.get("version")}


LIST_PAGE_MAX = 1000


def list_containers(sup: Supervisor, request: Request) -> list[dict[str, Any]]:
    """Containers by id; a page of at most `limit` after the id `after` (a node may run thousands,
    and a reply is at most 1 MiB). An empty page: no more."""
    params = Params(request.params)
    after = params.optional_container_id("after")
    limit = params.integer("limit", low=1, high=LIST_PAGE_MAX)
    ids = sorted(key for key, container in sup.life.containers.items() if container.shown)
    if after is not None:
        ids = ids[bisect.bisect_right(ids, after):]
    return [sup.life.containers[key].to_json() for key in ids[:limit]]


def state(sup: Supervisor, request: Request) -> dict[str, Any]:
    container_id = Params(request.params).container_id()
    return sup.life.shown(container_id).to_json()


def replay(sup: Supervisor, request: Request) -> object:
    """Stored events are the EventLog's; it answers the client itself."""
    sup.send("eventlog", Replay(route=request.route, request_id=request.request_id, params=request.params))
    return DEFERRED
