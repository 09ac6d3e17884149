"""The CRI's UpdateContainerResources: a CRI container's limits changed through `Client.update`
(the daemon's `containers.update`, which is `runc update`).

A field at 0 (or empty) is not given, as containerd reads it; `cpu_period`, `cpu_quota`,
`cpu_shares`, `memory_limit_in_bytes`, `memory_swap_limit_in_bytes`, `cpuset_cpus` and
`cpuset_mems` are applied. Refused with INVALID_ARGUMENT, naming the field, as this cgroup v1 host
and `runc update` cannot apply them: `unified` (cgroup v2 files), `hugepage_limits` (runc update
has no flag for them), `windows`. `oom_score_adj` is ignored, as containerd ignores it at an
update (it is a process's, set at its start). A request that changes nothing succeeds.
"""

from __future__ import annotations

import grpc
from cri_api.v1 import api_pb2

from actorctl.client import Client
from actors.cri.lookup import cri_container
from actors.cri.status import Refusal

__all__ = ["update_resources"]


def refused_fields(request: api_pb2.UpdateContainerResourcesRequest) -> list[str]:
    """Fields this host cannot apply, by name."""
    linux = request.linux
    refused = []
    if linux.unified:
        refused.append(f"linux.unified ({', '.join(sorted(linux.unified))}): cgroup v2 files, and this host "
                       "mounts cgroup v1")
    if linux.hugepage_limits:
        refused.append("linux.hugepage_limits: runc update cannot change them")
    if request.HasField("windows"):
        refused.append("windows: this is a Linux runtime")
    return refused


def update_resources(client: Client, request: api_pb2.UpdateContainerResourcesRequest) -> None:
    container = cri_container(client, request.container_id)
    refused = refused_fields(request)
    if refused:
        raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, f"UpdateContainerResources {container.id}: cannot apply "
                                                        f"{'; '.join(refused)}")
    linux = request.linux
    limits = {
        "cpu_period": linux.cpu_period or None, "cpu_quota": linux.cpu_quota or None,
        "cpu_shares": linux.cpu_shares or None, "memory_limit": linux.memory_limit_in_bytes or None,
        "memory_swap": linux.memory_swap_limit_in_bytes or None,
    }
    for name, value in limits.items():
        if value is not None and value < (-1 if name in ("cpu_quota", "memory_swap") else 0):
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, f"UpdateContainerResources: linux.{name} {value} is "
                                                            "negative")
    if not any(value is not None for value in limits.values()) and not linux.cpuset_cpus and not linux.cpuset_mems:
        return
    client.update(container.id, cpu_period=limits["cpu_period"], cpu_quota=limits["cpu_quota"],
                  cpu_shares=limits["cpu_shares"], memory_limit=limits["memory_limit"],
                  memory_swap=limits["memory_swap"], cpuset_cpus=linux.cpuset_cpus or None,
                  cpuset_mems=linux.cpuset_mems or None)
