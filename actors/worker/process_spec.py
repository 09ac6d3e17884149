"""Build the OCI process of an exec from its bundle's process and the request."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from actors.wire import ApiError, ErrorCode

__all__ = ["bundle_config", "exec_process"]


def bundle_config(bundle: Path) -> dict[str, Any]:
    """The bundle's config.json, checked to have a runnable process."""
    path = bundle / "config.json"
    try:
        config = json.loads(path.read_bytes())
    except OSError as exc:
        raise ApiError(ErrorCode.INVALID_PARAMS, f"cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise ApiError(ErrorCode.INVALID_PARAMS, f"{path} is not valid JSON") from None
    process = config.get("process") if isinstance(config, dict) else None
    args = process.get("args") if isinstance(process, dict) else None
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        raise ApiError(ErrorCode.INVALID_PARAMS, f"{path} has no process.args")
    return config


def exec_process(config: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """The bundle's process with the exec's args, cwd, env, user and terminal."""
    process = copy.deepcopy(config["process"])
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
