"""The daemon: its assembly of actors and sockets (its command line: actors/command.py).

Start-up order matters: the state dir lock is taken before any socket is bound
(a second bind on an ipc path would silently steal the first daemon's socket),
the spawner is started before any actor thread exists, and the bus binds
before it dispatches.
"""

from __future__ import annotations

import fcntl
import logging
import os
import resource
import shutil
import signal
import subprocess
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import pykka
import zmq
import zmq.auth
from pykka.debug import log_thread_tracebacks
from zmq.auth.thread import ThreadAuthenticator

from actors import __version__
from actors.bus import Bus
from actors.cri.address import cri_socket_path
from actors.curve import Curve, ipc_path
from actors.eventlog import EventLog
from actors.eventlog.publisher import EventPublisher
from actors.eventlog.store import EventStore
from actors.fdbudget import fd_reserve
from actors.images.pull import PullSettings
from actors.images.service import ImageService, remount_image_bundles
from actors.inspector import Inspector
from actors.metrics import Metrics, MetricsServer
from actors.monitor import Monitor
from actors.pidfile import PidFile, PidFileError
from actors.pods.service import Pods
from actors.rootdir import RootDir
from actors.service.health import Health
from actors.service.notify import Notifier
from actors.service.shim_cgroup import DEFAULT_SHIM_CGROUP, ShimCgroupError, prepare, remove_if_empty, shim_cgroup_dirs
from actors.service.watch import ServiceWatch
from actors.statedir import StateDir
from actors.supervisor import Supervisor
from actors.supervisor.restart import Backoff
from actors.wire.api import PROTOCOL_VERSION
from actors.worker import Worker
from actors.worker.runtime import Runtime
from actors.worker.spawner import Spawner

if TYPE_CHECKING:
    from actors.cri.server import CriServer  # imported when the CRI is on (Daemon._serve_cri)

__all__ = ["DEFAULT_STATE_DIR", "Daemon", "StartupError"]

logger = logging.getLogger("actord")

DEFAULT_STATE_DIR = "/run/actord"
DEFAULT_CNI_CONF_DIR = Path("/etc/cni/net.d")
DEFAULT_CNI_BIN_DIRS = (Path("/usr/lib/cni"),)


class StartupError(click.ClickException):
    """A reason the daemon cannot start; exits 1 with the message."""


