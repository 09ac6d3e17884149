"""Is the node's pod network ready? The CRI's Status reports it as the NetworkReady condition,
and the kubelet schedules no pod that needs the network while it is false: so the answer names
what is missing (no config, a config that does not parse, a plugin binary that is not there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from actors.podnet.conf import ConfError, load_network
from actors.podnet.plugin import find_plugin

__all__ = ["NOT_READY_REASON", "NetworkStatus", "network_status"]

NOT_READY_REASON = "NetworkPluginNotReady"
"""The reason the kubelet and containerd give for a network that is not ready."""


@dataclass(frozen=True)
class NetworkStatus:
    """The CRI's NetworkReady condition: ready, else a reason and a message saying why."""

    ready: bool
    reason: str = ""
    message: str = ""


def network_status(conf_dir: Path, bin_dirs: Sequence[Path]) -> NetworkStatus:
    """Ready when the conf dir's network loads and every plugin it names (the IPAM plugins
    its plugins delegate to too) is an executable in `bin_dirs`."""
    try:
        network = load_network(conf_dir)
    except ConfError as exc:
        return NetworkStatus(False, NOT_READY_REASON, f"cni config not loaded: {exc}")
    needed = []
    for plugin in network.plugins:
        needed.append(plugin["type"])
        ipam = plugin.get("ipam")
        if isinstance(ipam, dict) and isinstance(ipam.get("type"), str):
            needed.append(ipam["type"])
    missing = [name for name in dict.fromkeys(needed) if find_plugin(name, bin_dirs) is None]
    if missing:
        dirs = ", ".join(str(directory) for directory in bin_dirs)
        return NetworkStatus(False, NOT_READY_REASON,
                             f"network {network.name!r} ({network.source}) needs CNI plugins missing from {dirs}: "
                             + ", ".join(missing))
    return NetworkStatus(True)
