"""The wire definitions: what `decode` and the record readers accept and refuse, derived from the annotations."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.wire import WireError, pack, unpack
from actors.wire import messages as wire
from actors.wire.records import ExitRecord, ProcessState, exit_record, read_record
from actors.wire.shim import parse_ready, ready_line


def test_every_kind_survives_the_wire() -> None:
    samples = [
        wire.ProcessExit(token="t", container_id="c", process="init", status=137),
        wire.StartTask(token="t", container_id="c", bundle="/b", labels={"a": "b"}, checkpoint=None),
        wire.RuntimeTask(job="kill_all", container_id="c", params={"signal": 9}, route=b"r", request_id="1"),
        wire.ShimControl(op="resize", width=80, height=24),
        wire.Tick(),
    ]
    for message in samples:
        assert wire.decode(unpack(pack(wire.encode(message)))) == message
    assert {"request", "shim_exit", "emit", "runtime_done"} <= set(wire.KINDS)


@pytest.mark.parametrize(("data", "error"), [
    ({"type": "nope"}, "unknown message type 'nope'"),
    ({"type": "oom", "container_id": "c"}, "oom: missing member 'token'"),
    ({"type": "oom", "container_id": "c", "token": 5}, "oom: member 'token' has the wrong type"),
    ({"type": "oom", "container_id": "c", "token": "t", "pid": 1}, "oom: unknown member(s) pid"),
    ({"type": "process_exit", "token": "t", "container_id": "c", "process": "p", "status": True},
     "member 'status' has the wrong type"),
    ({"type": "runtime_task", "job": "kill_all", "container_id": "c", "params": {"signal": "KILL"}},
     "job kill_all: member 'signal' has the wrong type"),
    ({"type": "runtime_task", "job": "delete", "container_id": "c", "params": {}}, "unknown runtime job 'delete'"),
    ([1, 2], "a message must be a map"),
])
def test_what_decode_refuses(data: object, error: str) -> None:
    with pytest.raises(WireError, match=error.replace("(", r"\(").replace(")", r"\)")):
        wire.decode(data)


def test_a_float_field_takes_an_int_and_optional_fields_default() -> None:
    control = wire.decode({"type": "shim_control", "op": "start", "timeout": 30})
    assert isinstance(control, wire.ShimControl) and control.timeout == 30 and control.data is None


def test_records_are_read_only_when_whole(tmp_path: Path) -> None:
    path = tmp_path / "exit.json"
    assert read_record(path, ExitRecord) is None  # missing
    path.write_bytes(exit_record(137, 1.5))
    assert read_record(path, ExitRecord) == {"status": 137, "time": 1.5}
    path.write_text('{"status": "137", "time": 1}')
    assert read_record(path, ExitRecord) is None  # the wrong type
    path.write_text('{"status": 0, "ti')
    assert read_record(path, ExitRecord) is None  # torn
    state = tmp_path / "state.json"
    state.write_text('{"token": "t", "system_pid": 5, "shim_pid": 6, "from_a_newer_daemon": 1}')
    assert read_record(state, ProcessState) == {"token": "t", "system_pid": 5, "shim_pid": 6,
                                                "from_a_newer_daemon": 1}
    state.write_text('{"token": "t", "system_pid": 5}')
    assert read_record(state, ProcessState) is None


def test_the_ready_line() -> None:
    assert parse_ready(ready_line({"ok": True, "pid": 42, "start": 7})) == {"ok": True, "pid": 42, "start": 7}
    assert parse_ready(ready_line({"ok": False, "error": "no"})) == {"ok": False, "error": "no"}
    assert parse_ready(b'{"ok": true, "pid": 0}\n') is None
    assert parse_ready(b'{"ok": tr') is None


def test_a_literal_field_takes_only_its_values() -> None:
    with pytest.raises(WireError, match="member 'op' may not be 'reboot'"):
        wire.decode({"type": "shim_control", "op": "reboot"})
    with pytest.raises(WireError, match="member 'event' may not be 'explode'"):
        wire.decode({"type": "emit", "event": "explode", "container_id": "c"})
    oom = wire.Emit(event="oom", container_id="c")
    assert wire.decode({"type": "emit", "event": "oom", "container_id": "c"}) == oom
