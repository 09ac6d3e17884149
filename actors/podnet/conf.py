"""The network config a pod joins, found as libcni and containerd find it: the first file
(by name, byte order) in the conf dir ending in `.conflist`, `.conf` or `.json`; a `.conflist`
is a list (`name`, `cniVersion`, `plugins`), the other two a single plugin's config made into a
list of one. A file that does not parse is an error naming it, not skipped: the node's admin
sees why the network is not ready instead of pods joining another network.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CONF_EXTENSIONS", "ConfError", "NetworkConfList", "NoNetworkConf", "conf_files", "load_network",
           "network_of", "parse_conf", "parse_conflist"]

CONF_EXTENSIONS = (".conf", ".conflist", ".json")
NETWORK_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]*\Z", re.ASCII)
"""libcni's rule for a network name (it goes into file names and iptables comments)."""
PLUGIN_TYPE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]*\Z", re.ASCII)
"""A plugin's type is the name of its binary in the bin dirs: never a path."""
MAX_CONF_BYTES = 1 << 20


class ConfError(Exception):
    """A network config that cannot be used (the message names the file and what is wrong)."""


class NoNetworkConf(ConfError):
    """The conf dir holds no network config at all."""


@dataclass(frozen=True)
class NetworkConfList:
    """A network: its name, CNI version and the plugins run in turn for it (each the JSON
    object of its config), and the file it came from (None when built in memory)."""

    name: str
    cni_version: str
    plugins: tuple[dict[str, Any], ...]
    source: Path | None = None
    disable_check: bool = False
    raw: dict[str, Any] = field(default_factory=dict, compare=False)
    """The list as read (a `.conf` made into a list), kept with a pod's result for its DEL."""

    @property
    def plugin_types(self) -> list[str]:
        return [plugin["type"] for plugin in self.plugins]


def conf_files(conf_dir: Path) -> list[Path]:
    """The conf dir's config files in the order libcni tries them; none when there is no dir."""
    try:
        entries = list(os.scandir(conf_dir))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted((Path(entry.path) for entry in entries
                   if os.path.splitext(entry.name)[1] in CONF_EXTENSIONS and not entry.is_dir()),
                  key=lambda path: os.fsencode(path.name))


def load_network(conf_dir: Path) -> NetworkConfList:
    """The network of the first config file in `conf_dir`; NoNetworkConf when there is none,
    ConfError when it cannot be read or does not parse."""
    files = conf_files(conf_dir)
    if not files:
        raise NoNetworkConf(f"no network config found in {conf_dir}")
    path = files[0]
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_CONF_BYTES + 1)
    except OSError as exc:
        raise ConfError(f"cannot read network config {path}: {exc.strerror}") from exc
    if len(data) > MAX_CONF_BYTES:
        raise ConfError(f"network config {path} is larger than {MAX_CONF_BYTES} bytes")
    try:
        return parse_conflist(data, path) if path.suffix == ".conflist" else parse_conf(data, path)
    except ConfError as exc:
        raise ConfError(f"network config {path}: {exc}") from None


def _object(data: bytes | str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ConfError(f"{what} is not a JSON object")
    return value


def _plugin(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfError(f"{what} is not a JSON object")
    plugin_type = value.get("type")
    if not isinstance(plugin_type, str) or not plugin_type:
        raise ConfError(f"{what} has no 'type'")
    if not PLUGIN_TYPE.match(plugin_type):
        raise ConfError(f"{what}: type {plugin_type!r} is not a plugin name")
    capabilities = value.get("capabilities", {})
    if not isinstance(capabilities, dict):
        raise ConfError(f"{what}: 'capabilities' is not an object")
    return value


def _flag(raw: dict[str, Any], key: str) -> bool:
    """libcni's reading of a list's boolean: true/false, or the strings "true"/"false"."""
    value = raw.get(key, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ConfError(f"invalid value {value!r} for {key}")


def _network(raw: dict[str, Any], source: Path | None) -> NetworkConfList:
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ConfError("no network name")
    if not NETWORK_NAME.match(name):
        raise ConfError(f"network name {name!r} is not valid (letters, digits, '_', '.', '-')")
    version = raw.get("cniVersion", "")
    if not isinstance(version, str):
        raise ConfError(f"invalid cniVersion {version!r}")
    plugins = raw.get("plugins")
    if not isinstance(plugins, list) or not plugins:
        raise ConfError("no plugins in the list" if isinstance(plugins, list) or plugins is None
                        else f"invalid 'plugins' type {type(plugins).__name__}")
    checked = tuple(_plugin(plugin, f"plugin {index}") for index, plugin in enumerate(plugins))
    return NetworkConfList(name, version, checked, source, _flag(raw, "disableCheck"), raw)


def parse_conflist(data: bytes | str, source: Path | None = None) -> NetworkConfList:
    """A `.conflist`: a network's list of plugins."""
    return _network(_object(data, "the list"), source)


def parse_conf(data: bytes | str, source: Path | None = None) -> NetworkConfList:
    """A `.conf` or `.json`: one plugin's config, made into a list of one as libcni's
    ConfListFromConf does (the list takes the plugin's name and cniVersion)."""
    plugin = _plugin(_object(data, "the config"), "the config")
    return _network({"name": plugin.get("name"), "cniVersion": plugin.get("cniVersion", ""), "plugins": [plugin]},
                    source)


def network_of(raw: dict[str, Any]) -> NetworkConfList:
    """A list kept as JSON (a pod's cached attachment) read back; ConfError if it is not one."""
    return _network(raw, None)
