"""The pod network library with the real CNI plugins (Debian's, in /usr/lib/cni), real network
namespaces and the host's iptables: each test on a network of its own (tests/podnet_host.py).
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.podnet.cni import PodNetwork, PortMapping, attachment_of
from actors.podnet.conf import ConfError
from actors.podnet.netns import create_netns, is_netns, list_netns, remove_netns
from actors.podnet.plugin import PluginError, PluginNotFound
from actors.podnet.readiness import network_status
from tests.harness import free_port
from tests.podnet_host import (
    BIN_DIRS,
    PrivateNetwork,
    host_ipv4,
    listener_in,
    private_network,
    remove_idle_shared_chains,
    run,
    shared_chains,
)


@pytest.fixture(scope="module", autouse=True)
def _shared_chains_restored() -> Iterator[None]:
    existed = shared_chains()
    yield
    remove_idle_shared_chains(existed)


@pytest.fixture
def net() -> Iterator[PrivateNetwork]:
    with private_network() as network:
        yield network


def answer(host: str, port: int) -> bytes:
    with socket.create_connection((host, port), timeout=5) as connection:
        return connection.recv(64)


def answer_from(netns: Path, host: str, port: int) -> str:
    """What a client inside `netns` gets from host:port."""
    client = ("import socket, sys\nwith socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as c:\n"
              "    print(c.recv(64).decode())")
    return run("nsenter", f"--net={netns}", sys.executable, "-c", client, host, str(port)).strip()


def test_a_pod_gets_an_address_the_host_and_another_pod_reach_and_leaves_nothing(net: PrivateNetwork) -> None:
    netns_a, ip_a = net.add("pod-a")
    netns_b, ip_b = net.add("pod-b")
    assert ip_a != ip_b
    assert {ip_a, ip_b} <= {str(host) for host in ipaddress.ip_network(net.subnet).hosts()}
    assert "UP" in run("nsenter", f"--net={netns_a}", "ip", "-o", "link", "show", "lo").split(">")[0]
    assert attachment_of(net.cache_file("pod-a")) is not None
    with listener_in(netns_a, 8080, "from-a"), listener_in(netns_b, 8080, "from-b"):
        assert answer(ip_a, 8080) == b"from-a"
        assert answer_from(netns_b, ip_a, 8080) == "from-a"
        assert answer_from(netns_a, ip_b, 8080) == "from-b"
    kinds = {item.split()[0] for item in net.leftovers("pod-a", ip_a)}  # the check sees each kind while it is there
    assert {"netns", "mount", "veth", "bridge", "host-local", "iptables:", "cached"} <= kinds, kinds
    net.remove("pod-a")
    net.remove("pod-b")
    assert net.leftovers("pod-a", ip_a) == []
    assert net.leftovers("pod-b", ip_b) == []


def test_a_host_port_reaches_the_pod_on_localhost_and_the_hosts_address(net: PrivateNetwork) -> None:
    host_port = free_port()
    mappings = [PortMapping(host_port, 8080)]
    netns, ip = net.add("pod-p", mappings)
    with listener_in(netns, 8080, "mapped"):
        assert answer("127.0.0.1", host_port) == b"mapped"
        assert answer(host_ipv4(), host_port) == b"mapped"
    assert any(f"--dport {host_port}" in line for line in run("iptables-save", "-t", "nat").splitlines())
    net.remove("pod-p")
    assert net.leftovers("pod-p", ip) == []
    assert not any(f"--dport {host_port}" in line for line in run("iptables-save", "-t", "nat").splitlines())


def test_delete_after_a_restart_uses_the_kept_result_and_port_mappings(net: PrivateNetwork) -> None:
    host_port = free_port()
    netns, ip = net.add("pod-r", [PortMapping(host_port, 80)])
    # a new daemon: a new PodNetwork, no port mappings at hand, and the node's config since changed
    (net.conf_dir / "10-test.conflist").unlink()
    net.write_conf(net.conflist(name="another-network"), "05-another.conflist")
    assert list_netns(net.netns_dir) == ["pod-r"]
    PodNetwork(net.conf_dir, BIN_DIRS).delete(net.ref("pod-r"), netns, [], net.cache_file("pod-r"))
    remove_netns(net.netns_dir, "pod-r")
    assert net.leftovers("pod-r", ip) == []
    assert attachment_of(net.cache_file("pod-r")) is None


def test_delete_is_tolerant_of_a_pod_never_added_twice_deleted_or_its_namespace_gone(net: PrivateNetwork) -> None:
    network = net.network()
    network.delete(net.ref("never"), net.netns_dir / "never", [], net.cache_file("never"))
    netns, ip = net.add("pod-d", [PortMapping(free_port(), 80)])
    net.remove("pod-d")
    network.delete(net.ref("pod-d"), netns, [], net.cache_file("pod-d"))
    assert net.leftovers("pod-d", ip) == []

    netns, ip = net.add("pod-t", [PortMapping(free_port(), 80)])
    remove_netns(net.netns_dir, "pod-t")  # the namespace (and the veth in it) went before the DEL
    network.delete(net.ref("pod-t"), netns, [], net.cache_file("pod-t"))
    network.delete(net.ref("pod-t"), netns, [], net.cache_file("pod-t"))
    # all but bridge's masquerade chain: bridge (1.1.1) reads the addresses to unmasquerade off the
    # pod's eth0, gone with its namespace; so the CRI must DEL before it removes the namespace
    masquerade = net.masquerade_rules("pod-t")
    assert masquerade and sorted(net.leftovers("pod-t", ip)) == sorted(f"iptables: {line}" for line in masquerade)
    net.drop_masquerade("pod-t")
    assert net.leftovers("pod-t", ip) == []


def test_a_failing_plugin_is_named_and_its_add_leaves_nothing(net: PrivateNetwork) -> None:
    config = net.conflist()
    config["plugins"].insert(1, {"type": "no-such-plugin"})
    net.write_conf(config)
    netns = create_netns(net.netns_dir, "pod-f")
    with pytest.raises(PluginNotFound, match=r"CNI plugin 'no-such-plugin' failed \(ADD\): no executable"):
        net.network().add(net.ref("pod-f"), netns, [], net.cache_file("pod-f"))
    remove_netns(net.netns_dir, "pod-f")
    assert net.leftovers("pod-f", None) == []

    config = net.conflist()
    config["plugins"][0]["ipam"]["ranges"] = [[{"subnet": "10.300.0.0/24"}]]
    net.write_conf(config)
    netns = create_netns(net.netns_dir, "pod-g")
    with pytest.raises(PluginError, match=r"CNI plugin 'bridge' failed \(ADD\): .*10\.300\.0\.0/24"):
        net.network().add(net.ref("pod-g"), netns, [], net.cache_file("pod-g"))
    remove_netns(net.netns_dir, "pod-g")
    assert net.leftovers("pod-g", None) == []


def test_readiness_with_the_real_plugins(net: PrivateNetwork) -> None:
    assert network_status(net.conf_dir, BIN_DIRS).ready
    config = net.conflist()
    config["plugins"][0]["ipam"]["type"] = "no-such-ipam"
    net.write_conf(config)
    status = network_status(net.conf_dir, BIN_DIRS)
    assert not status.ready and status.reason == "NetworkPluginNotReady"
    assert "no-such-ipam" in status.message and "/usr/lib/cni" in status.message
    (net.conf_dir / "10-test.conflist").unlink()
    status = network_status(net.conf_dir, BIN_DIRS)
    assert not status.ready and f"no network config found in {net.conf_dir}" in status.message
    with pytest.raises(ConfError, match="no network config found"):
        net.network().add(net.ref("pod-x"), create_netns(net.netns_dir, "pod-x"), [], net.cache_file("pod-x"))


def test_a_netns_is_made_and_removed_idempotently_in_a_child(tmp_path: Path) -> None:
    ours = os.stat("/proc/self/ns/net").st_ino
    path = create_netns(tmp_path, "pod-n")
    try:
        assert is_netns(path) and create_netns(tmp_path, "pod-n") == path
        assert os.stat(path).st_ino != ours
        assert all(os.stat(f"/proc/self/task/{task}/ns/net").st_ino == ours for task in os.listdir("/proc/self/task"))
        assert run("nsenter", f"--net={path}", "ip", "-o", "link").count("\n") == 1  # lo alone
        assert list_netns(tmp_path) == ["pod-n"]
        with pytest.raises(ValueError, match=re.escape("pod id '../x' is not a valid netns name")):
            create_netns(tmp_path, "../x")
    finally:
        remove_netns(tmp_path, "pod-n")
    remove_netns(tmp_path, "pod-n")
    assert not path.exists() and list_netns(tmp_path) == []


@pytest.mark.slow
def test_twenty_pods_added_and_deleted_in_a_loop_leave_nothing(net: PrivateNetwork) -> None:
    ips = {}
    for round_number in range(2):
        for index in range(10):
            pod_id = f"loop-{round_number}-{index}"
            _, ips[pod_id] = net.add(pod_id, [PortMapping(free_port(), 80)])
        assert len(set(ips.values())) == len(ips)
        for pod_id in [pod for pod in ips if pod.startswith(f"loop-{round_number}-")]:
            net.remove(pod_id)
    for pod_id, ip in ips.items():
        assert net.leftovers(pod_id, ip) == []
