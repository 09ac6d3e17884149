"""Bring back the containers of a previous daemon run from the state dir.

For each process found, one of:
  * its exit is recorded (`exit.json`): report it now, once (an exit already
    in the event log is not reported again), then remove it as usual;
  * its shim is alive (pid and start time match): take it back, watch the
    shim, re-register the OOM watch; the shim reconnects its report socket
    by itself;
  * its shim is dead: a worker kills what is left of the process and its exit
    is reported with 137 (killed) or 255 (already gone, status unknown).
The bundle is not needed: the container runs from the config copied at start.
Then the definitions in the root (containers under a restart policy) are matched: a
restored container takes its policy and counts back; one without state (a reboot wiped
it, or it was stopped or backing off) comes back as its policy says.
A container whose state is damaged (unreadable files, no init) is
discarded: a worker kills every process it still names and deletes the runc
container, then its directory is removed. Nothing stops the daemon from starting.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from actors.cgroups import cgroup_dirs, oom_watch_members, register_oom_watch
from actors.daemonlog import log_fields
from actors.rootfs import remove_container_dir
from actors.statedir import StateDir
from actors.supervisor.phases import Container, Process
from actors.supervisor.restart import RestartPolicy
from actors.wire.api import CONTAINER_ID
from actors.wire.messages import RuntimeDone, RuntimeTask, WatchProcess
from actors.wire.records import ContainerRecord, ExitRecord, ProcessMeta, ProcessState, read_record
from hostos.procinfo import open_pidfd, same_process

if TYPE_CHECKING:
    from actors.supervisor.actor import Supervisor

logger = logging.getLogger(__name__)


def _exit_status(path: Path) -> int | None:
    record = read_record(path / "exit.json", ExitRecord)
    return None if record is None else record["status"]


def _frozen(pid: int) -> bool:
    try:
        freezer = cgroup_dirs(pid).get("freezer")
        return freezer is not None and (freezer / "freezer.state").read_text().strip() == "FROZEN"
    except OSError:
        return False


def restore(sup: Supervisor, reported: set[str]) -> dict[str, int]:
    """Load every container dir; returns counts for the start-up log line."""
    counts = {"running": 0, "exited": 0, "orphaned": 0, "discarded": 0}
    exits: list[tuple[Process, int]] = []
    orphans: list[Process] = []
    kept_tokens: set[str] = set()
    if not sup.state.containers.is_dir():
        return counts
    for container_dir in sorted(sup.state.containers.iterdir()):
        if not container_dir.is_dir() or not CONTAINER_ID.match(container_dir.name):
            logger.warning("restore: removing stray %s", container_dir)
            remove_container_dir(container_dir) if container_dir.is_dir() else container_dir.unlink()
            continue
        try:
            outcome = _restore_container(sup, container_dir, reported, exits, orphans, kept_tokens)
        except Exception:
            logger.exception("restore: container %s could not be loaded", container_dir.name)
            _discard(sup, container_dir.name, "loading it failed", [])
            outcome = "discarded"
        counts[outcome] += 1
    _apply_definitions(sup)
    for process, status in sorted(exits, key=lambda e: e[0].name == "init"):  # exec exits first
        sup.carry_out(sup.life.exited(process.token, status))
    for process in orphans:
        sup.carry_out(sup.life.orphan(process.token))
    _remove_stale(sup.state, kept_tokens)
    sup.pool.submit(RuntimeTask(job="sweep", container_id="*", params={"containers": str(sup.state.containers)}))
    return counts


def _apply_definitions(sup: Supervisor) -> None:
    for definition in sup.root.definitions():
        try:
            policy = RestartPolicy.parse(definition["restart"])
        except ValueError as exc:
            logger.error("restore: ignoring the definition of %s in %s: %s", definition["id"], sup.root.root, exc)
            continue
        container = sup.life.containers.get(definition["id"])
        if container is None:
            sup.carry_out(sup.life.restored_definition(definition, policy))
            continue
        container.restart, container.restarts, container.streak = policy, definition["restarts"], definition["streak"]
        container.last_status = definition["last_status"]
        container.started_at = sup.life.monotonic()  # how long it ran before is unknown: from now


def _remove_stale(state: StateDir, kept_tokens: set[str]) -> None:
    """What no restored process owns: output, shim sockets, CRIU work dirs of an interrupted job."""
    for output in state.outputs.iterdir() if state.outputs.is_dir() else []:
        if output.name not in kept_tokens:
            shutil.rmtree(output, ignore_errors=True)
    for sock in state.shims.iterdir() if state.shims.is_dir() else []:
        if sock.stem not in kept_tokens:
            sock.unlink(missing_ok=True)
    shutil.rmtree(state.criu_work, ignore_errors=True)


def _restore_container(sup: Supervisor, container_dir: Path, reported: set[str], exits: list[tuple[Process, int]],
                       orphans: list[Process], kept_tokens: set[str]) -> str:
    container_id = container_dir.name
    info = read_record(container_dir / "container.json", ContainerRecord)
    found: dict[str, tuple[ProcessMeta, ProcessState]] = {}
    stray: list[tuple[int, int | None]] = []
    for procdir in container_dir.iterdir():
        if not procdir.is_dir():
            continue
        meta, state = read_record(procdir / "meta.json", ProcessMeta), read_record(procdir / "state.json", ProcessState)
        if meta is not None and state is not None and meta["token"] == state["token"]:
            found[procdir.name] = (meta, state)
        elif state is not None:
            stray.append((state["system_pid"], state.get("system_start")))
    reason = None
    if info is None:
        reason = "container.json is missing or damaged"
    elif "init" not in found:
        reason = "its init process state is missing or damaged"
    elif found["init"][0]["token"] in reported:
        reason = "its exit was already reported"
    if info is None or reason is not None:
        victims = stray + [(s["system_pid"], s.get("system_start")) for _, s in found.values()]
        _discard(sup, container_id, reason or "damaged", victims)
        return "discarded"

    container = Container(id=container_id, bundle=info["bundle"], labels=info.get("labels") or {},
                          init_token=found["init"][0]["token"], init=info.get("init") is True,
                          cri_log=info.get("cri_log", ""))
    outcome = "running"
    watches = []
    for name, (meta, state) in found.items():
        token = meta["token"]
        procdir = container_dir / name
        if name != "init" and token in reported:
            shutil.rmtree(procdir, ignore_errors=True)
            continue
        kept_tokens.add(token)
        pidfd = open_pidfd(state["system_pid"], state.get("system_start"))
        shim_alive = same_process(state["shim_pid"], state.get("shim_start"))
        process = Process(token=token, container_id=container_id, name=name, system_pid=state["system_pid"],
                          shim_pid=state["shim_pid"], pidfd=pidfd, system_start=state.get("system_start"),
                          args=meta["args"], tty=bool(meta.get("tty")), shim_gone=not shim_alive)
        container.processes[name] = process
        status = _exit_status(procdir)
        if shim_alive:
            watches.append((process, procdir))
        if status is not None:
            exits.append((process, status))
            outcome = "exited" if name == "init" else outcome
        elif not shim_alive:
            logger.warning("restore: the shim of %s/%s died while actord was down", container_id, name,
                           extra=log_fields(container_id=container_id, process=name))
            orphans.append(process)
            outcome = "orphaned"
    for process, procdir in watches:
        alive = process.pidfd >= 0
        watch = register_oom_watch(process.system_pid) if process.name == "init" and alive else None
        sup.send("monitor", WatchProcess(token=process.token, container_id=container_id, process=process.name,
                                         shim_pid=process.shim_pid, procdir=str(procdir), **oom_watch_members(watch)))
    init = container.processes["init"]
    sup.life.restored(container, paused=init.pidfd >= 0 and _frozen(init.system_pid))
    return outcome


def _discard(sup: Supervisor, container_id: str, reason: str, victims: list[tuple[int, int | None]]) -> None:
    logger.warning("restore: discarding container %s: %s; killing %d process(es) it names",
                   container_id, reason, len(victims), extra=log_fields(container_id=container_id))
    sup.life.discard(container_id)
    sup.pool.submit(RuntimeTask(job="discard", container_id=container_id, params={"victims": victims}))


def discarded(sup: Supervisor, message: RuntimeDone) -> None:
    """A damaged container's leftovers are dead: remove its state and free its id."""
    sup.carry_out(sup.life.discarded(message.container_id))
    logger.info("restore: container %s cleaned up", message.container_id,
                extra=log_fields(container_id=message.container_id))
