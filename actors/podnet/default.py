"""The network actord installs when the node has none (bin/install runs this module): a bridge
`actord0` on 10.88.0.0/16 (host-local addresses, the bridge the pods' gateway, their traffic
masqueraded out and hairpinned back), portmap for hostPorts (snat: reachable on 127.0.0.1 too),
firewall when the plugins include it (pods' traffic accepted by FORWARD whatever its policy),
and loopback (the pod's `lo` up). An existing config is never touched.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from actors.podnet.conf import conf_files
from actors.podnet.plugin import find_plugin

__all__ = ["DEFAULT_BRIDGE", "DEFAULT_CONF_FILE", "DEFAULT_NETWORK", "DEFAULT_SUBNET", "bridge_conflist",
           "install_default"]

DEFAULT_NETWORK = "actord-bridge"
DEFAULT_BRIDGE = "actord0"
DEFAULT_SUBNET = "10.88.0.0/16"
DEFAULT_CONF_FILE = "10-actord-bridge.conflist"
DEFAULT_CONF_DIR = Path("/etc/cni/net.d")
DEFAULT_BIN_DIR = Path("/usr/lib/cni")
CNI_VERSION = "1.0.0"
"""The newest spec Debian 12's plugins (1.1.1) speak."""


def bridge_conflist(bin_dirs: Sequence[Path], name: str = DEFAULT_NETWORK, bridge: str = DEFAULT_BRIDGE,
                    subnet: str = DEFAULT_SUBNET, data_dir: Path | None = None) -> dict[str, Any]:
    """The bridge network's list (tests make their own with another name, bridge, subnet and
    host-local `data_dir`, so that they touch neither the node's network nor each other)."""
    ipam: dict[str, Any] = {"type": "host-local", "ranges": [[{"subnet": subnet}]], "routes": [{"dst": "0.0.0.0/0"}]}
    if data_dir is not None:
        ipam["dataDir"] = str(data_dir)
    plugins: list[dict[str, Any]] = [
        {"type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": True, "hairpinMode": True, "ipam": ipam},
        {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
    ]
    if find_plugin("firewall", bin_dirs) is not None:
        plugins.append({"type": "firewall"})
    plugins.append({"type": "loopback"})
    return {"cniVersion": CNI_VERSION, "name": name, "plugins": plugins}


def install_default(conf_dir: Path, bin_dirs: Sequence[Path]) -> Path | None:
    """Write the default network into `conf_dir` when it holds no config; the file written,
    None when there was one already."""
    if conf_files(conf_dir):
        return None
    conf_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    path = conf_dir / DEFAULT_CONF_FILE
    temporary = conf_dir / f".{DEFAULT_CONF_FILE}.tmp"  # no config extension: never read half-written
    temporary.write_text(json.dumps(bridge_conflist(bin_dirs), indent=2) + "\n")
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m actors.podnet.default",
                                     description="Install actord's default pod network when there is none.")
    parser.add_argument("--cni-conf-dir", type=Path, default=DEFAULT_CONF_DIR)
    parser.add_argument("--cni-bin-dir", type=Path, default=DEFAULT_BIN_DIR)
    options = parser.parse_args(argv)
    written = install_default(options.cni_conf_dir, [options.cni_bin_dir])
    if written is None:
        print(f"{options.cni_conf_dir} has a network config already: left as it is")
    else:
        print(f"installed the default pod network ({DEFAULT_NETWORK}, bridge {DEFAULT_BRIDGE}, {DEFAULT_SUBNET}) "
              f"as {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
