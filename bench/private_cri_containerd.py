"""containerd with its CRI plugin, private to the pod bench: its own root, state, socket, runc
root and CNI conf dir under the bench's work dir, configured as the CRI kit's containerd.sh
does (runc, cgroupfs, overlayfs, netns under the state dir, the registry mirrors, the pause
image `registry.k8s.io/pause:3.6`), started and stopped by pid.

What it leaves is removed by `stop`: its shims (found by this socket's path in their command
line) by pid, runc containers of its runc root, mounts under its dirs; containerd 1.6 shims put
their sockets under /run/containerd/s whatever the config says, so those dirs go too when this
run made them and they are empty."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

__all__ = ["CriContainerd", "CriContainerdError"]

SHIM = "containerd-shim-runc-v2"
SOCKET_ROOT = Path("/run/containerd")
PAUSE_IMAGE = "registry.k8s.io/pause:3.6"
"""The sandbox image, as the CRI kit's registry serves it."""
CAP_SYS_RESOURCE = 24

CONFIG = """\
# containerd config written by bench/cri_pods.py (as shared/cri/containerd.sh writes it)
version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.tracing",
  "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "{address}"

[ttrpc]
  address = "{address}.ttrpc"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = {restrict_oom}
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{runc_root}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin_dir}"
    conf_dir = "{cni_conf_dir}"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."registry.k8s.io"]
    endpoint = ["http://{registry}"]
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."gcr.io"]
    endpoint = ["http://{registry}"]
"""


class CriContainerdError(RuntimeError):
    """containerd could not be started."""


def restrict_oom_score_adj() -> bool:
    """True where the capability bounding set lacks CAP_SYS_RESOURCE: runc could not set the
    pause container's oom_score_adj -998 and every RunPodSandbox would fail (the kit's reason)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            return not (int(line.split()[1], 16) >> CAP_SYS_RESOURCE) & 1
    return True


class CriContainerd:
    """One containerd with its CRI on `work`/containerd.sock, its pods on `cni_conf_dir`'s network."""

    def __init__(self, work: Path, cni_conf_dir: Path, cni_bin_dir: Path, registry: str) -> None:
        self.work = work
        self.socket = work / "containerd.sock"
        self.runc_root = work / "runc"
        self.cni_conf_dir, self.cni_bin_dir, self.registry = cni_conf_dir, cni_bin_dir, registry
        self.process: subprocess.Popen[bytes] | None = None
        self.made = [path for path in (SOCKET_ROOT, SOCKET_ROOT / "s") if not path.exists()]
        """The shim socket dirs this run creates, to remove afterwards if left empty."""

    @staticmethod
    def missing() -> str | None:
        """Why containerd cannot be measured here, or None."""
        absent = [tool for tool in ("containerd", SHIM, "runc") if shutil.which(tool) is None]
        return f"{', '.join(absent)} not installed" if absent else None

    @property
    def pid(self) -> int:
        assert self.process is not None, "started"
        return self.process.pid

    def start(self, timeout: float = 30) -> None:
        """Start containerd and wait for its socket; CriContainerdError if it exits or never makes it."""
        self.work.mkdir(parents=True, exist_ok=True)
        config = self.work / "config.toml"
        config.write_text(CONFIG.format(
            root=self.work / "root", state=self.work / "state", address=self.socket, pause=PAUSE_IMAGE,
            restrict_oom=str(restrict_oom_score_adj()).lower(), runc_root=self.runc_root,
            cni_bin_dir=self.cni_bin_dir, cni_conf_dir=self.cni_conf_dir, registry=self.registry))
        with open(self.work / "containerd.log", "wb") as log:
            self.process = subprocess.Popen(["containerd", "--config", str(config)], stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self.socket.is_socket():
            if self.process.poll() is not None:
                raise CriContainerdError(f"containerd exited with {self.process.returncode}: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise CriContainerdError(f"containerd made no socket within {timeout:g}s: {self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self) -> str:
        """The last error containerd logged (else its last line)."""
        lines = (self.work / "containerd.log").read_text(errors="replace").strip().splitlines()
        errors = [line for line in lines if "level=error" in line or "level=fatal" in line]
        return (errors or lines or ["(no log)"])[-1]

    def shim_pids(self) -> list[int]:
        """The shims of this containerd (a shim's command line names its containerd's address)."""
        found = []
        for entry in os.listdir("/proc"):
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except (OSError, ValueError):
                continue
            if argv[0].endswith(SHIM.encode()) and str(self.socket).encode() in argv:
                found.append(int(entry))
        return found

    def stop(self) -> None:
        """Stop containerd by pid (its pods are removed before), then whatever it left: shims by
        pid, runc containers, mounts under the work dir, the shim socket dirs this run made."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in self.shim_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # it exited meanwhile
        runc_root = self.runc_root / "k8s.io"
        for container_id in sorted(os.listdir(runc_root)) if runc_root.is_dir() else []:
            subprocess.run(["runc", "--root", str(runc_root), "delete", "--force", container_id], capture_output=True)
        for path in reversed(self.made):
            try:
                path.rmdir()
            except OSError:
                pass  # not empty: someone else's containerd uses it too