def lock_dir(lock_file: Path, directory: Path) -> int:
    """Hold an exclusive flock on a directory (the state dir, the root) for the daemon's lifetime."""
    try:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StartupError(f"cannot open the lock file {lock_file}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StartupError(f"another actord (pid {holder}) is running on {directory}") from None
    record = f"{os.getpid():<15}\n".encode()  # fixed width: rewritten in place, so a full disk cannot refuse it
    os.pwrite(fd, record, 0)
    os.ftruncate(fd, len(record))
    return fd


def raise_fd_limit() -> None:
    """Raise the soft RLIMIT_NOFILE to the hard limit: the daemon holds a few fds per container.

    The spawner and shims inherit it; a container gets the rlimits of its OCI config.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError) as exc:
            logger.warning("cannot raise the open-files limit from %d to %d: %s", soft, hard, exc)
            return
    logger.info("open-files limit: %d (was %d)", hard, soft)


def runtime_version(binary: str) -> str:
    try:
        done = subprocess.run([binary, "--version"], capture_output=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        raise StartupError(f"the runtime {binary!r} does not run: {exc}") from None
    return done.stdout.decode(errors="replace").splitlines()[0].strip()


class Daemon:
    """One running actord: its lock, spawner, bus and actors."""

    def __init__(self, state: StateDir, root: RootDir, backoff: Backoff, *, listen: str | None, workers: int,
                 start_timeout: float, retain_count: int, runtime: str, events_hwm: int,
                 log_limit: int, pidfile: Path | None, events_buffer: int = 0,
                 socket_group: int | None = None, curve: Curve | None = None,
                 settings: dict[str, Any] | None = None, metrics_address: str | None = None,
                 shim_cgroup: str = DEFAULT_SHIM_CGROUP, pulls: PullSettings | None = None,
                 cri_address: str | None = None, cni_conf_dir: Path = DEFAULT_CNI_CONF_DIR,
                 cni_bin_dirs: tuple[Path, ...] = DEFAULT_CNI_BIN_DIRS) -> None:
        self.state = state
        self.root = root
        self.backoff = backoff
        self.control_address = listen or state.ipc(state.control_socket)
        self.control_path = ipc_path(self.control_address)
        self.events_address = state.ipc(state.events_socket)
        self.shim_address = state.ipc(state.shim_socket)
        state.check_socket_paths()
        self.log_limit = log_limit
        self.pidfile = None if pidfile is None else PidFile(pidfile)
        self.workers = workers
        self.start_timeout = start_timeout
        self.retain_count = retain_count
        self.runtime_binary = runtime
        self.events_hwm = events_hwm
        self.events_buffer = events_buffer
        self.socket_group = socket_group
        self.group = os.getgid() if socket_group is None else socket_group
        """The group owning the state dir and the client sockets."""
        self.curve = curve
        self.settings = settings or {}
        """The effective `start` options and the config file read: `version` shows them."""
        self.metrics_address = metrics_address
        self.shim_cgroup = shim_cgroup
        self.pulls = pulls or PullSettings()
        self.cri_socket = cri_socket_path(cri_address, state.root)  # after the state dir's own path check
        """Where the CRI is served (None: it is not; grpc is then never imported)."""
        self.cni_conf_dir = cni_conf_dir
        self.cni_bin_dirs = cni_bin_dirs
        """The pods' CNI network: its config's dir and the dirs of its plugins."""
        self.stopping = threading.Event()

    def run(self) -> None:
        notifier = Notifier.from_environment()  # before anything inherits our environment
        try:
            self._run_notifying(notifier)
        finally:
            notifier.close()

    def _run_notifying(self, notifier: Notifier) -> None:
        os.umask(0o077)  # whatever is made in the state dir is root's alone, unless chmod says otherwise
        raise_fd_limit()
        self._prepare_state_dir()
        lock_fd = lock_dir(self.state.lock_file, self.state.root)
        try:
            root_lock_fd = lock_dir(self.root.lock_file, self.root.root)
        except StartupError:
            os.close(lock_fd)
            raise
        try:
            if self.pidfile is not None:
                try:
                    self.pidfile.write()
                except PidFileError as exc:
                    raise StartupError(str(exc)) from None
            self._run(notifier)
        finally:
            if self.pidfile is not None and not self.pidfile.remove():
                logger.warning("pidfile %s left in place: it no longer holds our pid", self.pidfile.path)
            os.close(root_lock_fd)
            os.close(lock_fd)

    def _prepare_state_dir(self) -> None:
        """Root's alone (0700), or root:GROUP 0710 with --socket-group: the group may pass through
        to the two sockets it is given, and can neither list nor open anything else."""
        root = self.state.root
        try:
            root.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chown(root, -1, self.group)
            os.chmod(root, 0o700 if self.socket_group is None else 0o710)
            for directory in (self.state.containers, self.state.runtime_root, self.state.shims, self.state.outputs):
                directory.mkdir(mode=0o700, exist_ok=True)
        except OSError as exc:
            raise StartupError(f"cannot prepare the state dir {root}: {exc.strerror}") from None
        try:
            self.root.prepare()
            legacy_seq = self.state.root / "events.seq"  # where an actord before --root kept it
            if legacy_seq.exists() and not self.root.event_seq.exists():
                shutil.copyfile(legacy_seq, self.root.event_seq)
            legacy_seq.unlink(missing_ok=True)
        except OSError as exc:
            raise StartupError(f"cannot prepare the root {self.root.root}: {exc.strerror}") from None

    def _set_socket_access(self) -> None:
        """The shim socket is root's alone; the control and event sockets are too (0600), or
        root:GROUP 0660 with --socket-group."""
        try:
            os.chmod(self.state.shim_socket, 0o600)
            for path in (self.control_path, self.state.events_socket):
                if path is not None:
                    os.chown(path, -1, self.group)
                    os.chmod(path, 0o600 if self.socket_group is None else 0o660)
        except OSError as exc:
            raise StartupError(f"cannot set the access of the daemon's sockets: {exc}") from None

    def _start_authenticator(self, context: zmq.Context[zmq.Socket[bytes]]) -> ThreadAuthenticator | None:
        """With CURVE, the ZAP handler that admits only the authorized public keys (without one,
        a CURVE server would admit any key)."""
        if self.curve is None:
            return None
        authenticator = ThreadAuthenticator(context, log=logging.getLogger("actord.auth"))
        authenticator.start()
        authenticator.configure_curve(domain="*", location=self.curve.authorized_keys)
        return authenticator

    def _serve_metrics(self, metrics: Metrics) -> MetricsServer:
        assert self.metrics_address is not None
        try:
            server = MetricsServer(self.metrics_address, metrics.registry)
        except OSError as exc:
            raise StartupError(f"--metrics-address {self.metrics_address}: cannot listen: "
                               f"{exc.strerror or exc}") from None
        logger.info("metrics at http://%s/metrics", self.metrics_address)
        return server

    def _serve_cri(self, context: zmq.Context[zmq.Socket[bytes]]) -> CriServer:
        """The CRI's gRPC server, serving (actors/cri/server.py); imported only here: grpc costs
        a daemon that serves no CRI nothing."""
        assert self.cri_socket is not None
        from actors.cri.server import CriServer, CriStartError, PodSettings

        pods = PodSettings(self.root.pods, self.state.netns, self.state.pods, self.cni_conf_dir, self.cni_bin_dirs)
        server = CriServer(self.cri_socket, context, self.root.images, pods, group=self.group,
                           shared=self.socket_group is not None)
        try:
            server.start()
        except CriStartError as exc:
            raise StartupError(str(exc)) from None
        return server

    def _shim_cgroups(self) -> list[Path]:
        """The shims' cgroups (see actors.service.shim_cgroup), made if missing."""
        try:
            dirs = shim_cgroup_dirs(self.shim_cgroup, os.getpid())
            prepare(dirs)
        except ShimCgroupError as exc:
            raise StartupError(str(exc)) from None
        except OSError as exc:
            raise StartupError(f"--shim-cgroup {self.shim_cgroup}: cannot make the cgroup {exc.filename}: "
                               f"{exc.strerror} (--shim-cgroup none keeps the shims in actord's cgroup)") from None
        if dirs:
            logger.info("shims run in %s", ", ".join(map(str, dirs)))
        else:
            logger.info("shims run in actord's cgroup (--shim-cgroup none): stopping actord's cgroup stops them")
        return dirs

    def _run(self, notifier: Notifier) -> None:
        binary = shutil.which(self.runtime_binary)
        if binary is None:
            raise StartupError(f"the runtime {self.runtime_binary!r} is not installed (try: apt-get install runc)")
        info = {
            "version": __version__,
            "protocol": PROTOCOL_VERSION,
            "runtime": runtime_version(binary),
            "state_dir": str(self.state.root),
            "root": str(self.root.root),
            "events_address": self.events_address,
            "pid": os.getpid(),
            "settings": self.settings,
        }
        for stale in self.state.daemon_sockets:
            stale.unlink(missing_ok=True)

        try:
            store = EventStore(self.state.event_log, self.retain_count, self.root.event_seq)
        except OSError as exc:
            raise StartupError(f"cannot open the event log in {self.state.root}: {exc.strerror}") from None
        reported = {e["token"] for e in store.events if e["type"] == "exit" and "token" in e}
        shim_cgroups = self._shim_cgroups()
        spawner = Spawner(self.state.spawner_socket, f"actor-shim-spawner {self.state.root}",
                          tuple(str(directory / "cgroup.procs") for directory in shim_cgroups))
        try:
            spawner.start()
        except (OSError, RuntimeError) as exc:
            raise StartupError(f"cannot start the shim spawner: {exc}") from None
        context = zmq.Context()
        context.setsockopt(zmq.LINGER, 0)
        authenticator = self._start_authenticator(context)
        boot = uuid.uuid4().hex  # this run's id, in every event, heartbeat and welcome: subscribers tell a restart
        bus = Bus(context, control_address=self.control_address,
                  curve_secret_key=None if self.curve is None else self.curve.secret_key,
                  internal=None if self.cri_socket is None else "cri")
        runtime = Runtime(binary, self.state.runtime_root)
        worker_names = [f"worker-{n}" for n in range(self.workers)]
        metrics = None if self.metrics_address is None else Metrics()  # nothing is counted that no one reads
        metrics_server = None
        cri: CriServer | None = None
        reserve = fd_reserve(metrics=self.metrics_address is not None, network=self.control_path is None,
                             cri=self.cri_socket is not None)
        logger.info("keeping %d file descriptors free for clients: starts are refused (busy) below that", reserve)
        try:
            if metrics is not None:
                metrics_server = self._serve_metrics(metrics)
            try:
                publisher = EventPublisher(context, self.events_address, boot=boot, hwm=self.events_hwm,
                                           buffer=self.events_buffer)
                bus.register("eventlog", EventLog.start(context, store, boot, metrics, publisher))
                bus.register("monitor", Monitor.start(context, None if metrics is None else metrics.exit_clock,
                                                      self.shim_address))
            except zmq.ZMQError as exc:
                raise StartupError(f"cannot bind the daemon's sockets: {exc}") from None
            bus.register("inspector", Inspector.start(context))
            bus.register("pods", Pods.start(context, self.root.pods))
            for name in worker_names:
                bus.register(name, Worker.start(
                    context, name, state=self.state, root=self.root, runtime=runtime, spawner=spawner,
                    start_timeout=self.start_timeout, report_address=self.shim_address,
                    log_limit=self.log_limit, fd_reserve=reserve,
                ))
            remount_image_bundles(self.root.images, binary)  # before any restart policy runs
            bus.register("images", ImageService.start(context, self.root.images, runtime=binary,
                                                      pull_settings=self.pulls))
            supervisor = Supervisor.start(context, state=self.state, root=self.root, workers=worker_names,
                                          info=info, reported=reported, metrics=metrics, backoff=self.backoff,
                                          health=Health(binary, spawner))
            bus.register("supervisor", supervisor)
            if self.cri_socket is not None:  # serving when the control socket is: its calls wait for the bus
                cri = self._serve_cri(context)
            bus.start()
            bus.ready.wait()
            if bus.error is not None:
                raise StartupError(f"cannot bind the daemon's sockets: {bus.error}")
            self._set_socket_access()
            logger.info("actord %s serving %s (runtime %s, %d workers)",
                        __version__, self.control_address, info["runtime"], self.workers)
            self._catch_signals()
            watch = ServiceWatch(notifier, supervisor, bus, spawner)
            try:
                watch.wait_ready(self.stopping)
            except RuntimeError as exc:
                raise StartupError(str(exc)) from None
            while not self.stopping.wait(watch.interval):
                watch.tick()
            watch.stopping()
            logger.info("stopping; containers keep running")
        finally:
            if cri is not None:  # first: its calls to the daemon end while the daemon still answers
                cri.stop()
            # actors first, while the bus still carries what they send on their way out
            try:
                pykka.ActorRegistry.stop_all(timeout=5)
            except pykka.Timeout:
                pass
            stuck = pykka.ActorRegistry.get_all()
            if metrics_server is not None:
                metrics_server.stop()
            if bus.is_alive():
                bus.stop()
            spawner.stop()
            remove_if_empty(shim_cgroups)
            for sock in self.state.daemon_sockets:
                sock.unlink(missing_ok=True)
            if stuck:
                logger.warning("%d actor(s) did not stop in time; leaving without them", len(stuck))
                os._exit(0)  # their (non-daemon) threads would keep the process alive
            store.close()
            if authenticator is not None:
                authenticator.stop()
            context.term()

    def _catch_signals(self) -> None:
        def first(signum: int, _: Any) -> None:
            logger.info("received %s", signal.Signals(signum).name)
            self.stopping.set()
            signal.signal(signal.SIGINT, second)

        def second(signum: int, _: Any) -> None:
            logger.warning("second %s: exiting at once", signal.Signals(signum).name)
            os._exit(130)

        signal.signal(signal.SIGTERM, first)
        signal.signal(signal.SIGINT, first)
        signal.signal(signal.SIGUSR1, log_thread_tracebacks)
