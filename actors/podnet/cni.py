"""A pod joined to and parted from its network: the config list's plugins run in order for ADD
(each given the previous one's result as prevResult) and in reverse for DEL, with the pod's
port mappings for the plugins whose `capabilities` ask for them, as libcni's AddNetworkList and
DelNetworkList do. ADD's result is kept (`results`) for DEL and the pod's status.

No CHECK: Debian 12's portmap (1.1.1) fails it on every IPv4-only pod (it checks ip6tables
for a chain it made only in iptables).

ADD leaves nothing when it fails: the whole list is deleted again, as containerd tears down a
sandbox whose setup failed. DEL is tolerant: a namespace already gone is passed as none (the
plugins then release what they can without it), a pod never added is nothing to delete.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actors.podnet.conf import ConfError, NetworkConfList, load_network, network_of
from actors.podnet.netns import is_netns
from actors.podnet.plugin import DEFAULT_TIMEOUT, Invocation, PluginError, run_plugin
from actors.podnet.results import CachedAttachment, load_attachment, remove_attachment, save_attachment

__all__ = ["IFNAME", "Attachment", "PodNetwork", "PodRef", "PortMapping", "attachment_of", "cni_args", "plugin_config",
           "pod_ips"]

logger = logging.getLogger(__name__)

IFNAME = "eth0"
PROTOCOLS = ("tcp", "udp", "sctp")


@dataclass(frozen=True)
class PortMapping:
    """A CRI PortMapping as portmap's runtimeConfig.portMappings entry wants it. Only mappings
    with a hostPort are passed (the CRI's others publish nothing; containerd drops them too)."""

    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""

    def __post_init__(self) -> None:
        if not 0 < self.host_port < 65536:
            raise ValueError(f"port mapping: hostPort {self.host_port} is not a port (1-65535)")
        if not 0 < self.container_port < 65536:
            raise ValueError(f"port mapping: containerPort {self.container_port} is not a port (1-65535)")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"port mapping: protocol {self.protocol!r} is not one of {', '.join(PROTOCOLS)}")
        if self.host_ip:
            try:
                ipaddress.ip_address(self.host_ip)
            except ValueError:
                raise ValueError(f"port mapping: hostIP {self.host_ip!r} is not an IP address") from None

    def capability(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"hostPort": self.host_port, "containerPort": self.container_port,
                                 "protocol": self.protocol}
        if self.host_ip:
            entry["hostIP"] = self.host_ip
        return entry


@dataclass(frozen=True)
class PodRef:
    """The pod as the plugins know it: CNI_CONTAINERID is its id, and CNI_ARGS carry the
    kubelet's names for it (K8S_POD_NAMESPACE, K8S_POD_NAME, K8S_POD_INFRA_CONTAINER_ID)."""

    pod_id: str
    name: str
    namespace: str


@dataclass(frozen=True)
class Attachment:
    """A pod on its network: the network's name, the pod's IPs (its eth0's first) and the
    plugins' final result."""

    network: str
    ips: tuple[str, ...]
    result: dict[str, Any]


def cni_args(pod: PodRef) -> tuple[tuple[str, str], ...]:
    """CNI_ARGS as containerd passes them; IgnoreUnknown=1 so that plugins reading CNI_ARGS do
    not refuse the keys they do not know."""
    pairs = (("IgnoreUnknown", "1"), ("K8S_POD_NAMESPACE", pod.namespace), ("K8S_POD_NAME", pod.name),
             ("K8S_POD_INFRA_CONTAINER_ID", pod.pod_id))
    for key, value in pairs:
        if any(character in value for character in ";=\0") or not value.isprintable():
            raise ValueError(f"{key} {value!r} cannot be passed in CNI_ARGS (no ';', '=' or control characters)")
    return pairs


def plugin_config(network: NetworkConfList, plugin: dict[str, Any], prev_result: dict[str, Any] | None,
                  capability_args: dict[str, Any]) -> dict[str, Any]:
    """The JSON a plugin reads on stdin: its own config with the list's name and cniVersion,
    the previous result, and runtimeConfig with the capability args it declares it takes."""
    config = {**plugin, "name": network.name, "cniVersion": network.cni_version}
    if prev_result is not None:
        config["prevResult"] = prev_result
    capabilities = plugin.get("capabilities") or {}
    runtime = {name: value for name, value in capability_args.items() if capabilities.get(name) is True}
    if runtime:
        config["runtimeConfig"] = runtime
    return config


