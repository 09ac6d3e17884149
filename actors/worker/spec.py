"""A container's OCI config: read once from its bundle at start, then only the state dir's copy.

The bundle belongs to whoever can write to it, during and after the start. So
the start reads `<bundle>/config.json` once and writes the config runc is given
(the rootfs bind-mounted into the state dir by `actors.rootfs`, the `--init`
wrapper added) to the container's state dir; runc's `--bundle` is that dir, and
every exec and restore reads that copy. Editing, replacing or moving the bundle
later changes nothing for the container.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

from actors.wire import ApiError, ErrorCode

__all__ = ["INIT_BINARY", "INIT_PATH", "container_config", "exec_process", "read_config"]

INIT_BINARY = "/usr/bin/tini-static"
"""The static init of Debian's `tini` package, bind-mounted read-only for `--init`."""

INIT_PATH = "/dev/init"
"""Where the init appears in the container: in the /dev tmpfs, so nothing is written into the rootfs."""


def read_config(path: Path) -> dict[str, Any]:
    """A config.json, checked to have a runnable process."""
    try:
        config: object = json.loads(path.read_bytes())
    except OSError as exc:
        raise ApiError(ErrorCode.INVALID_PARAMS, f"cannot read {path}: {exc.strerror}") from None
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


def container_config(bundle: Path, *, init: bool, path: Path | None = None) -> dict[str, Any]:
    """The config of a container of `bundle` (from `path`, by default the bundle's config.json),
    its root path absolute (the caller mounts it)."""
    config = read_config(path or bundle / "config.json")
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
