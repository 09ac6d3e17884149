"""The container's process: what it runs, its environment, working dir and terminal.

As containerd (after docker's commit rules): the CRI's `command` replaces the image's
Entrypoint and `args` its Cmd; with no `command`, `args` follow the image's Entrypoint; with
neither, the image's Entrypoint and Cmd. The environment is PATH's default, HOSTNAME (the
pod's), the image's Env, then the CRI's `envs`, a later one of a name replacing an earlier.
`stdin` and `stdin_once` are the shim's business (how its stdin is wired), not the spec's.
"""

from __future__ import annotations

import posixpath
from typing import Any

from cri_api.v1 import api_pb2

from actors.crispec.errors import invalid

__all__ = ["merge_env", "process_args", "process_env", "working_dir"]


def _image_strings(image_config: dict[str, Any], key: str) -> list[str]:
    value = image_config.get(key) or []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise invalid(f"the image config's {key} is not a list of strings")
    return list(value)


def process_args(config: api_pb2.ContainerConfig, image_config: dict[str, Any]) -> list[str]:
    """The process's argv (containerd's `WithProcessArgs`)."""
    command, args = list(config.command), list(config.args)
    if not command:
        if not args:
            args = _image_strings(image_config, "Cmd")
        entrypoint = _image_strings(image_config, "Entrypoint")
        if entrypoint != [""]:
            command = entrypoint
    argv = command + args
    if not argv:
        raise invalid("container config: no command (command and args are empty, and the image has neither "
                      "Entrypoint nor Cmd)")
    return argv


def merge_env(*layers: list[str]) -> list[str]:
    """`NAME=value` entries, each layer's replacing an earlier one of the same name in its place."""
    merged: dict[str, str] = {}
    for layer in layers:
        for entry in layer:
            merged[entry.partition("=")[0]] = entry
    return list(merged.values())


def process_env(config: api_pb2.ContainerConfig, image_config: dict[str, Any], hostname: str,
                default_path: str) -> list[str]:
    """The environment (containerd's `WithDefaultPathEnv`, HOSTNAME, image's, config's)."""
    envs = []
    for item in config.envs:
        if not item.key or "=" in item.key:
            raise invalid(f"container config envs: {item.key!r} is not a variable name")
        envs.append(f"{item.key}={item.value}")
    return merge_env([default_path], [f"HOSTNAME={hostname}"], _image_strings(image_config, "Env"), envs)


def working_dir(config: api_pb2.ContainerConfig, image_config: dict[str, Any]) -> str:
    """The config's working_dir (absolute), else the image's WorkingDir, else /."""
    if config.working_dir:
        if not config.working_dir.startswith("/"):
            raise invalid(f"container config working_dir {config.working_dir!r} is not an absolute path")
        return posixpath.normpath(config.working_dir)
    image_dir = image_config.get("WorkingDir") or "/"
    if not isinstance(image_dir, str):
        raise invalid("the image config's WorkingDir is not a string")
    return posixpath.normpath("/" + image_dir.lstrip("/"))