def pod_ips(result: dict[str, Any], ifname: str = IFNAME) -> tuple[str, ...]:
    """The addresses of `result` (without prefix length): those on the pod's `ifname` in the
    sandbox first, as the CRI's PodSandboxStatus lists the primary IP first."""
    interfaces = result.get("interfaces") or []
    ips = [entry for entry in result.get("ips") or [] if isinstance(entry, dict) and "address" in entry]

    def on_pod_interface(entry: dict[str, Any]) -> bool:
        index = entry.get("interface")
        if not isinstance(index, int) or not 0 <= index < len(interfaces):
            return False
        interface = interfaces[index]
        return bool(interface.get("name") == ifname and interface.get("sandbox"))

    ordered = sorted(ips, key=lambda entry: not on_pod_interface(entry))  # stable: the plugin's order within each
    return tuple(str(entry["address"]).split("/", 1)[0] for entry in ordered)


def _version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        return (0,)


class PodNetwork:
    """The node's pod network: the config in `conf_dir`, the plugins in `bin_dirs`."""

    def __init__(self, conf_dir: Path, bin_dirs: Sequence[Path], timeout: float = DEFAULT_TIMEOUT) -> None:
        self.conf_dir = conf_dir
        self.bin_dirs = tuple(bin_dirs)
        self.timeout = timeout

    def _invocation(self, command: str, pod_id: str, netns: str, args: tuple[tuple[str, str], ...]) -> Invocation:
        return Invocation(command, pod_id, netns, IFNAME, args, self.bin_dirs)

    def _add_list(self, network: NetworkConfList, invocation: Invocation,
                  capability_args: dict[str, Any]) -> dict[str, Any]:
        """Each plugin's ADD in order, given the previous one's result; the last result."""
        result: dict[str, Any] | None = None
        for plugin in network.plugins:
            config = plugin_config(network, plugin, result, capability_args)
            result = run_plugin(plugin["type"], config, invocation, self.timeout)
            if result is None:
                raise PluginError(plugin["type"], "ADD", "printed no result")
        return result or {}

    def add(self, pod: PodRef, netns: Path, port_mappings: Sequence[PortMapping], cache_file: Path) -> Attachment:
        """Join the pod (its namespace at `netns`) to the network; its IPs. ConfError when there
        is no usable config, PluginError when a plugin fails (after undoing what the list did)."""
        network = load_network(self.conf_dir)
        args = cni_args(pod)
        capability_args: dict[str, Any] = {"portMappings": [mapping.capability() for mapping in port_mappings]}
        invocation = self._invocation("ADD", pod.pod_id, str(netns), args)
        try:
            result = self._add_list(network, invocation, capability_args)
            save_attachment(cache_file, CachedAttachment(pod.pod_id, IFNAME, str(netns), network.raw, args,
                                                         capability_args, result))
        except BaseException:
            try:
                self._delete(network, pod.pod_id, netns, args, capability_args, None)
            except PluginError as undo:
                logger.error("pod %s: undoing a failed ADD: %s", pod.pod_id, undo)
            remove_attachment(cache_file)
            raise
        return Attachment(network.name, pod_ips(result), result)

    def _delete(self, network: NetworkConfList, pod_id: str, netns: Path, args: tuple[tuple[str, str], ...],
                capability_args: dict[str, Any], prev_result: dict[str, Any] | None) -> None:
        """Each plugin's DEL in reverse order. Unlike libcni, a plugin that fails does not stop
        the ones before it in the list from releasing theirs; the first failure is raised after."""
        if _version(network.cni_version) < (0, 4, 0):
            prev_result = None  # a DEL's prevResult came with spec 0.4.0
        present = str(netns) if is_netns(netns) else ""
        invocation = self._invocation("DEL", pod_id, present, args)
        failures = []
        for plugin in reversed(network.plugins):
            try:
                run_plugin(plugin["type"], plugin_config(network, plugin, prev_result, capability_args), invocation,
                           self.timeout)
            except PluginError as failure:
                failures.append(failure)
        if failures:
            raise failures[0]

    def delete(self, pod: PodRef, netns: Path, port_mappings: Sequence[PortMapping], cache_file: Path) -> None:
        """Part the pod from its network: with the network, args, port mappings and result its
        ADD kept when there are some, else with the conf dir's network and `port_mappings`.
        Deleting twice, or a pod never added, or with its namespace gone, is fine; PluginError
        when a plugin fails (the cache stays, so a retry has all it needs)."""
        cached = load_attachment(cache_file)
        if cached is not None:
            network = network_of(cached.network)
            self._delete(network, pod.pod_id, netns, cached.args, cached.capability_args, cached.result)
        else:
            try:
                network = load_network(self.conf_dir)
            except ConfError:
                return  # nothing was added with a network we cannot know
            capability_args = {"portMappings": [mapping.capability() for mapping in port_mappings]}
            self._delete(network, pod.pod_id, netns, cni_args(pod), capability_args, None)
        remove_attachment(cache_file)


def attachment_of(cache_file: Path) -> Attachment | None:
    """The pod's attachment as its last ADD left it (PodSandboxStatus's IPs), None if none."""
    cached = load_attachment(cache_file)
    if cached is None:
        return None
    return Attachment(str(cached.network.get("name", "")), pod_ips(cached.result), cached.result)
