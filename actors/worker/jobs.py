"""Runtime jobs a worker runs for the Supervisor (each job's params: `actors/wire/jobs.py`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from actors.wire import ApiError, ErrorCode
from actors.wire.events import KILLED_STATUS, UNKNOWN_STATUS
from actors.worker.checkpoints import CheckpointDir, checkpoint
from actors.worker.runtime import Runtime
from hostos.procinfo import kill_and_wait

__all__ = ["run"]

logger = logging.getLogger(__name__)

UPDATE_FLAGS = {"memory_limit": "--memory", "cpu_shares": "--cpu-share", "cpu_quota": "--cpu-quota",
                "cpu_period": "--cpu-period", "pids_limit": "--pids-limit", "memory_swap": "--memory-swap",
                "cpuset_cpus": "--cpuset-cpus", "cpuset_mems": "--cpuset-mems"}
GONE_TIMEOUT = 10.0


def _orphan(runtime: Runtime, container_id: str, params: dict[str, Any], timeout: float) -> int:
    """A process whose shim died: kill what is left of it; its exit status."""
    is_init = params["process"] == "init"
    if is_init and params["paused"]:
        try:
            runtime.run("resume", container_id, timeout=timeout)  # a frozen process cannot die
        except ApiError:
            pass
    killed = kill_and_wait(params["system_pid"], params["system_start"], GONE_TIMEOUT)
    if is_init:
        runtime.delete(container_id, timeout=timeout)
    return KILLED_STATUS if killed else UNKNOWN_STATUS


def _sweep(runtime: Runtime, containers: Path, timeout: float) -> list[str]:
    """Delete runc containers that no container of ours owns: left by a cleanup that failed.

    A container is ours while it has a state dir: restored ones do, and a start under way
    makes its dir before runc creates anything. The ids deleted.
    """
    swept = []
    for container_id in runtime.list_ids(timeout):
        if (containers / container_id).exists():
            continue
        logger.warning("start-up sweep: deleting runc container %s, which no container of ours owns",
                       container_id)
        runtime.delete(container_id, timeout=timeout)
        swept.append(container_id)
    return swept


def run(runtime: Runtime, job: str, container_id: str, params: dict[str, Any], work_root: Path,
        timeout: float) -> Any:
    """Run one job; its result, or ApiError."""
    if job == "kill_all":
        runtime.kill(container_id, params["signal"], all_processes=True, timeout=timeout)
    elif job in ("pause", "resume"):
        runtime.run(job, container_id, timeout=timeout)
    elif job == "update":
        limits = params["limits"]
        flags = [item for key, flag in UPDATE_FLAGS.items() if key in limits for item in (flag, str(limits[key]))]
        runtime.run("update", *flags, container_id, timeout=timeout)
    elif job == "checkpoint":
        return checkpoint(runtime, container_id, params, work_root, timeout)
    elif job == "list_checkpoints":
        with CheckpointDir(Path(params["bundle"])) as checkpoints:
            return checkpoints.records()
    elif job == "orphan":
        return _orphan(runtime, container_id, params, timeout)
    elif job == "sweep":
        return _sweep(runtime, Path(params["containers"]), timeout)
    elif job == "discard":
        for pid, started in params["victims"]:
            kill_and_wait(pid, started, GONE_TIMEOUT)
        runtime.delete(container_id, timeout=timeout)
    elif job == "delete_checkpoint":
        with CheckpointDir(Path(params["bundle"])) as checkpoints:
            checkpoints.delete(params["name"])
    else:
        raise ApiError(ErrorCode.INTERNAL, f"unknown runtime job {job!r}")
    return None
