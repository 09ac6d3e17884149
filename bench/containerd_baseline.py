"""containerd as a second baseline for the benches: a private containerd on its own socket, root
and state under the bench's work dir, driven with `ctr`: image-less (`ctr run --rootfs`) for
bench.py, of imported images on its overlayfs snapshotter for images.py.

Everything it starts is stopped by pid and everything it writes removed. containerd 1.6
shims put their sockets under /run/containerd/s whatever --state says; those are removed
by the shims themselves, and the directories only if this run made them and left them empty.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from hostos.fdwait import readable

__all__ = ["ContainerdError", "EventLines", "PrivateContainerd"]

SHIM = "containerd-shim-runc-v2"
SOCKET_ROOT = Path("/run/containerd")
NAMESPACE = "default"
SNAPSHOTTER = "overlayfs"
"""The snapshotter containers of images get: containerd's default, as actord's overlay."""
CONTENT_DIR = "io.containerd.content.v1.content"
"""The content store below the root: the blobs as imported."""

CONFIG = """\
# `containerd config default` cut down to what `ctr run --rootfs` and `ctr run IMAGE` use: no
# CRI (and so no network), no optional snapshotters (overlayfs and native stay, and the content
# and image services), no tracing, no /opt plugin dir.
version = 2
root = "{root}"
state = "{state}"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.internal.v1.opt",
  "io.containerd.internal.v1.tracing",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = "{address}"
"""


class ContainerdError(RuntimeError):
    """containerd could not be started or did not do what was asked."""


class EventLines:
    """`ctr events` in the background: containerd's events, one line each, read as they come."""

    def __init__(self, command: list[str]) -> None:
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL)
        assert self.process.stdout is not None
        self.fd = self.process.stdout.fileno()
        self.pending = b""

    def discard(self) -> None:
        """Drop what has arrived so far."""
        while readable([self.fd], 0):
            if not os.read(self.fd, 1 << 16):
                break
        self.pending = b""

    def wait_exit(self, container_id: str, timeout: float = 30) -> None:
        """Read until the /tasks/exit event of `container_id`."""
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.pending:
                line, _, self.pending = self.pending.partition(b"\n")
                _, topic, body = line.partition(b" /tasks/exit ")
                if topic and json.loads(body).get("container_id") == container_id:
                    return
            if not readable([self.fd], deadline - time.monotonic()):
                raise ContainerdError(f"no exit event for {container_id} within {timeout:g}s")
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                raise ContainerdError("ctr events ended")
            self.pending += chunk

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)


