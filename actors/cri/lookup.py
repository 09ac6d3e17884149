"""Which actord containers are CRI containers, by the contract the CRI's container calls keep.

A CRI container's actord container id IS its CRI id, and it carries the labels
`io.kubernetes.cri.type=container`, `actord.pod=<pod id>`, `io.kubernetes.cri.container-name`
and `io.kubernetes.cri.container-attempt`. Any other actord container (an infra container, one
started through actorctl) is no CRI container: a CRI call naming it answers NOT_FOUND, so the
kubelet can never exec into, update or read a container it did not make.
"""

from __future__ import annotations

import grpc

from actorctl.client import Client
from actorctl.client.errors import NotFound
from actorctl.client.types import Container
from actors.cri.sandboxes import POD_LABEL, TYPE_LABEL
from actors.cri.status import Refusal

__all__ = ["ATTEMPT_LABEL", "NAME_LABEL", "cri_container", "cri_containers", "is_cri_container"]

CONTAINER_TYPE = "container"
NAME_LABEL = "io.kubernetes.cri.container-name"
ATTEMPT_LABEL = "io.kubernetes.cri.container-attempt"


def is_cri_container(container: Container) -> bool:
    """Whether the contract's labels make this actord container a CRI container."""
    return container.labels.get(TYPE_LABEL) == CONTAINER_TYPE and bool(container.labels.get(POD_LABEL))


def cri_container(client: Client, container_id: str) -> Container:
    """The CRI container with this id; a NOT_FOUND Refusal for an empty id, an unknown one, or an
    actord container that is not a CRI container."""
    if not container_id:
        raise Refusal(grpc.StatusCode.NOT_FOUND, "no container id given")
    try:
        container = client.container(container_id)
    except NotFound:
        container = None
    if container is None or not is_cri_container(container):
        raise Refusal(grpc.StatusCode.NOT_FOUND, f"container {container_id!r} not found: no CRI container has "
                                                 "that id")
    return container


def cri_containers(client: Client) -> list[Container]:
    """Every CRI container the daemon knows, by id."""
    return [container for container in client.containers() if is_cri_container(container)]
