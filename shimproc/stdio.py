"""The shim's side of a process's stdio: pipes or a terminal, pumped into the output log."""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import termios
from typing import Any

from shimproc.crilog import CriLog, open_failure
from shimproc.outputlog import OutputWriter

__all__ = ["STDIN_BUFFER_MAX", "ProcessEnds", "Stdio"]

STDIN_BUFFER_MAX = 1 << 20
CHUNK = 1 << 16
PUMP_CHUNKS = 4
"""Chunks one pump moves at most: a process flooding its output must not keep the shim
from its control socket (the serve loop polls both each round)."""
DRAIN_CHUNKS = 16
"""Chunks the drain at exit moves at most: a full pipe of the largest size an unprivileged
process can set (1 MiB), yet bounded when an orphan keeps writing."""


def _nonblocking(fd: int) -> None:
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)


class ProcessEnds:
    """Both ends of a process's stdio, made before the runtime starts the process (by the
    shim's helper): pipes, or a console socket on which the runtime hands over the terminal;
    and the output log opened. The shim's ends and the log then go over to the shim
    (`handover`), the process's ends to the runtime.
    """

    def __init__(self, output_dir: str, log_limit: int, *, tty: bool, stdin: bool, console_path: str) -> None:
        try:
            os.mkdir(output_dir, 0o700)
        except FileExistsError:
            pass
        self.log = OutputWriter(output_dir, log_limit)
        self.outputs: list[tuple[int, int]] = []
        """(fd, stream) of our output ends; stream 1 is stdout, 2 stderr."""
        self.stdin_fd = -1
        self.child_fds: list[tuple[int, int]] = []
        """(fd, target) pairs to dup2 into the runtime process."""
        self._to_close: list[int] = []
        self.console: socket.socket | None = None
        self.console_path = console_path
        if tty:
            self.console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            self.console.bind(console_path)
            self.console.listen(1)
            return
        for stream in (1, 2):
            read_end, write_end = os.pipe2(os.O_CLOEXEC)
            _nonblocking(read_end)
            self.outputs.append((read_end, stream))
            self.child_fds.append((write_end, stream))
            self._to_close.append(write_end)
        if stdin:
            read_end, write_end = os.pipe2(os.O_CLOEXEC)
            _nonblocking(write_end)
            self.stdin_fd = write_end
            self.child_fds.append((read_end, 0))
            self._to_close.append(read_end)

    def after_spawn(self) -> None:
        """Close the ends that belong to the child now that it has them."""
        for fd in self._to_close:
            os.close(fd)
        self._to_close.clear()

    def receive_console(self, timeout: float) -> None:
        """Take the terminal master that runc sends over the console socket."""
        assert self.console is not None
        self.console.settimeout(timeout)
        conn, _ = self.console.accept()
        with conn:
            _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
        self.console.close()
        self.console = None
        os.unlink(self.console_path)
        if not fds:
            raise OSError("the runtime sent no terminal")
        master = fds[0]
        _nonblocking(master)
        self.outputs = [(master, 1)]
        self.stdin_fd = master

    def handover(self) -> tuple[dict[str, Any], list[int]]:
        """Our ends and the log as fds to pass to the shim, and the layout `Stdio` takes them
        back with."""
        fds = [fd for fd, _ in self.outputs]
        stdin = -1
        if self.stdin_fd >= 0:
            if self.stdin_fd not in fds:
                fds.append(self.stdin_fd)
            stdin = fds.index(self.stdin_fd)
        layout = {"streams": [stream for _, stream in self.outputs], "stdin": stdin, "log": len(fds),
                  "generation": self.log.generation, "size": self.log.size}
        return layout, [*fds, self.log.fd]


