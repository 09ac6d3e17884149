"""`Client`: every daemon method as a typed call, plus `wait`, `logs` and `events` built on them."""

from __future__ import annotations

import signal as signals
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from actorctl.client.errors import NotFound
from actorctl.client.images import ImageMethods
from actorctl.client.logs import POLL_INTERVAL, LogStream
from actorctl.client.pods import PodMethods
from actorctl.client.types import Checkpoint, Container, Event, ExitResult, Health, Process, Stats, Version
from actorctl.client.wait import RECONNECT, wait_for_exit

__all__ = ["Client"]

LIST_PAGE = 1000
"""Containers per `containers.list` call: the most the daemon gives in one reply."""
NO_SEQ_YET = 2**62
"""An `after` past any sequence number: a replay that returns no events, only `last_seq`."""


class Client(ImageMethods, PodMethods):
    """A connection to one actord, with a typed method per request.

    `Client(address="ipc:///run/actord/actord.sock", timeout=10.0, *, curve_server_key=None,
    curve_client_key=None)`; `timeout` is how long each call waits for its answer. Methods
    raise `DaemonError` subclasses when the daemon refuses (`NotFound`, `Conflict`...),
    `Unreachable` and `Timeout` when it does not answer. Not thread-safe: use `clone()` for
    another thread. Use it as a context manager, or `close()` it.
    """

    def version(self) -> Version:
        """The daemon's version, protocol, runtime, state dir, event socket and degradations."""
        return Version.from_wire(self.call("version"))

    def health(self) -> Health:
        """`healthy` or `degraded` (and why), the uptime and the containers by status."""
        return Health.from_wire(self.call("health"))

    def containers(self) -> list[Container]:
        """Every container the daemon knows (running, paused, restarting, stopped), by id."""
        found: list[Container] = []
        while True:
            params: dict[str, Any] = {"limit": LIST_PAGE}
            if found:
                params["after"] = found[-1].id
            page = [Container.from_wire(item) for item in self.call("containers.list", params)]
            found += page
            if len(page) < LIST_PAGE:
                return found

    def container(self, container_id: str) -> Container:
        """One container and its processes (NotFound if there is none)."""
        return Container.from_wire(self.call("containers.state", {"id": container_id}))

    def start(self, container_id: str, bundle: str | None = None, *, labels: Mapping[str, str] | None = None,
              stdin: bool = False, init: bool = False, restart: str | None = None,
              checkpoint: str | None = None, image: str | None = None, args: Iterable[str] | None = None,
              tty: bool = False, cri_log: str | None = None) -> Container:
        """Start a container from the OCI bundle directory `bundle` (an absolute path), or from
        `image` (a reference or an image id of the daemon's store: the daemon makes its bundle,
        the image's layers shared through overlayfs; `args` replace the image's Cmd, as `docker
        run IMAGE ARGS`; `tty`: give it a terminal); returns once its init runs. `stdin`: give it
        a stdin (see `write_stdin`); `init`: tini as PID 1; `restart`: a policy (`on-failure[:MAX]`,
        `always`, `unless-stopped`); `checkpoint`: restore from `<bundle>/checkpoints/<name>`;
        `cri_log`: an absolute path its init's output is also written to in the kubelet's CRI
        format (see `reopen_log`). AlreadyExists if the id is taken; NotFound for an image not in
        the store."""
        if (bundle is None) == (image is None):
            raise ValueError("give either bundle or image")
        params: dict[str, Any] = {"id": container_id, "labels": dict(labels or {}), "stdin": stdin, "init": init}
        if bundle is not None:
            params["bundle"] = bundle
        else:
            params["image"] = image
            params["tty"] = tty
            if args is not None:
                params["args"] = list(args)
        if restart is not None:
            params["restart"] = restart
        if checkpoint is not None:
            params["checkpoint"] = checkpoint
        if cri_log is not None:
            params["cri_log"] = cri_log
        return Container.from_wire(self.call("containers.start", params))

    def prepare(self, container_id: str, image: str) -> str:
        """Make the bundle of a container `container_id` of `image` (a reference or an image id of
        the daemon's store) without starting it, and return its dir: the caller may rewrite its
        config.json, then `start(container_id, bundle=that dir)`. The bundle is kept (across
        daemon restarts) until that start, or until `remove(container_id)` releases it.
        AlreadyExists if the id is taken; NotFound for an image not in the store."""
        return str(self.call("containers.prepare", {"id": container_id, "image": image})["bundle"])

    def exec(self, container_id: str, args: Iterable[str], *, name: str | None = None,
             env: Iterable[str] = (), cwd: str | None = None, user: str | None = None, tty: bool = False,
             stdin: bool = False, log_limit: int | None = None) -> Process:
        """Run `args` as another process in a running container; returns once it runs. `name`
        (default `exec-N`) names it for `signal`, `wait` and `logs`; `env` holds `KEY=VALUE`
        strings added to the bundle's; `user` is `UID` or `UID:GID`; `log_limit`: bytes per file
        of its kept output (two files; 4 KiB to 1 GiB) instead of the daemon's `--log-limit`."""
        params: dict[str, Any] = {"id": container_id, "args": list(args), "env": list(env), "tty": tty,
                                  "stdin": stdin}
        for key, value in (("pid", name), ("cwd", cwd), ("user", user), ("log_limit", log_limit)):
            if value is not None:
                params[key] = value
        return Process.from_wire(self.call("containers.exec", params))

    def signal(self, container_id: str, signal: int = signals.SIGTERM, *, process: str | None = None,
               all_processes: bool = False) -> None:
        """Send `signal` to the container's init, to the process named `process`, or (through
        runc) to every process of the container. A stop signal to the init counts as an
        explicit stop for the `unless-stopped` policy."""
        params: dict[str, Any] = {"id": container_id, "signal": int(signal), "all": all_processes}
        if process is not None:
            params["pid"] = process
        self.call("containers.signal", params)

    def kill(self, container_id: str, *, process: str | None = None) -> None:
        """SIGKILL the container's init (or `process`)."""
        self.signal(container_id, signals.SIGKILL, process=process)

    def last_event_seq(self) -> int:
        """The sequence number of the newest event issued: `events(after=...)` and
        `wait(after=...)` from it see only what happens from now on."""
        return int(self.call("events.replay", {"after": NO_SEQ_YET})["last_seq"])

    def wait(self, container_id: str, process: str = "init", *, after: int | None = None,
             timeout: float | None = None, reconnect: float = RECONNECT) -> ExitResult:
        """How the process (default: the container's init) ended, or ends: the one answer of
        `actorctl containers wait`. The wait begins at event sequence number `after` (default:
        now, `last_event_seq()`), and gives, in this order:

        * the process's first exit after that, if the event log holds one;
        * for a running container (starting, running, paused, stopping) in which the process
          runs: its next exit, waited for (a restart policy's container: its first exit after
          the wait began);
        * for a `restarting` or `stopped` container, of its init: the restart policy's
          `last_status` (known even when the event log has rotated past that exit);
        * for a container that is gone (or a process that is not running): its last `exit`
          in the event log;
        * otherwise NotFound (no such container or process, and no exit of it on record).

        `ExitResult.event` is the exit event, None when the answer is a `last_status`.
        Timeout after `timeout` seconds (None: no limit; 0: only what is known now, Timeout
        for a process that still runs). Once the wait has begun (at `after`, when given) it
        keeps waiting through a daemon restart, up to `reconnect` seconds without a daemon;
        then Unreachable. Give several waits the same `after` to wait for each container's first
        exit since one moment, one after the other (as `containers wait ID...` does)."""
        return wait_for_exit(self, container_id, process, after=after, timeout=timeout, reconnect=reconnect)

    def logs(self, container_id: str, process: str = "init", *, follow: bool = False, since: float | None = None,
             until: float | None = None, tail: int | None = None, cursor: Sequence[int] | None = None,
             poll_interval: float = POLL_INTERVAL, idle: Callable[[], None] | None = None) -> LogStream:
        """The process's captured output (stdout and stderr, each `LogRecord` stamped with its
        time), oldest first: what is there now, or with `follow` everything until the process
        exits (or, with `until`, until that time has passed). `since`/`until` (unix times)
        select by capture time; `tail` keeps the last N records of what is there now (then,
        with `follow`, what comes); `cursor` (another stream's `.cursor`) goes on where that
        stream stopped. While following, the daemon is asked again every `poll_interval`
        seconds when there was nothing new, after calling `idle` (if given: work to do between
        reads, e.g. forwarding a terminal's size). Output stays readable while the process
        runs and for the last 256 exited processes."""
        return LogStream(self, container_id, process, follow=follow, since=since, until=until, tail=tail,
                         cursor=cursor, poll_interval=poll_interval, idle=idle)

    def events(self, after: int | None = None, *, container_id: str | None = None,
               types: Iterable[str] | None = None, since: float | None = None, follow: bool = True,
               deadline: float | None = None) -> Iterator[Event]:
        """Events in sequence order, none missed and none repeated: those stored after sequence
        number `after` (None: only events from now on; 0: everything stored), then, with
        `follow`, live ones as they happen, forever, across daemon restarts. A gap (the event
        socket drops events for a subscriber that falls behind) is filled from the event log.
        `container_id`, `types` (e.g. `("exit", "oom")`) and `since` (unix time) select
        events; `deadline` (a `time.monotonic()` time) ends a following iteration."""
        from actorctl.client.events import follow as follow_stream
        from actorctl.client.events import stored

        wanted = None if types is None else frozenset(types)
        if after is None:
            after = self.last_event_seq()
        if not follow:
            records = stored(self, after, since, container_id, wanted)
        else:
            records = follow_stream(self, self.version().events_address, after, since, container_id,
                                    types=wanted, deadline=deadline)
        return (Event.from_wire(record) for record in records if wanted is None or record["type"] in wanted)

    def stats(self, container_id: str) -> Stats:
        """Memory, CPU, pids and block IO from the container's cgroups (Conflict once it exited)."""
        return Stats.from_wire(self.call("containers.stats", {"id": container_id}))

    def pause(self, container_id: str) -> None:
        """Freeze every process of the container (a `pause` event)."""
        self.call("containers.pause", {"id": container_id})

    def resume(self, container_id: str) -> None:
        """Thaw a paused container (a `resume` event)."""
        self.call("containers.resume", {"id": container_id})

    def update(self, container_id: str, *, memory_limit: int | None = None, cpu_shares: int | None = None,
               cpu_quota: int | None = None, cpu_period: int | None = None, pids_limit: int | None = None,
               memory_swap: int | None = None, cpuset_cpus: str | None = None, cpuset_mems: str | None = None,
               ) -> None:
        """Change a running container's resource limits (runc update); give at least one.
        `memory_swap`: memory plus swap, bytes (-1: unlimited); `cpuset_cpus`, `cpuset_mems`: the
        CPUs and memory nodes it may use, as `0-2,4`."""
        limits = {"memory_limit": memory_limit, "cpu_shares": cpu_shares, "cpu_quota": cpu_quota,
                  "cpu_period": cpu_period, "pids_limit": pids_limit, "memory_swap": memory_swap,
                  "cpuset_cpus": cpuset_cpus, "cpuset_mems": cpuset_mems}
        self.call("containers.update", {"id": container_id, **{k: v for k, v in limits.items() if v is not None}})

    def remove(self, container_id: str, force: bool = False) -> None:
        """Forget a container its restart policy keeps (stopped or restarting); Conflict if it runs,
        unless `force`: then every process of a running container is killed and it is removed
        whatever its policy (returns once its exit is on record, as `docker rm -f`). The bundle
        of a container of an image goes with it."""
        self.call("containers.remove", {"id": container_id, "force": True} if force else {"id": container_id})

    def knows(self, container_id: str) -> bool:
        """Whether actord has a container with this id (running, paused, restarting or stopped)."""
        try:
            self.container(container_id)
        except NotFound:
            return False
        return True

    def write_stdin(self, container_id: str, data: bytes, *, process: str = "init") -> None:
        """Write to the stdin of a process started with `stdin=True` (at most 63 KiB a call)."""
        self.call("containers.stdin", {"id": container_id, "pid": process, "data": data})

    def close_stdin(self, container_id: str, *, process: str = "init") -> None:
        """Close that stdin: the process reads end of file."""
        self.call("containers.close_stdin", {"id": container_id, "pid": process})

    def resize(self, container_id: str, width: int, height: int, *, process: str = "init") -> None:
        """Set the size of a process's terminal."""
        self.call("containers.resize", {"id": container_id, "pid": process, "width": width, "height": height})

    def reopen_log(self, container_id: str) -> None:
        """Have the container's init write its CRI log to a new open of its path, as the kubelet
        asks after renaming the file (the CRI's ReopenContainerLog); returns once it does.
        Conflict for a container without a CRI log or not running."""
        self.call("containers.reopen_log", {"id": container_id})

    def checkpoint(self, container_id: str, name: str, *, exit: bool = False, tcp: bool = False,
                   unix_sockets: bool = False, shell: bool = False) -> Checkpoint:
        """Checkpoint the container (runc and CRIU) into `<bundle>/checkpoints/<name>`; `exit`
        stops it afterwards. RuntimeFailure, with CRIU's reason, where CRIU cannot."""
        return Checkpoint.from_wire(self.call("checkpoints.create", {
            "id": container_id, "name": name, "exit": exit, "tcp": tcp, "unix_sockets": unix_sockets,
            "shell": shell}))

    def checkpoints(self, container_id: str) -> list[Checkpoint]:
        """The checkpoints actord made in the container's bundle."""
        return [Checkpoint.from_wire(item) for item in self.call("checkpoints.list", {"id": container_id})]

    def delete_checkpoint(self, container_id: str, name: str) -> None:
        """Delete one checkpoint actord made (Conflict for a directory it did not make)."""
        self.call("checkpoints.delete", {"id": container_id, "name": name})
