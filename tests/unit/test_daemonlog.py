"""The daemon's log formats and context fields, without a daemon."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Iterator

import pytest

from actors.daemonlog import configure, log_context, log_fields


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    """The root logger's handlers and level as they were, after the test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        yield stream
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_json_lines_carry_the_known_fields_and_no_others(output: io.StringIO) -> None:
    configure("info", "json", output)
    log = logging.getLogger("actors.test")
    log.info("plain %d", 1)
    log.info("about", extra=log_fields(container_id="web1", process="init", request_id="r1", peer_uid=0))
    log.debug("not shown")
    plain, about = (json.loads(line) for line in lines(output))
    assert set(plain) == {"time", "level", "logger", "message"}
    assert (plain["level"], plain["logger"], plain["message"]) == ("info", "actors.test", "plain 1")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", plain["time"])
    assert {k: about[k] for k in ("container_id", "process", "request_id", "peer_uid")} == {
        "container_id": "web1", "process": "init", "request_id": "r1", "peer_uid": 0}


def test_json_carries_the_exception_on_one_line(output: io.StringIO) -> None:
    configure("debug", "json", output)
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        logging.getLogger("actors.test").exception("it failed")
    [line] = lines(output)
    entry = json.loads(line)
    assert entry["level"] == "error" and "ValueError: bad\nvalue" in entry["exception"]


def test_the_context_fills_what_the_call_does_not_give(output: io.StringIO) -> None:
    configure("info", "json", output)
    log = logging.getLogger("actors.test")
    with log_context(container_id="web1", request_id="r1"):
        with log_context(peer_uid=1000):
            log.info("inner")
        log.info("explicit", extra=log_fields(container_id="web2", process="job"))
    log.info("after")
    inner, explicit, after = (json.loads(line) for line in lines(output))
    assert (inner["container_id"], inner["request_id"], inner["peer_uid"]) == ("web1", "r1", 1000)
    assert (explicit["container_id"], explicit["process"], explicit["request_id"]) == ("web2", "job", "r1")
    assert "peer_uid" not in explicit
    assert set(after) == {"time", "level", "logger", "message"}


def test_text_lines_append_the_fields_before_a_traceback(output: io.StringIO) -> None:
    configure("debug", "text", output)
    try:
        raise KeyError("k")
    except KeyError:
        logging.getLogger("actors.test").exception("start of %s failed", "web1",
                                                   extra=log_fields(container_id="web1", process="a b"))
    first, *rest = lines(output)
    assert re.fullmatch(r"\S+ \S+ ERROR actors\.test: start of web1 failed container_id=web1 process=\"a b\"", first)
    assert rest[0] == "Traceback (most recent call last):" and rest[-1] == "KeyError: 'k'"


def test_configure_replaces_the_handler_and_sets_the_level(output: io.StringIO) -> None:
    configure("debug", "text", sys.stderr)
    configure("warning", "text", output)
    log = logging.getLogger("actors.test")
    log.info("hidden")
    log.warning("shown")
    assert len(logging.getLogger().handlers) == 1
    assert [line.split(": ", 1)[1] for line in lines(output)] == ["shown"]
