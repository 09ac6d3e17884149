"""A pod's infra container and the files its containers share.

The infra container holds the pod's namespaces for as long as the pod is READY: catatonit in
pause mode (`-P`: it only waits for signals, as the kubelet's pause image does), from the
host's static `/usr/bin/catatonit` bind-mounted read-only into an empty, read-only rootfs in
the pod's dir. It joins the pod's network namespace (none of its own with the host's
network) and has new UTS, IPC and PID namespaces unless the pod shares the host's.

The pod's `resolv.conf` (from its DnsConfig, or the host's when it gives none, as containerd
does), `hostname` and `hosts` (the host's) live in the pod's dir; the infra container sees
them read-only at /etc/, and the pod's containers will bind-mount them too.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hostos.atomicfile import write_file_atomic

__all__ = ["CATATONIT", "HOST_HOSTS", "HOST_RESOLV_CONF", "DnsConfig", "InfraSpec", "infra_spec", "make_bundle",
           "resolv_conf", "write_pod_files"]

CATATONIT = Path("/usr/bin/catatonit")
INFRA_PATH = "/catatonit"
"""Where catatonit appears in the infra container."""
HOST_RESOLV_CONF = Path("/etc/resolv.conf")
HOST_HOSTS = Path("/etc/hosts")
POD_FILES = ("resolv.conf", "hostname", "hosts")
"""The pod's files, in its dir, each also at /etc/<name> in the infra container."""
MASKED_PATHS = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


@dataclass(frozen=True)
class DnsConfig:
    """The CRI's DNSConfig."""

    servers: Sequence[str] = ()
    searches: Sequence[str] = ()
    options: Sequence[str] = ()

    @property
    def empty(self) -> bool:
        return not (self.servers or self.searches or self.options)


@dataclass(frozen=True)
class InfraSpec:
    """What the infra container's config.json is made of."""

    netns: str
    """The pod's network namespace; "" with the host's network."""
    host_pid: bool = False
    host_ipc: bool = False
    hostname: str = ""
    sysctls: Mapping[str, str] = field(default_factory=dict)
    cgroups_path: str = ""
    """Where runc puts the container's cgroup ("" its default: /<container id>)."""
    shm: str = "/dev/shm"
    """The pod's /dev/shm, bind-mounted read-only (its tmpfs; the host's with host IPC)."""


def resolv_conf(dns: DnsConfig) -> str:
    """resolv.conf's text for a DnsConfig that gives something (containerd's order: search,
    nameserver, options)."""
    lines = []
    if dns.searches:
        lines.append("search " + " ".join(dns.searches))
    lines += [f"nameserver {server}" for server in dns.servers]
    if dns.options:
        lines.append("options " + " ".join(dns.options))
    return "\n".join(lines) + "\n"


def write_pod_files(pod_dir: Path, dns: DnsConfig, hostname: str) -> None:
    """The pod's resolv.conf, hostname and hosts (mode 0644: read by the containers' users)."""
    pod_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if dns.empty:
        shutil.copyfile(HOST_RESOLV_CONF, pod_dir / "resolv.conf")
    else:
        write_file_atomic(pod_dir / "resolv.conf", resolv_conf(dns).encode())
    write_file_atomic(pod_dir / "hostname", f"{hostname or socket.gethostname()}\n".encode())
    shutil.copyfile(HOST_HOSTS, pod_dir / "hosts")
    for name in POD_FILES:
        os.chmod(pod_dir / name, 0o644)


def _bind(source: Path | str, destination: str) -> dict[str, Any]:
    return {"destination": destination, "type": "bind", "source": str(source),
            "options": ["rbind", "ro", "nosuid", "nodev"]}


def infra_spec(pod_dir: Path, infra: InfraSpec) -> dict[str, Any]:
    """The infra container's OCI config: catatonit -P as root without capabilities, its root
    read-only, the pod's namespaces, files and /dev/shm."""
    namespaces: list[dict[str, str]] = [{"type": "mount"}]
    if infra.netns:
        namespaces += [{"type": "network", "path": infra.netns}, {"type": "uts"}]
    if not infra.host_pid:
        namespaces.append({"type": "pid"})
    if not infra.host_ipc:
        namespaces.append({"type": "ipc"})
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        {**_bind(infra.shm, "/dev/shm"), "options": ["rbind", "ro", "nosuid", "nodev", "noexec"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        _bind(CATATONIT, INFRA_PATH),
        *(_bind(pod_dir / name, f"/etc/{name}") for name in POD_FILES),
    ]
    if not infra.host_ipc:
        mounts.insert(4, {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
                          "options": ["nosuid", "noexec", "nodev"]})
    linux: dict[str, Any] = {"namespaces": namespaces, "maskedPaths": MASKED_PATHS, "readonlyPaths": READONLY_PATHS}
    if infra.sysctls:
        linux["sysctl"] = dict(infra.sysctls)
    if infra.cgroups_path:
        linux["cgroupsPath"] = infra.cgroups_path
    spec: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": [INFRA_PATH, "-P"],
                    "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "cwd": "/",
                    "capabilities": {"bounding": [], "effective": [], "permitted": []},
                    "noNewPrivileges": True},
        "root": {"path": "rootfs", "readonly": True},
        "mounts": mounts,
        "linux": linux,
    }
    if infra.netns and infra.hostname:
        spec["hostname"] = infra.hostname
    return spec


def make_bundle(pod_dir: Path, spec: dict[str, Any]) -> Path:
    """The infra's bundle in the pod's dir: an empty rootfs and `spec` as config.json; its path."""
    bundle = pod_dir / "bundle"
    (bundle / "rootfs").mkdir(mode=0o755, parents=True, exist_ok=True)
    os.chmod(bundle, 0o700)
    write_file_atomic(bundle / "config.json", json.dumps(spec, indent=1).encode())
    return bundle
