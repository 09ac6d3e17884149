"""The reference docs keep up with the code: the generated CLI reference and man pages are
current, and the protocol page names every method, error code and event type."""

from __future__ import annotations

from pathlib import Path

from actorctl.reference import generate
from actors.wire.api import METHODS
from actors.wire.errors import ErrorCode
from actors.wire.events import EVENT_TYPES, HEARTBEAT_TOPIC, IMAGE_EVENT_TYPES, WELCOME_TOPIC

DOCS = Path(__file__).resolve().parent.parent.parent / "docs"


def test_cli_reference_and_man_pages_are_current() -> None:
    for path, content in generate().items():
        assert path.exists(), f"{path} is missing: run bin/gen-docs"
        assert path.read_text() == content, f"{path} is stale: run bin/gen-docs"


def test_protocol_page_names_everything_the_wire_defines() -> None:
    text = (DOCS / "protocol.md").read_text()
    codes = [value for name, value in vars(ErrorCode).items() if name.isupper()]
    missing = [name for name in (*METHODS, *codes, *EVENT_TYPES, *IMAGE_EVENT_TYPES, WELCOME_TOPIC,
                                   HEARTBEAT_TOPIC)
               if f"`{name}`" not in text]
    assert missing == []
    for method in METHODS:
        assert f"### `{method}`" in text or f"`{method}` /" in text or f"/ `{method}`" in text, method
