"""A container's OCI config: read once from its bundle at start, then only the state dir's copy.

The bundle belongs to whoever can write to it, during and after the start. So
the start reads `<bundle>/config.json` once (the worker, through the bundle's directory
fd; the Supervisor never looks at the bundle) and writes the config runc is given
(the rootfs bind-mounted into the state dir by `actors.rootfs`, the `--init`
wrapper added) to the container's state dir; runc's `--bundle` is that dir, and
every exec and restore reads that copy. Under a restart policy the very bytes read
are also kept in the root (`<root>/containers/<id>/config.json`), and every restart
runs from them. Editing, replacing or moving the bundle later changes nothing for the
container.
"""

from __future__ import annotations

import copy
import json
import os
import stat
from pathlib import Path
from typing import Any

from actors.wire import ApiError, ErrorCode

__all__ = ["INIT_BINARY", "INIT_PATH", "MAX_CONFIG", "container_config", "exec_process", "parse_config",
           "read_bundle_config", "read_config", "read_config_bytes"]

INIT_BINARY = "/usr/bin/tini-static"
"""The static init of Debian's `tini` package, bind-mounted read-only for `--init`."""

INIT_PATH = "/dev/init"
"""Where the init appears in the container: in the /dev tmpfs, so nothing is written into the rootfs."""


MAX_CONFIG = 1 << 20
"""Bytes a config.json may hold (runc spec's is 3 KiB): a start never reads, keeps or copies an unbounded file."""


def read_bundle_config(bundle: Path) -> bytes:
    """The bytes of `<bundle>/config.json`, read once: what is checked, run and kept for restarts
    is this very read, not a second look at a file its owner may have replaced since."""
    try:
        dir_fd = os.open(bundle, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        raise ApiError(ErrorCode.INVALID_PARAMS, f"bundle {bundle} does not exist or is not a directory") from None
    try:
        fd = os.open("config.json", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        raise ApiError(ErrorCode.INVALID_PARAMS, f"bundle {bundle} has no config.json") from None
    except OSError as exc:
        raise ApiError(ErrorCode.INVALID_PARAMS, f"cannot read {bundle}/config.json: {exc.strerror}") from None
    finally:
        os.close(dir_fd)
    return _read_bounded(fd, bundle / "config.json")


def read_config_bytes(path: Path) -> bytes:
    """The bytes of a config.json actord keeps itself (the state dir's, the root's)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ApiError(ErrorCode.INVALID_PARAMS, f"cannot read {path}: {exc.strerror}") from None
    return _read_bounded(fd, path)


def _read_bounded(fd: int, path: Path) -> bytes:
    """Read and close `fd`, a regular file of at most MAX_CONFIG bytes (a FIFO would block a worker)."""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ApiError(ErrorCode.INVALID_PARAMS, f"{path} is not a regular file")
        chunks = []
        size = 0
        while chunk := os.read(fd, MAX_CONFIG + 1 - size):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_CONFIG:
                raise ApiError(ErrorCode.INVALID_PARAMS, f"{path} is larger than {MAX_CONFIG} bytes")
        return b"".join(chunks)
    except OSError as exc:
        raise ApiError(ErrorCode.INVALID_PARAMS, f"cannot read {path}: {exc.strerror}") from None
    finally:
        os.close(fd)


def parse_config(data: bytes, path: Path) -> dict[str, Any]:
    """The config.json `data` read from `path`, checked to have a runnable process and a root."""
    try:
        config: object = json.loads(data)
    except ValueError:
        raise ApiError(ErrorCode.INVALID_PARAMS, f"{path} is not valid JSON") from None
    if not isinstance(config, dict):
        raise ApiError(ErrorCode.INVALID_PARAMS, f"{path} has no process.args")
    process = config.get("process")
    args = process.get("args") if isinstance(process, dict) else None
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        raise ApiError(ErrorCode.INVALID_PARAMS, f"{path} has no process.args")
    root = config.get("root")
    if not isinstance(root, dict) or not isinstance(root.get("path"), str) or not root["path"]:
        raise ApiError(ErrorCode.INVALID_PARAMS, f"{path} has no root.path")
    return config


def read_config(path: Path) -> dict[str, Any]:
    """A config.json actord keeps itself, checked."""
    return parse_config(read_config_bytes(path), path)


def _add_init(config: dict[str, Any]) -> None:
    """Make tini the container's PID 1, with the bundle's process as its child."""
    if not os.access(INIT_BINARY, os.X_OK):
        raise ApiError(ErrorCode.INVALID_PARAMS, f"--init needs {INIT_BINARY} (apt-get install tini)")
    mounts = config.setdefault("mounts", [])
    if not isinstance(mounts, list) or not any(
            isinstance(m, dict) and m.get("destination") == "/dev" and m.get("type") == "tmpfs" for m in mounts):
        raise ApiError(ErrorCode.INVALID_PARAMS,
                       f"--init needs the bundle to mount a tmpfs on /dev (as `runc spec` does): "
                       f"the init is mounted at {INIT_PATH} so that nothing is written into the rootfs")
    mounts.append({"destination": INIT_PATH, "type": "bind", "source": INIT_BINARY,
                   "options": ["bind", "ro", "nosuid", "nodev"]})
    config["process"]["args"] = [INIT_PATH, "--", *config["process"]["args"]]


def container_config(bundle: Path, data: bytes, source: Path, *, init: bool) -> dict[str, Any]:
    """The config of a container of `bundle` from `data`, the bytes of config.json read from
    `source` (the bundle's, or the root's copy for a restart), its root path absolute (the
    caller mounts it)."""
    config = parse_config(data, source)
    config["root"]["path"] = os.path.normpath(os.path.join(bundle, config["root"]["path"]))
    if init:
        _add_init(config)
    return config


def exec_process(config: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """The container's process with the exec's args, cwd, env, user and terminal."""
    process: dict[str, Any] = copy.deepcopy(config["process"])
    process["args"] = list(spec["args"])
    process["terminal"] = bool(spec.get("tty"))
    if spec.get("cwd"):
        process["cwd"] = spec["cwd"]
    env = {item.partition("=")[0]: item for item in process.get("env", [])}
    for item in spec.get("env") or []:
        env[item.partition("=")[0]] = item
    process["env"] = list(env.values())
    if spec.get("user") is not None:
        uid, gid = spec["user"]
        process["user"] = {"uid": uid, "gid": gid}
    process.pop("consoleSize", None)
    return process
