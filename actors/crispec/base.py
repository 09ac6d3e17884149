"""The spec every CRI container starts from: a constant, containerd's.

containerd's CRI builds on its own default (`oci.populateDefaultUnixSpec`), not on `runc spec`:
with the CRI's semantics (docker's 14 default capabilities, its masked and read-only paths, no
terminal, the root at `rootfs`) that `runc spec` does not share (3 capabilities, a terminal).
Taking the same constant keeps a CRI container what it is under containerd, and keeps the spec
pure logic: no runc is run to make one. As the CRI plugin applies it: without rlimits, seccomp
or AppArmor (`WithoutDefaultSecuritySettings`: the security context decides those), without the
/run tmpfs (`WithoutRunMount`), with the cgroup hierarchy mounted read-only (`WithMounts`).
"""

from __future__ import annotations

import copy
from typing import Any

from actors.crispec.capabilities import DEFAULT_CAPABILITIES

__all__ = ["DEFAULT_MASKED_PATHS", "DEFAULT_PATH", "DEFAULT_READONLY_PATHS", "base_spec"]

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_MASKED_PATHS = ("/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi")
DEFAULT_READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

_BASE: dict[str, Any] = {
    "ociVersion": "1.0.2-dev",
    "root": {"path": "rootfs", "readonly": False},
    "process": {
        "terminal": False,
        "user": {"uid": 0, "gid": 0},
        "args": [],
        "env": [DEFAULT_PATH],
        "cwd": "/",
        "capabilities": {"bounding": list(DEFAULT_CAPABILITIES), "effective": list(DEFAULT_CAPABILITIES),
                         "permitted": list(DEFAULT_CAPABILITIES)},
        "noNewPrivileges": False,
    },
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ],
    "linux": {
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}],
        "maskedPaths": list(DEFAULT_MASKED_PATHS),
        "readonlyPaths": list(DEFAULT_READONLY_PATHS),
    },
}


def base_spec() -> dict[str, Any]:
    """A fresh copy of the base, the caller's to change."""
    return copy.deepcopy(_BASE)
