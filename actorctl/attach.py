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
import tty

from actorctl.client import CallTimeout, Client, DaemonError, Unreachable
from actors.wire.codec import MAX_STDIN_CHUNK

__all__ = ["attach"]

IDLE_SLEEP = 0.02
"""Seconds between reads of a quiet process's output: what a keystroke's echo may wait."""


def _forward_stdin(client: Client, container_id: str, process_id: str, errors: list[Exception]) -> None:
    """Copy our stdin to the process (with its own client: sockets are per thread)."""
    with client:
        try:
            while True:
                data = os.read(sys.stdin.fileno(), MAX_STDIN_CHUNK)
                if not data:
                    client.close_stdin(container_id, process=process_id)
                    return
                client.write_stdin(container_id, data, process=process_id)
        except DaemonError:
            return  # the process has exited or closed its stdin
        except (Unreachable, CallTimeout, OSError) as exc:
            errors.append(exc)


def attach(client: Client, container_id: str, process_id: str, *, stdin: bool, terminal: bool) -> int:
    """Stream the process's output until it exits; returns its exit status."""
    errors: list[Exception] = []
    saved = None
    resized = threading.Event()
    if terminal and os.isatty(sys.stdin.fileno()):
        saved = termios.tcgetattr(sys.stdin.fileno())
        tty.setraw(sys.stdin.fileno())
        signal.signal(signal.SIGWINCH, lambda *_: resized.set())
        resized.set()
    if stdin:
        threading.Thread(target=_forward_stdin, args=(client.clone(), container_id, process_id, errors),
                         daemon=True).start()

    def between_reads() -> None:
        """Forward a new terminal size; fail with the stdin forwarder's failure."""
        if resized.is_set():
            resized.clear()
            size = shutil.get_terminal_size()
            try:
                client.resize(container_id, size.columns, size.lines, process=process_id)
            except DaemonError:
                pass
        if errors:
            raise errors[0]

    try:
        between_reads()
        output = client.logs(container_id, process_id, follow=True, poll_interval=IDLE_SLEEP, idle=between_reads)
        for record in output:
            out = sys.stderr.buffer if record.is_stderr else sys.stdout.buffer
            out.write(record.data)
            out.flush()
            between_reads()
        assert output.status is not None, "a follow without `until` ends only once the process exited"
        return output.status
    finally:
        if saved is not None:
            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)
            signal.signal(signal.SIGWINCH, signal.SIG_DFL)
