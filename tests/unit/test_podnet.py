"""The pod network's pure parts without root: the conf dir's rules (libcni's), what a plugin is
given (env, stdin) and how its answers are read, the kept result, readiness and the default
network, with plugins that are small scripts of the test's own."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from actors.podnet.cni import PodRef, PortMapping, cni_args, plugin_config, pod_ips
from actors.podnet.conf import ConfError, NoNetworkConf, conf_files, load_network, parse_conflist
from actors.podnet.default import DEFAULT_CONF_FILE, bridge_conflist, install_default
from actors.podnet.netns import netns_path
from actors.podnet.plugin import Invocation, PluginError, PluginNotFound, plugin_env, run_plugin
from actors.podnet.readiness import network_status
from actors.podnet.results import CachedAttachment, load_attachment, save_attachment

LIST = {"cniVersion": "1.0.0", "name": "net", "plugins": [{"type": "bridge", "ipam": {"type": "host-local"}},
                                                          {"type": "portmap", "capabilities": {"portMappings": True}}]}


def write(path: Path, value: Any) -> Path:
    path.write_text(value if isinstance(value, str) else json.dumps(value))
    return path


def test_the_first_config_file_by_name_is_the_network(tmp_path: Path) -> None:
    (tmp_path / "00-a-dir.conf").mkdir()
    write(tmp_path / "5-x.txt", "not a config")
    write(tmp_path / "20-b.conflist", {**LIST, "name": "second"})
    write(tmp_path / "10-a.conflist", LIST)
    write(tmp_path / "30-c.json", {"name": "third", "type": "bridge"})
    assert [path.name for path in conf_files(tmp_path)] == ["10-a.conflist", "20-b.conflist", "30-c.json"]
    network = load_network(tmp_path)
    assert (network.name, network.cni_version, network.plugin_types) == ("net", "1.0.0", ["bridge", "portmap"])
    assert network.source == tmp_path / "10-a.conflist"


def test_a_conf_file_is_a_list_of_one_plugin(tmp_path: Path) -> None:
    write(tmp_path / "99-one.conf", {"cniVersion": "0.4.0", "name": "one", "type": "bridge", "bridge": "br9"})
    network = load_network(tmp_path)
    assert (network.name, network.cni_version) == ("one", "0.4.0")
    assert network.plugins == ({"cniVersion": "0.4.0", "name": "one", "type": "bridge", "bridge": "br9"},)
    assert network.raw["plugins"] == list(network.plugins)


@pytest.mark.parametrize(("name", "content", "error"), [
    ("1.conflist", "{not json", "the list is not valid JSON"),
    ("1.conflist", [1], "the list is not a JSON object"),
    ("1.conflist", {"plugins": [{"type": "bridge"}]}, "no network name"),
    ("1.conflist", {"name": "n", "plugins": []}, "no plugins in the list"),
    ("1.conflist", {"name": "n"}, "no plugins in the list"),
    ("1.conflist", {"name": "n", "plugins": [{"bridge": "x"}]}, "plugin 0 has no 'type'"),
    ("1.conflist", {"name": "n", "plugins": [{"type": "../sh"}]}, "plugin 0: type '../sh' is not a plugin name"),
    ("1.conflist", {"name": "bad name", "plugins": [{"type": "x"}]}, "network name 'bad name' is not valid"),
    ("1.conflist", {"name": "n", "disableCheck": "maybe", "plugins": [{"type": "x"}]}, "invalid value 'maybe'"),
    ("1.conf", {"name": "n", "plugins": [{"type": "x"}]}, "the config has no 'type'"),
])
def test_a_bad_config_is_an_error_naming_its_file(tmp_path: Path, name: str, content: Any, error: str) -> None:
    write(tmp_path / name, content)
    write(tmp_path / "2-good.conflist", LIST)  # a later good one is not used instead
    with pytest.raises(ConfError, match=re.escape(f"network config {tmp_path / name}: {error}")):
        load_network(tmp_path)


def test_no_config_or_no_dir_is_no_network(tmp_path: Path) -> None:
    with pytest.raises(NoNetworkConf, match=re.escape(f"no network config found in {tmp_path}")):
        load_network(tmp_path)
    with pytest.raises(NoNetworkConf):
        load_network(tmp_path / "absent")


def test_a_list_string_flag_reads_as_libcni_reads_it() -> None:
    assert parse_conflist(json.dumps({**LIST, "disableCheck": "True"})).disable_check
    assert not parse_conflist(json.dumps(LIST)).disable_check


def test_each_plugin_gets_the_lists_name_version_prev_result_and_only_the_capabilities_it_asks_for() -> None:
    network = parse_conflist(json.dumps(LIST))
    capability_args = {"portMappings": [PortMapping(8080, 80).capability()], "bandwidth": {"rate": 1}}
    bridge = plugin_config(network, {**network.plugins[0], "name": "other", "cniVersion": "0.1.0"}, None,
                           capability_args)
    assert bridge == {"type": "bridge", "ipam": {"type": "host-local"}, "name": "net", "cniVersion": "1.0.0"}
    portmap = plugin_config(network, network.plugins[1], {"ips": []}, capability_args)
    assert portmap["prevResult"] == {"ips": []}
    assert portmap["runtimeConfig"] == {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}
    assert "runtimeConfig" not in network.plugins[1] and "prevResult" not in network.plugins[1]


def test_the_plugins_environment_sets_every_cni_variable_over_the_daemons() -> None:
    invocation = Invocation("ADD", "pod1", "/run/actord/netns/pod1", "eth0", cni_args(PodRef("pod1", "web", "team")),
                            (Path("/usr/lib/cni"), Path("/opt/cni/bin")))
    env = plugin_env(invocation, {"PATH": "/usr/sbin:/usr/bin", "CNI_COMMAND": "DEL", "CNI_STALE": "x"})
    assert env == {
        "PATH": "/usr/sbin:/usr/bin", "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "pod1",
        "CNI_NETNS": "/run/actord/netns/pod1", "CNI_IFNAME": "eth0",
        "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=team;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=pod1",
        "CNI_PATH": "/usr/lib/cni:/opt/cni/bin"}


@pytest.mark.parametrize(("pod", "error"), [
    (PodRef("p", "a;b", "ns"), "K8S_POD_NAME 'a;b' cannot be passed in CNI_ARGS"),
    (PodRef("p", "a", "x=y"), "K8S_POD_NAMESPACE 'x=y' cannot be passed in CNI_ARGS"),
    (PodRef("p", "a\n", "ns"), "K8S_POD_NAME 'a\\n' cannot be passed in CNI_ARGS"),
])
def test_names_that_would_break_cni_args_are_refused(pod: PodRef, error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        cni_args(pod)


@pytest.mark.parametrize(("mapping", "error"), [
    (dict(host_port=0, container_port=80), "hostPort 0 is not a port"),
    (dict(host_port=80, container_port=70000), "containerPort 70000 is not a port"),
    (dict(host_port=80, container_port=80, protocol="TCP"), "protocol 'TCP' is not one of tcp, udp, sctp"),
    (dict(host_port=80, container_port=80, host_ip="localhost"), "hostIP 'localhost' is not an IP address"),
])
def test_a_bad_port_mapping_is_refused_naming_the_field(mapping: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"port mapping: {error}")):
        PortMapping(**mapping)


def test_a_host_ip_is_passed_only_when_set() -> None:
    assert PortMapping(80, 8080, "udp", "127.0.0.1").capability() == {
        "hostPort": 80, "containerPort": 8080, "protocol": "udp", "hostIP": "127.0.0.1"}


def test_the_pods_ips_come_from_its_interface_in_the_sandbox_first() -> None:
    result = {"interfaces": [{"name": "br0"}, {"name": "veth1"}, {"name": "eth0", "sandbox": "/run/x"}],
              "ips": [{"address": "10.0.0.1/24", "interface": 0}, {"address": "fd00::5/64", "interface": 2},
                      {"address": "10.88.0.5/16", "interface": 2}, {"address": "192.0.2.9/32"}]}
    assert pod_ips(result) == ("fd00::5", "10.88.0.5", "10.0.0.1", "192.0.2.9")
    assert pod_ips({}) == ()


def test_the_kept_result_reads_back_and_a_bad_one_is_none(tmp_path: Path) -> None:
    attachment = CachedAttachment("pod1", "eth0", "/n/pod1", LIST, (("IgnoreUnknown", "1"),),
                                  {"portMappings": [PortMapping(1, 2).capability()]}, {"ips": [{"address": "a/1"}]})
    path = tmp_path / "pod1" / "cni-result.json"
    save_attachment(path, attachment)
    assert load_attachment(path) == attachment
    assert json.loads(path.read_text())["kind"] == "cniCacheV1"
    for bad in ("", "[]", '{"kind": "other"}', '{"kind": "cniCacheV1", "containerId": "p"}'):
        path.write_text(bad)
        assert load_attachment(path) is None
    assert load_attachment(tmp_path / "absent") is None


def plugin_script(directory: Path, name: str, body: str) -> Path:
    """A plugin of the test's own: a Python script run as the plugin binary."""
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(f"#!{sys.executable}\nimport json, os, sys, time\n{body}\n")
    path.chmod(0o755)
    return path


