"""A private pod network for the podnet tests, and what they check is left on the host.

Each network has its own conf dir, bridge, subnet and host-local data dir under a temporary
dir, so no test touches /etc/cni/net.d, the node's actord0 or another test's pods; what the
plugins make outside it (veths, iptables rules and chains, the bridge) is checked and removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from actors.podnet.cni import PodNetwork, PodRef, PortMapping
from actors.podnet.default import bridge_conflist
from actors.podnet.netns import create_netns, is_netns, list_netns, remove_netns
from tests.harness import mounts_under

BIN_DIRS = (Path("/usr/lib/cni"),)
SHARED_CHAINS = ("CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ", "CNI-FORWARD", "CNI-ADMIN")
"""Chains every pod of every CNI network shares (portmap's, firewall's): left in place by DEL."""
_networks = itertools.count()


def run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def iptables_lines() -> list[str]:
    return [line for table in ("nat", "filter") for line in run("iptables-save", "-t", table).splitlines()]


def free_subnet() -> str:
    """A /24 in 10.213.0.0/16 no route of the host's covers (nor overlaps)."""
    used = [ipaddress.ip_network(line.split()[0], strict=False) for line in run("ip", "-4", "route").splitlines()
            if line and line.split()[0][0].isdigit()]
    for candidate in ipaddress.ip_network("10.213.0.0/16").subnets(new_prefix=24):
        if not any(candidate.overlaps(route) for route in used):
            return str(candidate)
    raise AssertionError("no free /24 in 10.213.0.0/16")


def host_ipv4() -> str:
    """The host's first global IPv4 address (a hostPort's other way in besides 127.0.0.1)."""
    for line in run("ip", "-o", "-4", "addr", "show", "scope", "global").splitlines():
        return line.split()[3].split("/")[0]
    raise AssertionError("the host has no global IPv4 address")


def chain_name(network: str, pod_id: str, prefix: str = "") -> str:
    """The plugins' per-pod chain name (bridge's masquerade chain; portmap's with prefix DN-)."""
    return ("CNI-" + prefix + hashlib.sha512((network + pod_id).encode()).hexdigest())[:28]


@dataclass
class PrivateNetwork:
    """A network of the test's own; `add()` adds pods to it that `cleanup` deletes whatever happened."""

    root: Path
    name: str
    bridge: str
    subnet: str
    host_veths: dict[str, list[str]] = field(default_factory=dict)
    """The host ends of each pod's veths, from its ADD's result."""

    @property
    def conf_dir(self) -> Path:
        return self.root / "net.d"

    @property
    def netns_dir(self) -> Path:
        return self.root / "netns"

    @property
    def ipam_dir(self) -> Path:
        return self.root / "ipam"

    def conflist(self, **changes: Any) -> dict[str, Any]:
        config = bridge_conflist(BIN_DIRS, self.name, self.bridge, self.subnet, self.ipam_dir)
        config.update(changes)
        return config

    def write_conf(self, config: dict[str, Any], file_name: str = "10-test.conflist") -> Path:
        self.conf_dir.mkdir(exist_ok=True)
        path = self.conf_dir / file_name
        path.write_text(json.dumps(config))
        return path

    def network(self) -> PodNetwork:
        return PodNetwork(self.conf_dir, BIN_DIRS, timeout=30)

    def ref(self, pod_id: str) -> PodRef:
        return PodRef(pod_id, f"name-{pod_id}", "test-ns")

    def cache_file(self, pod_id: str) -> Path:
        return self.root / "pods" / pod_id / "cni-result.json"

    def add(self, pod_id: str, port_mappings: Sequence[PortMapping] = ()) -> tuple[Path, str]:
        """A pod's namespace and its ADD: (the netns path, the pod's IP)."""
        netns = create_netns(self.netns_dir, pod_id)
        attachment = self.network().add(self.ref(pod_id), netns, port_mappings, self.cache_file(pod_id))
        self.host_veths[pod_id] = [interface["name"] for interface in attachment.result.get("interfaces", [])
                                   if not interface.get("sandbox") and interface["name"] != self.bridge]
        assert self.host_veths[pod_id], attachment.result
        return netns, attachment.ips[0]

    def remove(self, pod_id: str, port_mappings: Sequence[PortMapping] = ()) -> None:
        """Stop (DEL) and remove (the namespace) as the CRI will."""
        self.network().delete(self.ref(pod_id), self.netns_dir / pod_id, port_mappings, self.cache_file(pod_id))
        remove_netns(self.netns_dir, pod_id)

    def leftovers(self, pod_id: str, ip: str | None) -> list[str]:
        """What the pod left on the host: its namespace, a veth on the bridge, its IP's
        host-local file, iptables rules or chains of its id or IP, its cached result."""
        found = []
        path = self.netns_dir / pod_id
        if path.exists() or is_netns(path):
            found.append(f"netns {path}")
        found += [f"mount {point}" for point in mounts_under(self.root)]
        found += [f"veth {name}" for name in self.host_veths.get(pod_id, []) if Path(f"/sys/class/net/{name}").exists()]
        if Path(f"/sys/class/net/{self.bridge}").exists():
            found += [f"bridge port {line.split()[1]}" for line in
                      run("ip", "-o", "link", "show", "master", self.bridge).splitlines()]
        allocations = self.ipam_dir / self.name
        if allocations.is_dir():
            found += [f"host-local allocation {entry.name}" for entry in allocations.iterdir()
                      if entry.name not in ("lock", "last_reserved_ip.0")]
        marks = [f'id: "{pod_id}"', chain_name(self.name, pod_id), chain_name(self.name, pod_id, "DN-")]
        if ip:
            marks.append(f"{ip}/32")
            marks.append(f"{ip}:")
        found += [f"iptables: {line}" for line in iptables_lines() if any(mark in line for mark in marks)]
        if self.cache_file(pod_id).exists():
            found.append(f"cached result {self.cache_file(pod_id)}")
        return found

    def masquerade_rules(self, pod_id: str) -> list[str]:
        """bridge's ipMasq rules and chain for the pod (nat table)."""
        chain = chain_name(self.name, pod_id)
        return [line for line in run("iptables-save", "-t", "nat").splitlines() if chain in line]

    def drop_masquerade(self, pod_id: str) -> None:
        """Remove bridge's ipMasq rules and chain for the pod: the POSTROUTING jump, then the chain."""
        drop_masquerade_chain(chain_name(self.name, pod_id))

    def sweep_iptables(self) -> None:
        """Remove what a failed test's pods left in iptables: rules naming the network or an
        address of its subnet, and the per-pod chains they jump to."""
        subnet = ipaddress.ip_network(self.subnet)
        addresses = re.compile(r"(?:-[sd] |--to-destination )(\d+\.\d+\.\d+\.\d+)")
        for table in ("nat", "filter"):
            chains = set()
            for rule in run("iptables-save", "-t", table).splitlines():
                named = f'name: \\"{self.name}\\"' in rule
                ours = any(ipaddress.ip_address(found) in subnet for found in addresses.findall(rule))
                if rule.startswith("-A ") and (named or ours):
                    subprocess.run(["iptables", "-t", table, "-D", *shlex.split(rule[3:])], capture_output=True,
                                   check=False)
                    target = rule.rsplit(" -j ", 1)[-1]
                    if target.startswith("CNI-") and target not in SHARED_CHAINS:
                        chains.add(target)
            for chain in chains:
                subprocess.run(["iptables", "-t", table, "-F", chain], capture_output=True, check=False)
                subprocess.run(["iptables", "-t", table, "-X", chain], capture_output=True, check=False)

    def cleanup(self) -> None:
        """Delete every pod still there (a failed test's), the namespaces, the bridge, the dir."""
        for pod_dir in sorted((self.root / "pods").glob("*")):
            with contextlib.suppress(Exception):
                self.network().delete(self.ref(pod_dir.name), self.netns_dir / pod_dir.name, (),
                                      self.cache_file(pod_dir.name))
        for pod_id in list_netns(self.netns_dir):
            remove_netns(self.netns_dir, pod_id)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)
        self.sweep_iptables()
        shutil.rmtree(self.root, ignore_errors=True)


