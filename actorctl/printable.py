"""Strings others control, made safe to print on a terminal.

Labels, a bundle's path, a process's args, image names and the daemon's error messages
come from whoever started the container, built the image or sent the request. Printed
raw, an escape sequence in one of them drives the reader's terminal (clears it, retitles
it, rewrites what is shown) and a newline forges a line of output. Every human-readable
printer of actorctl passes such strings through `printable`; `--json` keeps the exact
values, and `containers logs` stays raw (a process's own output, as `docker logs`).
"""

from __future__ import annotations

import re

__all__ = ["printable"]

_UNSAFE = re.compile(
    "["
    "\x00-\x1f\x7f"  # C0 controls (escape, newline, carriage return, backspace...) and DEL
    "\x80-\x9f"  # C1 controls: CSI and OSC as one character on some terminals
    "\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f"  # bidi marks, embeddings, overrides and isolates; zero-width
    "\ufeff\ufff9-\ufffb"  # byte order mark, interlinear annotation
    "\ud800-\udfff"  # lone surrogates (undecodable bytes kept by surrogateescape)
    "]"
)
"""Characters that move the cursor, reorder or hide text, or end a line: none of them prints as itself."""

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def printable(text: str) -> str:
    """`text` with every control, bidi or invisible formatting character shown as an escape
    (`\\x1b`, `\\n`, `\\u202e`); all else, backslashes included, as it is."""
    return _UNSAFE.sub(_escape, text)