class Stdio:
    """Holds the shim's ends of the process's stdio (as `ProcessEnds.handover` laid them out).

    Output never blocks the container: the shim reads whatever is written and
    appends it to the output log, whether or not anybody is attached.
    """

    def __init__(self, output_dir: str, log_limit: int, *, tty: bool, layout: dict[str, Any],
                 fds: list[int], cri_log: str = "") -> None:
        self.tty = tty
        self.log = OutputWriter(output_dir, log_limit,
                                opened=(fds[layout["log"]], layout["generation"], layout["size"]))
        self.cri = CriLog(cri_log, fds[layout["cri"]]) if layout.get("cri", -1) >= 0 else None
        """The CRI log the start named (written besides the output log), or None."""
        # the output ends come first in `fds`, one per stream (then stdin's, if apart, and the log)
        self.outputs: dict[int, int] = dict(zip(fds, layout["streams"], strict=False))
        """fd -> stream number (1 stdout, 2 stderr) of open output ends."""
        self.stdin_fd = fds[layout["stdin"]] if layout["stdin"] >= 0 else -1
        self.stdin_buffer = bytearray()
        self.stdin_closing = False

    def pump(self, fd: int, chunks: int = PUMP_CHUNKS) -> None:
        """Move what is readable on an output end (up to `chunks` reads) into the log; close it at EOF."""
        for _ in range(chunks):
            try:
                data = os.read(fd, CHUNK)
            except BlockingIOError:
                return
            except OSError:  # EIO: the terminal's other side is gone
                data = b""
            if not data:
                self._close_output(fd)
                return
            self.log.write(self.outputs[fd], data)
            if self.cri is not None:
                self.cri.write(self.outputs[fd], data)

    def drain(self) -> None:
        for fd in list(self.outputs):
            self.pump(fd, DRAIN_CHUNKS)

    def reopen_cri_log(self) -> str | None:
        """Go on in a new open of the CRI log's path (after the kubelet renamed the file): the
        output already in the pipes goes to the old file first, a line begun stays whole in the
        new one. An error message, or None."""
        if self.cri is None:
            return "the container has no CRI log"
        for fd in list(self.outputs):
            self.pump(fd)
        try:
            self.cri.reopen()
        except OSError as exc:
            return open_failure(self.cri.path, exc)
        return None

    def _close_output(self, fd: int) -> None:
        stream = self.outputs.pop(fd, None)
        if self.cri is not None and stream is not None:
            self.cri.end(stream)
        if fd == self.stdin_fd:
            self.stdin_fd = -1
        os.close(fd)

    def write_stdin(self, data: bytes) -> str | None:
        """Queue input for the process; an error message, or None when accepted."""
        if self.stdin_fd < 0 or self.stdin_closing:
            return "stdin is closed or was not requested (start with --stdin)"
        if len(self.stdin_buffer) + len(data) > STDIN_BUFFER_MAX:
            return "stdin buffer is full: the process is not reading"
        self.stdin_buffer += data
        self.flush_stdin()
        return None

    def flush_stdin(self) -> None:
        while self.stdin_buffer and self.stdin_fd >= 0:
            try:
                written = os.write(self.stdin_fd, self.stdin_buffer)
            except BlockingIOError:
                return
            except OSError:  # EPIPE: the reader is gone
                self.stdin_buffer.clear()
                break
            del self.stdin_buffer[:written]
        if self.stdin_closing and not self.stdin_buffer:
            self._finish_close_stdin()

    def close_stdin(self) -> None:
        self.stdin_closing = True
        self.flush_stdin()

    def _finish_close_stdin(self) -> None:
        if self.stdin_fd < 0:
            return
        if self.tty:
            try:
                os.write(self.stdin_fd, b"\x04")
            except OSError:
                pass
            return
        os.close(self.stdin_fd)
        self.stdin_fd = -1

    @property
    def wants_write(self) -> bool:
        return bool(self.stdin_buffer) and self.stdin_fd >= 0

    def resize(self, width: int, height: int) -> str | None:
        if not self.tty or self.stdin_fd < 0:
            return "the process has no terminal"
        fcntl.ioctl(self.stdin_fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
        return None

    def close(self) -> None:
        for fd in list(self.outputs):
            self._close_output(fd)
        if self.stdin_fd >= 0 and not self.tty:
            os.close(self.stdin_fd)
        self.log.close()
        if self.cri is not None:
            self.cri.close()
