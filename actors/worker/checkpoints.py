"""Checkpoints in `<bundle>/checkpoints/<name>`, reached only through directory fds.

Checkpoints live beside the bundle so that they outlive their container and a
new container can be restored from them. Whoever can write to the bundle could
plant symlinks there, so nothing below the bundle is opened by path: the
`checkpoints` dir and each checkpoint are opened with O_NOFOLLOW relative to
their parent's fd, runc and CRIU are handed `/proc/<pid>/fd/<n>` (the very
directory that was checked), and a checkpoint is deleted only if it holds the
record actord writes into every checkpoint it makes.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from actors.treeremoval import remove_tree
from actors.wire import ApiError, ErrorCode
from actors.worker.runtime import Runtime

__all__ = ["CHECKPOINT_FLAGS", "CheckpointDir", "checkpoint", "fd_path", "new_work_dir", "restore_flags"]

CHECKPOINT_FLAGS = {"tcp": "--tcp-established", "unix_sockets": "--ext-unix-sk", "shell": "--shell-job"}
RECORD = "actord-checkpoint.json"
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def fd_path(fd: int) -> str:
    """A path to the directory open at `fd` that no later rename or symlink can redirect."""
    return f"/proc/{os.getpid()}/fd/{fd}"


def _refused(path: str, exc: OSError) -> ApiError:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return ApiError(ErrorCode.INVALID_PARAMS, f"{path} is a symlink or not a directory: refused")
    return ApiError(ErrorCode.RUNTIME_ERROR, f"cannot open {path}: {exc.strerror}")


class CheckpointDir:
    """`<bundle>/checkpoints`, open; use as a context manager."""

    def __init__(self, bundle: Path, *, create: bool = False) -> None:
        self.label = f"{bundle}/checkpoints"
        try:
            bundle_fd = os.open(bundle, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise ApiError(ErrorCode.NOT_FOUND, f"bundle {bundle} is gone: {exc.strerror}") from None
        try:
            if create:
                try:
                    os.mkdir("checkpoints", 0o700, dir_fd=bundle_fd)
                except FileExistsError:
                    pass
            self.fd = os.open("checkpoints", _DIRECTORY, dir_fd=bundle_fd)
        except FileNotFoundError:
            self.fd = -1
        except OSError as exc:
            raise _refused(self.label, exc) from None
        finally:
            os.close(bundle_fd)

    def __enter__(self) -> CheckpointDir:
        return self

    def __exit__(self, *_: Any) -> None:
        if self.fd >= 0:
            os.close(self.fd)

    def open(self, name: str) -> int:
        """An fd on checkpoint `name` (the caller closes it); NOT_FOUND if there is none."""
        try:
            if self.fd < 0:
                raise FileNotFoundError
            return os.open(name, _DIRECTORY, dir_fd=self.fd)
        except FileNotFoundError:
            raise ApiError(ErrorCode.NOT_FOUND, f"checkpoint {name} not found in {self.label}") from None
        except OSError as exc:
            raise _refused(f"{self.label}/{name}", exc) from None

    def make(self, name: str) -> int:
        """Create checkpoint dir `name`; an fd on it."""
        try:
            os.mkdir(name, 0o700, dir_fd=self.fd)
        except FileExistsError:
            raise ApiError(ErrorCode.ALREADY_EXISTS, f"checkpoint {name} already exists in {self.label}") from None
        return self.open(name)

    def remove(self, name: str) -> None:
        """Remove `name`, symlink-safely, whatever it holds (only call on what we made): it is in
        the bundle, where anyone who may write there can have planted a deep tree or a mount."""
        remove_tree(name, dir_fd=self.fd)

    def record(self, name: str) -> dict[str, Any] | None:
        """The record actord wrote into checkpoint `name`; None if it is not one of ours."""
        image = self.open(name)
        try:
            return read_record(image)
        finally:
            os.close(image)

    def records(self) -> list[dict[str, Any]]:
        if self.fd < 0:
            return []
        found = []
        for name in sorted(os.listdir(self.fd)):
            try:
                record = self.record(name)
            except ApiError:
                continue  # a symlink or a file: not a checkpoint
            if record is not None:
                found.append(record)
        return found

    def delete(self, name: str) -> None:
        if self.record(name) is None:
            raise ApiError(ErrorCode.CONFLICT, f"{self.label}/{name} is not a checkpoint actord made: left alone")
        self.remove(name)


def read_record(image_fd: int) -> dict[str, Any] | None:
    """The record in the checkpoint open at `image_fd` (never through a symlink); None if it has none."""
    try:
        fd = os.open(RECORD, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=image_fd)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        try:
            record = json.loads(handle.read(1 << 16))
        except ValueError:
            return None
    return record if isinstance(record, dict) else None


def restore_flags(image_fd: int) -> list[str]:
    """The flags a checkpoint was taken with, which its restore needs too."""
    record = read_record(image_fd) or {}
    return [flag for key, flag in CHECKPOINT_FLAGS.items() if record.get(key)]


def _criu_reason(work: Path) -> str:
    """The last error line CRIU logged, if any."""
    for log in sorted(work.glob("*.log")) if work.is_dir() else []:
        errors = [line for line in log.read_text(errors="replace").splitlines() if "Error" in line]
        if errors:
            return f"; {log.name}: {errors[-1].strip()}"
    return ""


def new_work_dir(work_root: Path) -> Path:
    """A fresh CRIU work dir in the state dir (the caller removes it)."""
    work = work_root / uuid.uuid4().hex
    work.mkdir(mode=0o700, parents=True)
    return work


def checkpoint(runtime: Runtime, container_id: str, options: dict[str, Any], work_root: Path,
               timeout: float) -> dict[str, Any]:
    """`runc checkpoint` into a new `<bundle>/checkpoints/<name>`; its record."""
    name = options["name"]
    flags = [flag for key, flag in CHECKPOINT_FLAGS.items() if options["options"].get(key)]
    if not options.get("exit"):
        flags.append("--leave-running")
    with CheckpointDir(Path(options["bundle"]), create=True) as checkpoints:
        image = checkpoints.make(name)
        work = new_work_dir(work_root)
        try:
            runtime.run("checkpoint", "--image-path", fd_path(image), "--work-path", str(work), *flags,
                        container_id, timeout=timeout)
            record = {"name": name, "created": time.time(), "exit": bool(options.get("exit")),
                      **{key: bool(options["options"].get(key)) for key in CHECKPOINT_FLAGS}}
            fd = os.open(RECORD, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=image)
            with os.fdopen(fd, "w") as out:
                out.write(json.dumps(record))
        except ApiError as exc:
            checkpoints.remove(name)
            raise ApiError(exc.code, exc.message + _criu_reason(work)) from None
        except BaseException:
            checkpoints.remove(name)
            raise
        finally:
            os.close(image)
            shutil.rmtree(work, ignore_errors=True)
    return record
