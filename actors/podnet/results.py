"""A pod's attachment as its last ADD left it, kept in the pod's state dir as libcni keeps it
in /var/lib/cni/results: the network config it was made with, the CNI args, the capability
args (port mappings) and the result. DEL needs all of them after a daemon restart: portmap
removes its rules only when told the port mappings again, firewall and bridge find what to
undo in the result, and the conf dir may hold another network by then.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hostos.atomicfile import remove_file, write_file_atomic

__all__ = ["CACHE_KIND", "CachedAttachment", "load_attachment", "remove_attachment", "save_attachment"]

CACHE_KIND = "cniCacheV1"
"""libcni's kind of cache record; the fields keep libcni's names too."""


@dataclass(frozen=True)
class CachedAttachment:
    """What DEL (and CHECK, and the pod's status) need of a past ADD."""

    container_id: str
    ifname: str
    netns: str
    network: dict[str, Any]
    args: tuple[tuple[str, str], ...]
    capability_args: dict[str, Any]
    result: dict[str, Any]


def save_attachment(path: Path, attachment: CachedAttachment) -> None:
    """Write the record whole or not at all (a crash mid-write leaves the old one or none)."""
    record = {
        "kind": CACHE_KIND,
        "containerId": attachment.container_id,
        "ifName": attachment.ifname,
        "netns": attachment.netns,
        "networkName": attachment.network.get("name", ""),
        "config": attachment.network,
        "cniArgs": [list(pair) for pair in attachment.args],
        "capabilityArgs": attachment.capability_args,
        "result": attachment.result,
    }
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_file_atomic(path, json.dumps(record, indent=1).encode())


def load_attachment(path: Path) -> CachedAttachment | None:
    """The record at `path`; None when there is none or it is not one (as libcni: a bad cache
    is no cache, and DEL goes on without a prevResult)."""
    try:
        record = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("kind") != CACHE_KIND:
        return None
    try:
        args = tuple((str(key), str(value)) for key, value in record.get("cniArgs") or ())
        network, capability_args, result = record["config"], record.get("capabilityArgs") or {}, record["result"]
        if not (isinstance(network, dict) and isinstance(capability_args, dict) and isinstance(result, dict)):
            return None
        return CachedAttachment(str(record["containerId"]), str(record["ifName"]), str(record.get("netns", "")),
                                network, args, capability_args, result)
    except (KeyError, TypeError, ValueError):
        return None


def remove_attachment(path: Path) -> None:
    remove_file(path)
