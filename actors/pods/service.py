"""The Pods actor: the daemon's `pods.list` and `pods.inspect`, read from the pod store's
records (the CRI server in this daemon writes them), so actorctl sees the kubelet's pods
without speaking gRPC. Reading a few small files per request is quick, but it is I/O: here,
not on the Supervisor.

The state shown is the record's: a pod whose infra container ended is READY here until the
CRI's next StopPodSandbox (the CRI's PodSandboxStatus checks the container too).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from actors.base import BusActor, Handlers
from actors.podnet.cni import attachment_of
from actors.pods.store import CNI_RESULT, PodRecord, read_records
from actors.wire import ApiError, ErrorCode
from actors.wire import messages as wire
from actors.wire.api import Params, error_reply, ok_reply

__all__ = ["Pods", "pod_view"]

logger = logging.getLogger(__name__)


def pod_view(record: PodRecord, pods_dir: Path, *, full: bool) -> dict[str, Any]:
    """A pod as the API shows it: its record, its IPs (eth0's first) and, if `full`, its CNI
    result."""
    view = record.to_json()
    attachment = attachment_of(pods_dir / record.id / CNI_RESULT) if record.netns else None
    view["ips"] = [] if attachment is None else list(attachment.ips)
    if full:
        view["cni_result"] = None if attachment is None else attachment.result
    return view


class Pods(BusActor):
    """Answers the `pods.*` requests from `<root>/pods`."""

    def __init__(self, context: Any, pods_dir: Path) -> None:
        super().__init__(context)
        self.pods_dir = pods_dir

    def handlers(self) -> Handlers:
        return {wire.Request: self.on_request}

    def on_request(self, message: wire.Request) -> None:
        try:
            if message.method == "pods.list":
                result: Any = [pod_view(record, self.pods_dir, full=False) for record in read_records(self.pods_dir)]
            elif message.method == "pods.inspect":
                result = self.inspect(Params(message.params).string("id", max_len=64) or "")
            else:
                raise ApiError(ErrorCode.BAD_REQUEST, f"the pods service does not answer {message.method!r}")
            body = ok_reply(message.request_id, result)
        except ApiError as exc:
            body = error_reply(message.request_id, exc)
        except OSError as exc:
            logger.exception("reading the pod store failed")
            body = error_reply(message.request_id, ApiError(ErrorCode.INTERNAL,
                                                            f"cannot read the pod store {self.pods_dir}: {exc}"))
        self.send("bus", wire.ClientReply(route=message.route, body=body))

    def inspect(self, pod_id: str) -> dict[str, Any]:
        """The pod whose id is `pod_id` or starts with it (a unique prefix)."""
        found = [record for record in read_records(self.pods_dir) if record.id.startswith(pod_id)] if pod_id else []
        exact = [record for record in found if record.id == pod_id]
        if exact:
            found = exact
        if not found:
            raise ApiError(ErrorCode.NOT_FOUND, f"no pod sandbox {pod_id!r}")
        if len(found) > 1:
            raise ApiError(ErrorCode.INVALID_PARAMS, f"pod sandbox id prefix {pod_id!r} matches {len(found)} pods")
        return pod_view(found[0], self.pods_dir, full=True)
