"""What ContainerStatus and ListContainers show of the CRI's containers: the records
(containerstore.py), each RUNNING one brought up to date first (an exit the daemon saw is
written into it: containerexits.py). Only the CRI's own containers are shown, never a pod's
infra container (it is no record of theirs).

ListContainers' filter, as containerd's: `id` (the id or a prefix only one id has),
`state`, `pod_sandbox_id` (likewise an id or a unique prefix), `label_selector` (every pair
must match).
"""

from __future__ import annotations

import json
from typing import Any

import grpc
from cri_api.v1 import api_pb2

from actors.cri.containers import CriContainers
from actors.cri.containerstore import ContainerRecord, ContainerState
from actors.cri.status import Refusal
from actors.pods.store import AmbiguousId

__all__ = ["ContainerViews"]

STATES = {ContainerState.CREATED: api_pb2.CONTAINER_CREATED, ContainerState.RUNNING: api_pb2.CONTAINER_RUNNING,
          ContainerState.EXITED: api_pb2.CONTAINER_EXITED}


class ContainerViews:
    """ContainerStatus and ListContainers over one CriContainers."""

    def __init__(self, containers: CriContainers) -> None:
        self.containers = containers

    def _current(self, records: list[ContainerRecord]) -> list[ContainerRecord]:
        """The records, each RUNNING one with its exit if it has ended."""
        if not any(record.state is ContainerState.RUNNING for record in records):
            return records
        client = self.containers.link.client()
        active = self.containers.active()
        current = []
        for found in records:
            if found.state is not ContainerState.RUNNING or found.id in active:
                current.append(found)
                continue
            with self.containers.store.locked(found.id) as record:
                if record is not None:
                    current.append(self.containers.refresh(client, record, active))
        return current

    def status(self, container_id: str, verbose: bool) -> api_pb2.ContainerStatusResponse:
        store = self.containers.store
        found = store.resolve(container_id)
        record = None if found is None else store.get(found)
        if record is None:
            raise Refusal(grpc.StatusCode.NOT_FOUND, f"container {container_id!r} not found")
        [record] = self._current([record])
        status = api_pb2.ContainerStatus(
            id=record.id, metadata=_metadata(record), state=STATES[record.state], created_at=record.created_at,
            started_at=record.started_at, finished_at=record.finished_at, exit_code=record.exit_code,
            image=api_pb2.ImageSpec(image=record.image), image_ref=record.image_ref, reason=record.reason,
            message=record.message, labels=record.labels, annotations=record.annotations,
            mounts=[api_pb2.Mount(**mount) for mount in record.mounts], log_path=record.log_path)
        info = {}
        if verbose:
            details: dict[str, Any] = {"record": record.to_json(), "pid": record.pid, "sandboxID": record.pod_id}
            info["info"] = json.dumps(details)
        return api_pb2.ContainerStatusResponse(status=status, info=info)

    def list(self, request: api_pb2.ListContainersRequest) -> list[api_pb2.Container]:
        store = self.containers.store
        self.containers.sweep()
        records = store.all()
        wanted = request.filter if request.HasField("filter") else None
        if wanted is not None and wanted.id:
            found = store.resolve(wanted.id)
            records = [record for record in records if record.id == found]
        if wanted is not None and wanted.pod_sandbox_id:
            try:
                pod_id = self.containers.pods.resolve(wanted.pod_sandbox_id)
            except AmbiguousId:
                pod_id = None
            records = [record for record in records if record.pod_id == pod_id]
        if wanted is not None and wanted.label_selector:
            records = [record for record in records
                       if all(record.labels.get(key) == value for key, value in wanted.label_selector.items())]
        items = []
        for record in self._current(records):
            state = STATES[record.state]
            if wanted is not None and wanted.HasField("state") and wanted.state.state != state:
                continue
            items.append(api_pb2.Container(
                id=record.id, pod_sandbox_id=record.pod_id, metadata=_metadata(record),
                image=api_pb2.ImageSpec(image=record.image), image_ref=record.image_ref, state=state,
                created_at=record.created_at, labels=record.labels, annotations=record.annotations))
        return items


def _metadata(record: ContainerRecord) -> api_pb2.ContainerMetadata:
    return api_pb2.ContainerMetadata(name=record.name, attempt=record.attempt)
