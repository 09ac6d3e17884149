"""The CRI's gRPC server: RuntimeService and ImageService on a unix socket, in the daemon.

Nothing a client sends can make it take more than it was given:

* THREADS gRPC threads serve requests (each RPC holds one while it runs); at most
  MAX_CONCURRENT_RPCS may be running or queued, past that an RPC is answered
  RESOURCE_EXHAUSTED at once; pulls hold at most MAX_PULLS of the threads, so Version, Status
  and the rest are answered while pulls run.
* A connection may open MAX_STREAMS streams at once; a request is at most MAX_RECEIVE bytes
  (CRI requests are small; grpc's own default), an answer at most MAX_SEND (the kubelet's
  limit); a connection idle for IDLE_MS is closed (the client reconnects when it needs to).
* Its fds are in the daemon's reserve (actors/fdbudget.py: CRI_FDS).

The socket is the control socket's kin: root's alone (0600), or root:GROUP 0660 with
--socket-group. A socket file left by a daemon that died is replaced; a path where something
answers, or that is not a socket, is refused. At stop: no new RPC, those under way get a
moment, calls to the daemon are interrupted, the threads end and the socket file goes.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import zmq
from cri_api.v1 import api_pb2_grpc

from actors.cri.containers import CriContainers
from actors.cri.containerstore import ContainerStore
from actors.cri.daemonlink import DaemonLink
from actors.cri.images import ImageServicer
from actors.cri.runtime import RuntimeServicer
from actors.cri.sandboxes import PodSandboxes
from actors.podnet.cni import PodNetwork
from actors.pods.store import PodStore

__all__ = ["THREADS", "CriServer", "CriStartError", "PodSettings"]

logger = logging.getLogger(__name__)

THREADS = 8
MAX_CONCURRENT_RPCS = 64
MAX_PULLS = THREADS - 2
MAX_STREAMS = 16
MAX_RECEIVE = 4 << 20
MAX_SEND = 16 << 20
IDLE_MS = 5 * 60 * 1000
STOP_GRACE = 2.0
"""Seconds the RPCs under way get at stop before they are cancelled."""


@dataclass(frozen=True)
class PodSettings:
    """Where pods are kept and how they are networked."""

    pods_dir: Path
    """The pod store (`<root>/pods`)."""
    netns_dir: Path
    """The pods' network namespaces (`<state-dir>/netns`)."""
    shm_dir: Path
    """The pods' /dev/shm mounts (`<state-dir>/pods`)."""
    cni_conf_dir: Path
    cni_bin_dirs: tuple[Path, ...]


class CriStartError(Exception):
    """The CRI cannot be served; the message names the socket and why."""


def clear_stale_socket(path: Path) -> None:
    """Remove a socket file no one listens on (a dead daemon's); CriStartError for a live one
    or for anything that is not a socket."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise CriStartError(f"--cri-address: {path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(os.fspath(path))
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise CriStartError(f"--cri-address: cannot check {path}: {exc.strerror}") from None
        path.unlink(missing_ok=True)
        return
    finally:
        probe.close()
    raise CriStartError(f"--cri-address: something already serves {path} (another runtime?)")


class CriServer:
    """The gRPC server of one daemon, its socket at `path`."""

    def __init__(self, path: Path, context: zmq.Context[zmq.Socket[bytes]], images_dir: Path, pods: PodSettings, *,
                 group: int, shared: bool) -> None:
        self.path = path
        self.context = context
        self.images_dir = images_dir
        self.pods = pods
        self.group = group
        self.shared = shared
        """--socket-group given: root:GROUP 0660, else 0600."""
        self.link: DaemonLink | None = None
        self.executor: ThreadPoolExecutor | None = None
        self.server: grpc.Server | None = None

    def start(self) -> None:
        """Listen and serve; CriStartError if the socket cannot be had (nothing is left then)."""
        try:
            self.path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        except OSError as exc:
            raise CriStartError(f"--cri-address: cannot make {self.path.parent}: {exc.strerror}") from None
        clear_stale_socket(self.path)
        self.link = DaemonLink(self.context)
        self.executor = ThreadPoolExecutor(THREADS, thread_name_prefix="cri")
        self.server = grpc.server(self.executor, maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS, options=[
            ("grpc.max_concurrent_streams", MAX_STREAMS),
            ("grpc.max_receive_message_length", MAX_RECEIVE),
            ("grpc.max_send_message_length", MAX_SEND),
            ("grpc.max_connection_idle_ms", IDLE_MS),
        ])
        api_pb2_grpc.add_RuntimeServiceServicer_to_server(self._runtime(self.link), self.server)
        api_pb2_grpc.add_ImageServiceServicer_to_server(
            ImageServicer(self.link, self.images_dir, MAX_PULLS), self.server)
        try:
            bound = self.server.add_insecure_port(f"unix://{self.path}")
        except RuntimeError as exc:
            bound, reason = 0, str(exc)
        else:
            reason = "grpc could not bind it"
        if not bound:
            self.stop()
            raise CriStartError(f"--cri-address: cannot listen on {self.path}: {reason}")
        try:
            self.server.start()
            os.chown(self.path, -1, self.group)
            os.chmod(self.path, 0o660 if self.shared else 0o600)
        except OSError as exc:
            self.stop()
            raise CriStartError(f"--cri-address: cannot set the access of {self.path}: {exc.strerror}") from None
        logger.info("CRI v1 (RuntimeService, ImageService) served on unix://%s", self.path)

    def _runtime(self, link: DaemonLink) -> RuntimeServicer:
        """The RuntimeService on the pod and container stores as the root keeps them (a restart
        finds every pod and container again)."""
        store = PodStore(self.pods.pods_dir)
        try:
            found = store.load()
        except OSError as exc:
            self.stop()
            raise CriStartError(f"cannot read the pod store {self.pods.pods_dir}: {exc.strerror}") from None
        if found:
            logger.info("%d pod sandbox(es) read back from %s", len(found), self.pods.pods_dir)
        containers = CriContainers(link, store, ContainerStore(self.pods.pods_dir), self.images_dir / "containers",
                                   self.pods.shm_dir)
        try:
            kept = containers.store.load()
        except OSError as exc:
            self.stop()
            raise CriStartError(f"cannot read the CRI containers in {self.pods.pods_dir}: {exc.strerror}") from None
        if kept:
            logger.info("%d CRI container(s) read back from %s", len(kept), self.pods.pods_dir)
        network = PodNetwork(self.pods.cni_conf_dir, self.pods.cni_bin_dirs)
        sandboxes = PodSandboxes(link, store, network, self.pods.netns_dir, self.pods.shm_dir, containers)
        sandboxes.sweep()
        return RuntimeServicer(sandboxes, containers, self.pods.cni_conf_dir, self.pods.cni_bin_dirs, link=link)

    def stop(self) -> None:
        """Stop serving, end every thread, close every socket, remove the socket file."""
        if self.server is not None:
            done = self.server.stop(STOP_GRACE)
            if self.link is not None:
                self.link.interrupt_all()
            done.wait()
            self.server = None
        if self.executor is not None:
            self.executor.shutdown(wait=True)
            self.executor = None
        if self.link is not None:
            self.link.close()
            self.link = None
        self.path.unlink(missing_ok=True)
        logger.info("CRI server stopped: no gRPC thread left, %s removed", self.path)
