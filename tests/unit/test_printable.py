"""`printable`: what human-readable output makes of strings others control."""

from __future__ import annotations

import pytest

from actorctl.commands.events import format_event
from actorctl.common import Failure
from actorctl.printable import printable


@pytest.mark.parametrize(("raw", "shown"), [
    ("\x1b[2J", "\\x1b[2J"),  # C0: the escape that starts every terminal sequence
    ("a\nb\rc\td", "a\\nb\\rc\\td"),  # a forged line, a rewritten one, a tab
    ("\x00\x07\x08\x7f", "\\x00\\x07\\x08\\x7f"),  # NUL, bell, backspace, DEL
    ("\x9b2J\x9d0;title\x9c", "\\x9b2J\\x9d0;title\\x9c"),  # C1: CSI, OSC and ST as single characters
    ("evil\u202etxt.exe", "evil\\u202etxt.exe"),  # a right-to-left override
    ("\u2066a\u2069\u200f\u061c", "\\u2066a\\u2069\\u200f\\u061c"),  # bidi isolates and marks
    ("a\u200bb\ufeff\u2028", "a\\u200bb\\ufeff\\u2028"),  # zero-width space, BOM, line separator
    ("bad\udcff", "bad\\udcff"),  # an undecodable byte kept by surrogateescape
])
def test_controls_bidi_and_invisible_characters_are_escaped(raw: str, shown: str) -> None:
    assert printable(raw) == shown


def test_everything_else_is_left_as_it_is() -> None:
    text = "web-1 /srv/bundles/café 日本 ✓ C:\\dir \\x1b tier=web"
    assert printable(text) == text


def test_a_failure_shows_its_message_escaped() -> None:
    failure = Failure("bundle /tmp/x\x1b[2J\nError: forged does not exist")
    assert failure.format_message() == "bundle /tmp/x\\x1b[2J\\nError: forged does not exist"
    assert failure.message.endswith("\nError: forged does not exist")  # the exact text stays for callers


def test_an_event_line_is_one_line() -> None:
    event = {"seq": 7, "timestamp": 0.0, "type": "exit", "id": "web1", "pid": "job\x1b]0;x\x07\n", "status": 0}
    line = format_event(event)
    assert "\n" not in line and "\x1b" not in line and "pid=job\\x1b]0;x\\x07\\n" in line
