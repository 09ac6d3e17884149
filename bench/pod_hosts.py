"""The pod bench's private networks and its check that it left nothing on the host.

Each runtime's pods get a network of their own (tests/podnet_host.py's PrivateNetwork: conf
dir, bridge, subnet and host-local data dir under the bench's work dir), both in
10.214.0.0/16, which the test suite's networks (10.213.0.0/16) never use."""

from __future__ import annotations

import ipaddress
import os
import subprocess
from pathlib import Path

from tests.harness import mounts_under
from tests.podnet_host import PrivateNetwork, iptables_lines, run

__all__ = ["free_subnets", "leftovers", "new_network", "set_ip_forward"]

BENCH_RANGE = "10.214.0.0/16"
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def free_subnets(count: int, within: str = BENCH_RANGE) -> list[str]:
    """`count` /24s of `within` no route of the host's overlaps."""
    used = [ipaddress.ip_network(line.split()[0], strict=False) for line in run("ip", "-4", "route").splitlines()
            if line and line.split()[0][0].isdigit()]
    free = [str(candidate) for candidate in ipaddress.ip_network(within).subnets(new_prefix=24)
            if not any(candidate.overlaps(route) for route in used)]
    if len(free) < count:
        raise RuntimeError(f"fewer than {count} free /24s in {within}")
    return free[:count]


def new_network(root: Path, tag: str, subnet: str) -> PrivateNetwork:
    """A network named after the bench's pid and `tag` (one letter), its conflist written."""
    network = PrivateNetwork(root, f"cribench-{tag}-{os.getpid()}", f"cpb{tag}{os.getpid() % 1000000}", subnet)
    root.mkdir(parents=True)
    network.write_conf(network.conflist())
    return network


def set_ip_forward(value: str) -> None:
    IP_FORWARD.write_text(value)


def leftovers(work: Path, networks: list[PrivateNetwork]) -> list[str]:
    """What the bench left: processes naming its work dir, mounts or files under it, its
    bridges, iptables rules naming its networks or addresses of their subnets."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if entry.isdigit() and str(work).encode() in cmdline and int(entry) != os.getpid():
            shown = cmdline.replace(b"\0", b" ").decode(errors="replace")[:100]
            found.append(f"process {entry}: {shown}")
    found += [f"mount {point}" for point in mounts_under(work)]
    if work.exists():
        found.append(f"dir {work}")
    for network in networks:
        if Path(f"/sys/class/net/{network.bridge}").exists():
            found.append(f"bridge {network.bridge}")
        prefix = network.subnet.rsplit(".", 1)[0] + "."
        found += [f"iptables: {line}" for line in iptables_lines() if network.name in line or prefix in line]
    veths = subprocess.run(["ip", "-o", "link", "show", "type", "veth"], capture_output=True, text=True).stdout
    found += [f"veth {line.split()[1]}" for line in veths.splitlines()
              if any(f"master {network.bridge} " in line for network in networks)]
    return found