def invocation(bin_dir: Path) -> Invocation:
    return Invocation("ADD", "pod1", "/n/pod1", "eth0", (("IgnoreUnknown", "1"),), (bin_dir,))


def test_a_plugin_gets_its_config_on_stdin_and_the_cni_env_and_its_result_is_read(tmp_path: Path) -> None:
    plugin_script(tmp_path / "bin", "echo", "print(json.dumps({'stdin': json.load(sys.stdin), "
                  "'env': {k: v for k, v in os.environ.items() if k.startswith('CNI_')}, 'cwd': os.getcwd()}))")
    result = run_plugin("echo", {"type": "echo", "a": [1, "b"]}, invocation(tmp_path / "bin"))
    assert result is not None
    assert result["stdin"] == {"type": "echo", "a": [1, "b"]} and result["cwd"] == "/"
    assert result["env"]["CNI_COMMAND"] == "ADD" and result["env"]["CNI_PATH"] == str(tmp_path / "bin")


def test_a_plugins_error_object_is_its_error(tmp_path: Path) -> None:
    plugin_script(tmp_path / "bin", "failing", "print(json.dumps({'cniVersion': '1.0.0', 'code': 11, "
                  "'msg': 'no more addresses', 'details': 'range 10.88.0.0/30 is full'})); sys.exit(1)")
    with pytest.raises(PluginError, match=re.escape(
            "CNI plugin 'failing' failed (ADD): no more addresses (range 10.88.0.0/30 is full)")) as raised:
        run_plugin("failing", {}, invocation(tmp_path / "bin"))
    assert (raised.value.code, raised.value.plugin) == (11, "failing")


