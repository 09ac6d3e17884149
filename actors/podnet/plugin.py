"""Running one CNI plugin, as the CNI spec has a runtime do it: the binary named by the
plugin's `type`, found in the bin dirs; the command and the attachment in its environment
(CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS, CNI_PATH), its config on
stdin, its result (or its error object: code, msg, details) on stdout. Never through a shell;
killed at a deadline.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_TIMEOUT", "Invocation", "PluginError", "PluginNotFound", "find_plugin", "plugin_env", "run_plugin"]

DEFAULT_TIMEOUT = 60.0
"""Seconds a plugin call may take (containerd has none of its own; the kubelet's RunPodSandbox
deadline is 4 minutes, and a bridge ADD takes ~30 ms here)."""
MAX_OUTPUT_IN_MESSAGE = 2000


class PluginError(Exception):
    """A plugin that failed: its type, the command, and the plugin's own code, msg and details."""

    def __init__(self, plugin: str, command: str, msg: str, code: int | None = None, details: str = "") -> None:
        text = f"CNI plugin {plugin!r} failed ({command}): {msg}" + (f" ({details})" if details else "")
        super().__init__(text)
        self.plugin = plugin
        self.command = command
        self.code = code
        self.msg = msg
        self.details = details


class PluginNotFound(PluginError):
    """No executable for the plugin's type in the bin dirs."""


@dataclass(frozen=True)
class Invocation:
    """What a plugin is told about the attachment besides its config: the CNI_* variables."""

    command: str
    container_id: str
    netns: str
    ifname: str
    args: tuple[tuple[str, str], ...]
    bin_dirs: tuple[Path, ...]


def find_plugin(plugin_type: str, bin_dirs: Sequence[Path]) -> Path | None:
    """The plugin's executable: the first `<dir>/<type>` that is an executable file."""
    for directory in bin_dirs:
        candidate = directory / plugin_type
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def plugin_env(invocation: Invocation, base: Mapping[str, str]) -> dict[str, str]:
    """The plugin's environment: `base` (the daemon's: plugins run iptables and ip through
    PATH) with the CNI variables set over whatever of them it held."""
    env = {key: value for key, value in base.items() if not key.startswith("CNI_")}
    env.update({
        "CNI_COMMAND": invocation.command,
        "CNI_CONTAINERID": invocation.container_id,
        "CNI_NETNS": invocation.netns,
        "CNI_IFNAME": invocation.ifname,
        "CNI_ARGS": ";".join(f"{key}={value}" for key, value in invocation.args),
        "CNI_PATH": os.pathsep.join(str(directory) for directory in invocation.bin_dirs),
    })
    return env


def _error_of(plugin: str, command: str, stdout: bytes, stderr: bytes, status: int) -> PluginError:
    """The plugin's error object from its stdout, else what it wrote and its exit status."""
    try:
        error = json.loads(stdout)
    except ValueError:
        error = None
    if isinstance(error, dict) and isinstance(error.get("msg"), str):
        code = error.get("code")
        details = error.get("details")
        return PluginError(plugin, command, error["msg"], code if isinstance(code, int) else None,
                           details if isinstance(details, str) else "")
    output = (stdout + stderr).decode(errors="replace").strip()[:MAX_OUTPUT_IN_MESSAGE]
    return PluginError(plugin, command, f"exit status {status}" + (f": {output}" if output else ""))


def run_plugin(plugin_type: str, config: Mapping[str, Any], invocation: Invocation,
               timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any] | None:
    """Run the plugin with `config` on stdin; its result object (ADD; None when it printed
    nothing, as DEL and CHECK do). PluginError when it fails, cannot run or overruns `timeout`."""
    command = invocation.command
    executable = find_plugin(plugin_type, invocation.bin_dirs)
    if executable is None:
        dirs = ", ".join(str(directory) for directory in invocation.bin_dirs)
        raise PluginNotFound(plugin_type, command, f"no executable {plugin_type!r} in {dirs}")
    try:
        done = subprocess.run([str(executable)], input=json.dumps(config).encode(), capture_output=True,
                              env=plugin_env(invocation, os.environ), timeout=timeout, check=False,
                              cwd="/", close_fds=True)
    except subprocess.TimeoutExpired:
        raise PluginError(plugin_type, command, f"timed out after {timeout:g} s (killed)") from None
    except OSError as exc:
        raise PluginError(plugin_type, command, f"cannot run {executable}: {exc.strerror}") from exc
    if done.returncode != 0:
        raise _error_of(plugin_type, command, done.stdout, done.stderr, done.returncode)
    if not done.stdout.strip():
        return None
    try:
        result = json.loads(done.stdout)
    except ValueError:
        result = None
    if not isinstance(result, dict):
        raise PluginError(plugin_type, command, "its output is not a JSON object: "
                          + done.stdout.decode(errors="replace")[:MAX_OUTPUT_IN_MESSAGE])
    return result
