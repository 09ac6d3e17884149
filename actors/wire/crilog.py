"""The CRI log: a container's output in the format the kubelet and `crictl logs` read from disk,
written by the container's init's shim (`shimproc/crilog.py`) when its start names a file
(`containers.start {"cri_log": PATH}`).

Each line of the file is `<time> <stream> <tag> <text>\\n`: `time` the moment the shim wrote it,
RFC 3339 in UTC with nanoseconds, trailing zeros trimmed as Go's `time.RFC3339Nano` writes them
(`2026-12-04T03:25:22.1Z`; no fraction at all on a whole second); `stream` `stdout` or `stderr`
(a terminal's output is `stdout`); `tag` `F` for a whole line, `P` for part of one. The text of
an output line is its bytes up to the `\\n`, less a `\\r` before it (containerd drops both). A line
longer than `MAX_LINE` bytes is written as `P` entries of `MAX_LINE` bytes, then an `F` entry with
the rest; an unterminated last line (the stream ended without a `\\n`) is a `P` entry, as
containerd writes it. stdout and stderr go to the same file, each line whole.

The file is the kubelet's: it rotates it (renames it, then asks for a reopen) and reads it;
actord neither rotates nor reads it (its own output files stay what `containers.logs` reads).
"""

from __future__ import annotations

import os

__all__ = ["FULL", "MAX_LINE", "PARTIAL", "STREAM_NAMES", "cri_log_problem"]

MAX_LINE = 16 * 1024
"""Bytes of text per entry: containerd's default `max_container_log_line_size`."""
STREAM_NAMES = {1: b"stdout", 2: b"stderr"}
"""Stream number (as in actors/wire/outputlog.py) -> its name in the file."""
FULL, PARTIAL = b"F", b"P"
PATH_MAX = 4095
"""The longest path Linux opens (PATH_MAX less its NUL)."""


def cri_log_problem(path: str) -> str | None:
    """Why `path` cannot be a CRI log's path (it must be absolute and normalized: no `.`, `..`,
    `//` or trailing `/`; no NUL), or None when it can. What is on disk is the shim's to find
    out, when it opens the file."""
    if not path or len(path) > PATH_MAX:
        return f"must be a path of 1 to {PATH_MAX} characters"
    if "\0" in path:
        return "must not hold a NUL character"
    if not path.startswith("/"):
        return "must be an absolute path"
    if os.path.normpath(path) != path or path == "/" or path.startswith("//"):
        return f"must be a normalized path to a file (as {os.path.normpath(path)!r})"
    return None