def drop_masquerade_chain(chain: str) -> None:
    for line in run("iptables-save", "-t", "nat").splitlines():
        if line.startswith("-A POSTROUTING ") and line.endswith(f"-j {chain}"):
            run("iptables", "-t", "nat", "-D", *shlex.split(line[3:]))
    subprocess.run(["iptables", "-t", "nat", "-F", chain], capture_output=True, check=False)
    subprocess.run(["iptables", "-t", "nat", "-X", chain], capture_output=True, check=False)


@contextlib.contextmanager
def private_network() -> Iterator[PrivateNetwork]:
    """A PrivateNetwork with its conflist written; removed afterwards, failed or not."""
    number = next(_networks)
    network = PrivateNetwork(Path(tempfile.mkdtemp(prefix="adn-", dir="/tmp")), f"adt-{os.getpid()}-{number}",
                             f"adt{os.getpid() % 100000}x{number}", free_subnet())
    try:
        network.write_conf(network.conflist())
        yield network
    finally:
        network.cleanup()


def remove_idle_shared_chains(existed: set[str]) -> None:
    """Remove the shared chains the tests' pods made (not those there before), with the jumps to
    them, once no pod of anyone's uses them: the host as the tests found it."""
    made = shared_chains() - existed
    nat, forward = run("iptables-save", "-t", "nat"), run("iptables-save", "-t", "filter")
    pod_rules = [line for line in (nat + forward).splitlines()
                 if line.startswith(("-A CNI-HOSTPORT-DNAT ", "-A CNI-ADMIN "))
                 or (line.startswith("-A CNI-FORWARD ") and not line.endswith("-j CNI-ADMIN"))]
    if not made or pod_rules:
        return
    for table, rules in (("nat", nat), ("filter", forward)):
        chains = [chain for chain in made if f":{chain} " in rules]
        for rule in rules.splitlines():
            if rule.startswith("-A ") and any(rule.endswith(f"-j {chain}") for chain in chains):
                subprocess.run(["iptables", "-t", table, "-D", *shlex.split(rule[3:])], capture_output=True, check=True)
        for chain in chains:
            subprocess.run(["iptables", "-t", table, "-F", chain], capture_output=True, check=True)
        for chain in chains:
            subprocess.run(["iptables", "-t", table, "-X", chain], capture_output=True, check=True)


def shared_chains() -> set[str]:
    lines = iptables_lines()
    return {chain for chain in SHARED_CHAINS if f":{chain} - [0:0]" in lines}


LISTENER = """
import socket, sys
server = socket.create_server(("", int(sys.argv[1])))
print("listening", flush=True)
while True:
    connection, _ = server.accept()
    connection.sendall(sys.argv[2].encode())
    connection.close()
"""


@contextlib.contextmanager
def listener_in(netns: Path, port: int, token: str) -> Iterator[None]:
    """A TCP server in the namespace that answers every connection with `token`, until the end."""
    process = subprocess.Popen(["nsenter", f"--net={netns}", sys.executable, "-c", LISTENER, str(port), token],
                               stdout=subprocess.PIPE, text=True)
    try:
        stdout: IO[str] | None = process.stdout
        assert stdout is not None and stdout.readline() == "listening\n"
        yield
    finally:
        process.kill()
        process.wait()