class PrivateContainerd:
    """One containerd of the bench's own, and the `ctr` calls bench.py makes of it."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.root = work / "root"
        self.state = work / "state"
        self.address = str(work / "c.sock")
        self.runc_root = work / "runc"
        self.logs = work / "logs"
        self.process: subprocess.Popen[bytes] | None = None
        self.made = [path for path in (SOCKET_ROOT, SOCKET_ROOT / "s") if not path.exists()]
        """The shim socket dirs this run creates, to remove afterwards if left empty."""

    @staticmethod
    def missing() -> str | None:
        """Why containerd cannot be measured here, or None."""
        absent = [tool for tool in ("containerd", "ctr", SHIM) if shutil.which(tool) is None]
        return f"{', '.join(absent)} not installed" if absent else None

    def start(self, timeout: float = 15) -> str:
        """Start containerd and wait until it answers; its version. ContainerdError if it does not."""
        self.logs.mkdir(parents=True)
        config = self.work / "config.toml"
        config.write_text(CONFIG.format(root=self.root, state=self.state, address=self.address))
        with open(self.work / "containerd.log", "wb") as log:
            self.process = subprocess.Popen(["containerd", "--config", str(config)], stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise ContainerdError(f"containerd exited with {self.process.returncode}: {self.log_tail()}")
            try:
                answer = self.ctr("version", timeout=5)
                return next(line.split()[-1] for line in answer.splitlines() if "Version:" in line)
            except ContainerdError:
                if time.monotonic() > deadline:
                    raise ContainerdError(f"containerd did not answer within {timeout:g}s: {self.log_tail()}") from None
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        assert self.process is not None, "started"
        return self.process.pid

    def log_tail(self) -> str:
        """The last error containerd logged (else its last line): why it failed."""
        lines = (self.work / "containerd.log").read_text(errors="replace").strip().splitlines()
        errors = [line for line in lines if "level=error" in line or "level=fatal" in line]
        return (errors or lines or ["(no log)"])[-1]

    def ctr_command(self, *args: str) -> list[str]:
        return ["ctr", "--address", self.address, "--namespace", NAMESPACE, *args]

    def ctr(self, *args: str, timeout: float = 60) -> str:
        """Run `ctr ARGS` against this containerd; its output, or ContainerdError."""
        try:
            done = subprocess.run(self.ctr_command(*args), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ContainerdError(f"ctr {' '.join(args[:2])} did not finish within {timeout:g}s") from None
        if done.returncode != 0:
            raise ContainerdError(f"ctr {' '.join(args[:2])} failed: {done.stderr.strip()}")
        return done.stdout

    def start_container(self, container_id: str, bundle: Path) -> None:
        """`ctr run -d` of the bundle's rootfs with its process args and env (the same workload as
        actord's), with `_run_options`."""
        process = json.loads((bundle / "config.json").read_text())["process"]
        env = [option for item in process.get("env", []) for option in ("--env", item)]
        self.ctr("run", "-d", "--rootfs", *self._run_options(container_id), *env, str(bundle / "rootfs"),
                 container_id, *process["args"])

    def run_image(self, container_id: str, ref: str) -> None:
        """`ctr run -d` of the image `ref` as its config says (Entrypoint + Cmd, Env...), its
        root a snapshot of the overlayfs snapshotter (the image unpacked into it first if it is
        not yet); output, runc root and cgroup as `start_container` gives them."""
        self.ctr("run", "-d", "--snapshotter", SNAPSHOTTER, *self._run_options(container_id), ref, container_id)

    def _run_options(self, container_id: str) -> list[str]:
        """Output captured to a file by the shim, as actord's shims do; a cgroup named after the
        container, as runc gives one without a cgroupsPath; the runc root under the work dir."""
        return ["--runc-root", str(self.runc_root), "--cgroup", f"/{container_id}",
                "--log-uri", f"file://{self.logs / container_id}.log", "--pid-file", str(self.pid_file(container_id))]

    def import_image(self, archive: Path, name: str, timeout: float = 600) -> str:
        """Import the image tagged `latest` in the OCI layout tarball `archive` as NAME:latest,
        not unpacked (its first `run_image` unpacks it, as actord's first container of an image
        does); the reference."""
        self.ctr("images", "import", "--no-unpack", "--base-name", name, str(archive), timeout=timeout)
        return f"{name}:latest"

    def active_snapshots(self) -> list[str]:
        """The snapshots of containers (active ones) the snapshotter still holds: a deleted
        container's goes with containerd's garbage collection, shortly after."""
        listed = self.ctr("snapshots", "--snapshotter", SNAPSHOTTER, "list").splitlines()[1:]
        return [line.split()[0] for line in listed if line.split()[-1:] == ["Active"]]

    def pid_file(self, container_id: str) -> Path:
        return self.work / f"{container_id}.pid"

    def pid_of(self, container_id: str) -> int:
        """The host pid of the container's process."""
        return int(self.pid_file(container_id).read_text())

    def exec(self, container_id: str, exec_id: str, args: list[str]) -> None:
        self.ctr("task", "exec", "-d", "--exec-id", exec_id, "--log-uri", f"file://{self.logs / exec_id}.log",
                 container_id, *args)

    def remove(self, container_id: str) -> None:
        """Kill the container's task if it runs, delete it and the container (its shim exits)."""
        self.ctr("task", "delete", "--force", container_id)
        self.ctr("container", "delete", container_id)
        self.pid_file(container_id).unlink(missing_ok=True)

    def events(self) -> EventLines:
        return EventLines(self.ctr_command("events"))

    def shim_pids(self) -> list[int]:
        """The shims of this containerd (a shim's command line names its containerd's address)."""
        found = []
        for entry in os.listdir("/proc"):
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except (OSError, ValueError):
                continue
            if argv[0].endswith(SHIM.encode()) and self.address.encode() in argv:
                found.append(int(entry))
        return found

    def runc_containers(self) -> list[str]:
        """The runc containers of this containerd's shims (each a state dir in its runc root)."""
        runc_root = self.runc_root / NAMESPACE
        return sorted(os.listdir(runc_root)) if runc_root.exists() else []

    def stop(self) -> None:
        """Delete what is left, stop containerd and any shim left by pid, delete leftover runc
        containers, and remove the shim socket dirs this run made (the caller removes the work dir)."""
        if self.process is not None and self.process.poll() is None:
            try:
                for container_id in self.ctr("container", "list", "--quiet").split():
                    self.remove(container_id)
            except ContainerdError as exc:
                print(f"containerd clean-up: {exc}")
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
        for container_id in self.runc_containers():
            subprocess.run(["runc", "--root", str(self.runc_root / NAMESPACE), "delete", "--force", container_id],
                           capture_output=True)
        for path in reversed(self.made):
            try:
                path.rmdir()
            except OSError:
                pass  # not empty: someone else's containerd uses it too
