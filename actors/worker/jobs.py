"""Runtime jobs a worker runs for the Supervisor: signal-all, delete, pause, resume, update, checkpoints."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from actors.procinfo import kill_and_wait
from actors.wire import ApiError, ErrorCode
from actors.worker.runtime import Runtime

__all__ = ["CHECKPOINT_FLAGS", "checkpoint_dir", "restore_flags", "run"]

CHECKPOINT_FLAGS = {"tcp": "--tcp-established", "unix_sockets": "--ext-unix-sk", "shell": "--shell-job"}
UPDATE_FLAGS = {"memory_limit": "--memory", "cpu_shares": "--cpu-share", "cpu_quota": "--cpu-quota",
                "cpu_period": "--cpu-period", "pids_limit": "--pids-limit"}
_RECORD = "actord-checkpoint.json"
KILLED_STATUS, UNKNOWN_STATUS = 137, 255
GONE_TIMEOUT = 10.0


def checkpoint_dir(bundle: Path, name: str) -> Path:
    return bundle / "checkpoints" / name


def restore_flags(image: Path) -> list[str]:
    """The flags a checkpoint was taken with, which its restore needs too."""
    try:
        record = json.loads((image / _RECORD).read_text())
    except (OSError, ValueError):
        return []
    return [flag for key, flag in CHECKPOINT_FLAGS.items() if record.get(key)]


def _criu_reason(work: Path) -> str:
    """The last error line CRIU logged, if any."""
    for log in sorted(work.glob("*.log")) if work.is_dir() else []:
        errors = [line for line in log.read_text(errors="replace").splitlines() if "Error" in line]
        if errors:
            return f"; {log.name}: {errors[-1].strip()}"
    return ""


def _checkpoint(runtime: Runtime, container_id: str, options: dict[str, Any], timeout: float) -> dict[str, Any]:
    bundle, name = Path(options["bundle"]), options["name"]
    image = checkpoint_dir(bundle, name)
    if image.exists():
        raise ApiError(ErrorCode.ALREADY_EXISTS, f"checkpoint {name} already exists in {image.parent}")
    work = image / "criu.work"
    work.mkdir(parents=True)
    flags = [flag for key, flag in CHECKPOINT_FLAGS.items() if options.get(key)]
    if not options.get("exit"):
        flags.append("--leave-running")
    try:
        runtime.run("checkpoint", "--image-path", str(image), "--work-path", str(work), *flags,
                    container_id, timeout=timeout)
    except ApiError as exc:
        reason = exc.message + _criu_reason(work)
        shutil.rmtree(image, ignore_errors=True)
        raise ApiError(exc.code, reason) from None
    record = {"name": name, "created": time.time(), "exit": bool(options.get("exit")),
              **{key: bool(options.get(key)) for key in CHECKPOINT_FLAGS}}
    (image / _RECORD).write_text(json.dumps(record))
    return record


def _list_checkpoints(bundle: Path) -> list[dict[str, Any]]:
    root = bundle / "checkpoints"
    found = []
    for entry in sorted(root.iterdir()) if root.is_dir() else []:
        try:
            record = json.loads((entry / _RECORD).read_text())
        except (OSError, ValueError):
            record = {"name": entry.name}
        found.append(record)
    return found


def _orphan(runtime: Runtime, container_id: str, args: list[Any], timeout: float) -> int:
    """A process whose shim died: kill what is left of it; its exit status."""
    process_id, pid, started, paused = args[:4]
    if process_id == "init" and paused:
        try:
            runtime.run("resume", container_id, timeout=timeout)  # a frozen process cannot die
        except ApiError:
            pass
    killed = kill_and_wait(pid, started, GONE_TIMEOUT)
    if process_id == "init":
        runtime.delete(container_id, timeout=timeout)
    return KILLED_STATUS if killed else UNKNOWN_STATUS


def run(runtime: Runtime, job: str, container_id: str, args: list[Any], timeout: float) -> Any:
    """Run one job; its result, or ApiError."""
    if job == "kill_all":
        runtime.kill(container_id, int(args[0]), all_processes=True, timeout=timeout)
    elif job == "delete":
        runtime.delete(container_id, timeout=timeout)
    elif job in ("pause", "resume"):
        runtime.run(job, container_id, timeout=timeout)
    elif job == "update":
        flags = [item for key, flag in UPDATE_FLAGS.items() if key in args[0]
                 for item in (flag, str(args[0][key]))]
        runtime.run("update", *flags, container_id, timeout=timeout)
    elif job == "checkpoint":
        return _checkpoint(runtime, container_id, args[0], timeout)
    elif job == "list_checkpoints":
        return _list_checkpoints(Path(args[0]))
    elif job == "orphan":
        return _orphan(runtime, container_id, args, timeout)
    elif job == "discard":
        for pid, started in args:
            kill_and_wait(pid, started, GONE_TIMEOUT)
        runtime.delete(container_id, timeout=timeout)
    elif job == "delete_checkpoint":
        image = checkpoint_dir(Path(args[0]), args[1])
        if not image.is_dir():
            raise ApiError(ErrorCode.NOT_FOUND, f"checkpoint {args[1]} not found")
        shutil.rmtree(image)
    else:
        raise ApiError(ErrorCode.INTERNAL, f"unknown runtime job {job!r}")
    return None
