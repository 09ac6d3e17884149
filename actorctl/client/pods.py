"""The pod methods of `Client`: the CRI's pod sandboxes as the daemon keeps them (read-only:
pods are run, stopped and removed by a CRI client, the kubelet or crictl)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from actorctl.client.transport import Transport

__all__ = ["Pod", "PodMethods"]


@dataclass(frozen=True)
class Pod:
    """A pod sandbox, as `pods.list` and `pods.inspect` show it."""

    id: str
    """64 hex digits; its infra container is an actord container (usually of the same id)."""
    name: str
    namespace: str
    uid: str
    attempt: int
    state: str
    """`READY` or `NOTREADY` (as its record says; see docs/cri.md)."""
    created_at: int
    """Nanoseconds since the epoch."""
    ips: tuple[str, ...]
    """Its addresses, eth0's first; none with the host's network or once stopped."""
    infra_id: str
    labels: Mapping[str, str]
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Pod:
        metadata = data["metadata"]
        return cls(id=str(data["id"]), name=str(metadata["name"]), namespace=str(metadata["namespace"]),
                   uid=str(metadata["uid"]), attempt=int(metadata.get("attempt", 0)), state=str(data["state"]),
                   created_at=int(data["created_at"]), ips=tuple(data.get("ips") or ()),
                   infra_id=str(data["infra_id"]), labels=dict(data.get("labels") or {}), raw=data)


class PodMethods(Transport):
    """`pods()` and `pod(id)`."""

    def pods(self) -> list[Pod]:
        """Every pod sandbox the daemon keeps, oldest first."""
        return [Pod.from_wire(item) for item in self.call("pods.list")]

    def pod(self, pod_id: str) -> Pod:
        """One pod by its id or a unique prefix of it, with its CNI result in `.raw["cni_result"]`
        (NotFound if there is none; InvalidParams if the prefix names several)."""
        return Pod.from_wire(self.call("pods.inspect", {"id": pod_id}))