def test_a_plugin_failing_without_an_error_object_shows_what_it_wrote(tmp_path: Path) -> None:
    plugin_script(tmp_path / "bin", "crashing", "sys.stderr.write('panic: nil map'); sys.exit(2)")
    with pytest.raises(PluginError, match=re.escape("plugin 'crashing' failed (ADD): exit status 2: panic: nil map")):
        run_plugin("crashing", {}, invocation(tmp_path / "bin"))
    plugin_script(tmp_path / "bin", "babbling", "print('[1, 2]')")
    with pytest.raises(PluginError, match="its output is not a JSON object"):
        run_plugin("babbling", {}, invocation(tmp_path / "bin"))


def test_a_plugin_past_its_deadline_is_killed(tmp_path: Path) -> None:
    plugin_script(tmp_path / "bin", "hanging", "sys.stdin.read(); print('started', file=sys.stderr, flush=True); "
                  "time.sleep(3600)")
    with pytest.raises(PluginError, match=re.escape("CNI plugin 'hanging' failed (ADD): timed out after 0.5 s")):
        run_plugin("hanging", {}, invocation(tmp_path / "bin"), timeout=0.5)


def test_a_missing_or_not_executable_plugin_is_not_found(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    write(tmp_path / "bin" / "plain", "#!/bin/sh\n")
    for name in ("absent", "plain"):
        with pytest.raises(PluginNotFound, match=re.escape(f"no executable '{name}' in {tmp_path / 'bin'}")):
            run_plugin(name, {}, invocation(tmp_path / "bin"))


def test_readiness_names_what_is_missing(tmp_path: Path) -> None:
    conf, bin_dir = tmp_path / "net.d", tmp_path / "bin"
    conf.mkdir()
    status = network_status(conf, [bin_dir])
    assert (status.ready, status.reason) == (False, "NetworkPluginNotReady")
    assert status.message == f"cni config not loaded: no network config found in {conf}"
    write(conf / "10.conflist", LIST)
    for name in ("bridge", "portmap"):
        plugin_script(bin_dir, name, "")
    status = network_status(conf, [bin_dir])
    assert not status.ready
    assert status.message == (f"network 'net' ({conf / '10.conflist'}) needs CNI plugins missing from {bin_dir}: "
                              "host-local")
    plugin_script(bin_dir, "host-local", "")
    assert network_status(conf, [bin_dir]).ready
    write(conf / "05.conflist", "{")
    assert "not valid JSON" in network_status(conf, [bin_dir]).message


def test_the_default_network_goes_only_into_a_dir_without_config(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    plugin_script(bin_dir, "firewall", "")
    written = install_default(tmp_path / "net.d", [bin_dir])
    assert written == tmp_path / "net.d" / DEFAULT_CONF_FILE
    network = load_network(tmp_path / "net.d")
    assert (network.name, network.plugin_types) == ("actord-bridge", ["bridge", "portmap", "firewall", "loopback"])
    assert network.plugins[0]["bridge"] == "actord0" and network.plugins[0]["ipam"]["ranges"] == [
        [{"subnet": "10.88.0.0/16"}]]
    assert oct(os.stat(written).st_mode & 0o777) == "0o644"
    other = tmp_path / "other"
    other.mkdir()
    write(other / "50-mine.json", {"name": "mine", "type": "bridge"})
    assert install_default(other, [bin_dir]) is None and os.listdir(other) == ["50-mine.json"]
    assert "firewall" not in [plugin["type"] for plugin in bridge_conflist([tmp_path / "empty"])["plugins"]]


def test_a_pod_id_must_be_a_plain_file_name(tmp_path: Path) -> None:
    assert netns_path(tmp_path, "a1.b_c-d") == tmp_path / "a1.b_c-d"
    for bad in ("", ".hidden", "a/b", "..", "x" * 129):
        with pytest.raises(ValueError, match="is not a valid netns name"):
            netns_path(tmp_path, bad)
