"""The OCI runtime (runc) command line, every call bounded by a deadline."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from actors.wire import ApiError, ErrorCode

__all__ = ["Runtime"]


class Runtime:
    """Runs `runc --root <root> ...` for the daemon's containers."""

    def __init__(self, binary: str, root: Path) -> None:
        self.binary = binary
        self.root = root

    def run(self, *args: str, timeout: float) -> str:
        """Run one runtime command; its stdout, or `ApiError` with the runtime's reason."""
        argv = [self.binary, "--root", str(self.root), *args]
        try:
            done = subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise ApiError(ErrorCode.TIMEOUT, f"runtime {args[0]} did not finish in {timeout:g}s") from None
        except OSError as exc:
            raise ApiError(ErrorCode.RUNTIME_ERROR, f"cannot run {self.binary}: {exc}") from None
        if done.returncode != 0:
            reason = done.stderr.decode(errors="replace").strip().splitlines()
            text = reason[-1] if reason else f"exit status {done.returncode}"
            raise ApiError(ErrorCode.RUNTIME_ERROR, f"runtime {args[0]} failed: {text}")
        return done.stdout.decode(errors="replace")

    def list_ids(self, timeout: float) -> list[str]:
        """The ids of every container in the runtime's root."""
        listed = json.loads(self.run("list", "--format", "json", timeout=timeout) or "null") or []
        return [entry["id"] for entry in listed if isinstance(entry, dict) and isinstance(entry.get("id"), str)]

    def kill(self, container_id: str, signal: int, *, all_processes: bool, timeout: float) -> None:
        extra = ["--all"] if all_processes else []
        self.run("kill", *extra, container_id, str(signal), timeout=timeout)

    def delete(self, container_id: str, timeout: float) -> None:
        """Force-delete; a container that is already gone is not an error."""
        try:
            self.run("delete", "--force", container_id, timeout=timeout)
        except ApiError as exc:
            if "does not exist" not in exc.message and "not exist" not in exc.message:
                raise
