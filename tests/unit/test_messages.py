"""The typed message definitions: what `decode` accepts and refuses, derived from the annotations."""

from __future__ import annotations

import pytest

from actors.wire import WireError, pack, unpack
from actors.wire import messages as wire


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
