"""Attach to a process: its output to ours, our stdin to it, its exit status as ours.

Output comes from the process's captured log, read from the start, so nothing
written before we attached is lost and a process nobody reads never blocks.
With a terminal, the local one is put in raw mode (and restored), and window
size changes are forwarded.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import termios
import threading
import time
import tty
from typing import Any

from actorctl.client import CallTimeout, Client, DaemonError, Unreachable
from actors.wire.codec import MAX_STDIN_CHUNK

__all__ = ["attach", "copy_output"]

IDLE_SLEEP = 0.02


def copy_output(client: Client, target: dict[str, Any], cursor: list[int] | None) -> dict[str, Any]:
    """Fetch the next page of a process's output after `cursor`, write it to our stdout/stderr,
    and return the page (its `cursor`, `records`, `dropped` and the process's `status`)."""
    page: dict[str, Any] = client.call("containers.logs", {**target, "cursor": cursor})
    for stream, _, data in page["records"]:
        out = sys.stderr.buffer if stream == 2 else sys.stdout.buffer
        out.write(data)
        out.flush()
    return page


def _forward_stdin(client: Client, target: dict[str, Any], errors: list[Exception]) -> None:
    """Copy our stdin to the process (with its own client: sockets are per thread)."""
    with client:
        try:
            while True:
                data = os.read(sys.stdin.fileno(), MAX_STDIN_CHUNK)
                if not data:
                    client.call("containers.close_stdin", target)
                    return
                client.call("containers.stdin", {**target, "data": data})
        except DaemonError:
            return  # the process has exited or closed its stdin
        except (Unreachable, CallTimeout, OSError) as exc:
            errors.append(exc)


def attach(client: Client, container_id: str, process_id: str, *, stdin: bool, terminal: bool) -> int:
    """Stream the process's output until it exits; returns its exit status."""
    target = {"id": container_id, "pid": process_id}
    errors: list[Exception] = []
    saved = None
    resized = threading.Event()
    if terminal and os.isatty(sys.stdin.fileno()):
        saved = termios.tcgetattr(sys.stdin.fileno())
        tty.setraw(sys.stdin.fileno())
        signal.signal(signal.SIGWINCH, lambda *_: resized.set())
        resized.set()
    if stdin:
        threading.Thread(target=_forward_stdin, args=(client.clone(), target, errors),
                         daemon=True).start()
    cursor = None
    try:
        while True:
            if resized.is_set():
                resized.clear()
                size = shutil.get_terminal_size()
                try:
                    client.call("containers.resize", {**target, "width": size.columns, "height": size.lines})
                except DaemonError:
                    pass
            result = copy_output(client, target, cursor)
            cursor = result["cursor"]
            if errors:
                raise errors[0]
            if not result["records"]:
                if result["status"] is not None:
                    return int(result["status"])
                time.sleep(IDLE_SLEEP)
    finally:
        if saved is not None:
            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)
            signal.signal(signal.SIGWINCH, signal.SIG_DFL)
