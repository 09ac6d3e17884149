"""actord's own log as JSON lines, with a real actord and real containers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import zmq

from actorctl.client import DaemonError
from actors.wire import pack
from actors.wire.api import PROTOCOL_VERSION
from tests.harness import Daemon, checked_daemon, new_state_dir, remove_state_dir


@pytest.fixture
def json_daemon(request: pytest.FixtureRequest) -> Iterator[Daemon]:
    state_dir = new_state_dir()
    try:
        with checked_daemon(Daemon(state_dir, ["--log-format", "json", "--log-level", "debug"]), request) as daemon:
            yield daemon
    finally:
        remove_state_dir(state_dir)


def test_every_line_is_json_and_names_what_it_is_about(json_daemon: Daemon, sleeper: Path) -> None:
    daemon = json_daemon
    daemon.start_container("jsonlog", sleeper)
    daemon.call("containers.exec", {"id": "jsonlog", "pid": "job", "args": ["sleep", "1000"]})
    with pytest.raises(DaemonError):
        daemon.call("containers.state", {"id": "no-such-container"})
    with zmq.Context() as context, context.socket(zmq.DEALER) as raw:  # a request the bus refuses itself
        raw.connect(daemon.address)
        raw.send(pack({"v": PROTOCOL_VERSION, "id": "raw-1", "method": "no.such.method", "params": {}}))
        assert raw.poll(10_000)
        raw.recv()
        raw.close(linger=0)
    daemon.call("containers.signal", {"id": "jsonlog", "signal": 9})
    daemon.wait_events(lambda events: any(e["type"] == "exit" and e["pid"] == "init" for e in events))
    assert daemon.stop() == 0

    entries = [json.loads(line) for line in daemon.log().splitlines()]  # every line parses
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= set(entry), entry
        assert entry["level"] in ("debug", "info", "warning", "error", "critical")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", entry["time"])
        datetime.fromisoformat(entry["time"])
        assert None not in entry.values()

    def about(container: str, message: str) -> list[dict[str, Any]]:
        return [e for e in entries if e.get("container_id") == container and message in e["message"]]

    started = about("jsonlog", "container jsonlog started")[0]
    assert started["process"] == "init"
    assert started["request_id"] == about("jsonlog", "containers.start")[0]["request_id"]
    assert about("jsonlog", "process jsonlog/job started")[0]["process"] == "job"
    assert about("jsonlog", "container jsonlog exited")[0]["process"] == "init"
    signalled = about("jsonlog", "containers.signal")
    assert signalled and signalled[0]["peer_uid"] == 0 and signalled[0]["request_id"]
    failed = [e for e in entries if "answered with not_found" in e["message"]]
    assert failed and failed[0]["request_id"] and failed[0]["peer_uid"] == 0
    refused = [e for e in entries if e.get("request_id") == "raw-1" and "refused: unknown_method" in e["message"]]
    assert refused and refused[0]["peer_uid"] == 0
    assert any(e["message"].startswith("stopping") for e in entries)
