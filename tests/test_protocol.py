"""Hostile and malformed frames on the control socket: a clear reply, never harm."""

from __future__ import annotations

import msgpack
import pytest
import zmq

from actors.wire import pack
from tests.harness import Daemon


def raw_exchange(daemon: Daemon, frames: list[bytes], expect_reply: bool = True) -> dict | None:
    context = zmq.Context.instance()
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(daemon.address)
    try:
        sock.send_multipart(frames)
        if not sock.poll(3000 if expect_reply else 500):
            return None
        return msgpack.unpackb(sock.recv(), raw=False)
    finally:
        sock.close()


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        ([b"\xc1"], "bad_request"),
        ([b"garbage that is not msgpack at all \xff\xfe"], "bad_request"),
        ([pack([1, 2, 3])], "bad_request"),
        ([pack({1: "int key"})], "bad_request"),
        ([b"\xdd\xff\xff\xff\xff"], "bad_request"),
        ([pack({"v": 1, "method": "version"})], "bad_request"),
        ([pack({"v": 1, "id": 5, "method": "version"})], "bad_request"),
        ([pack({"v": 2, "id": "a", "method": "version"})], "unsupported_version"),
        ([pack({"v": 1, "id": "a", "method": "containers.explode"})], "unknown_method"),
        ([pack({"v": 1, "id": "a", "method": 7})], "bad_request"),
        ([pack({"v": 1, "id": "a", "method": "version", "params": []})], "bad_request"),
        ([pack({"v": 1, "id": "a", "method": "containers.start", "params": {"id": 5}})], "invalid_params"),
        ([pack({"v": 1, "id": "a", "method": "containers.start",
                "params": {"id": "x", "bundle": ["no"]}})], "invalid_params"),
        ([pack({"v": 1, "id": "a", "method": "containers.start",
                "params": {"id": "x", "bundle": "relative/path"}})], "invalid_params"),
        ([pack({"v": 1, "id": "a", "method": "containers.start",
                "params": {"id": "x", "bundle": "/tmp", "labels": {"k": 1}}})], "invalid_params"),
        ([pack({"v": 1, "id": "a", "method": "containers.signal",
                "params": {"id": "x", "signal": True}})], "invalid_params"),
        ([pack({"v": 1, "id": "a", "method": "events.replay", "params": {"after": -1}})], "invalid_params"),
        ([pack({"v": 1, "id": "a", "method": "version"}), b"second frame"], "bad_request"),
    ],
)
def test_malformed_requests_get_an_error_reply(daemon: Daemon, frames: list[bytes], code: str) -> None:
    reply = raw_exchange(daemon, frames)
    assert reply is not None
    assert reply["ok"] is False and reply["error"]["code"] == code, reply
    assert reply["v"] == 1
    assert daemon.call("version")["protocol"] == 1


def test_deep_nesting_and_oversize_frames_do_not_hurt(daemon: Daemon) -> None:
    nested: object = "x"
    for _ in range(200):
        nested = [nested]
    reply = raw_exchange(daemon, [pack({"v": 1, "id": "deep", "method": "version", "params": {"n": nested}})])
    assert reply is not None and reply["error"]["code"] == "bad_request"
    # over the message size limit: ZeroMQ drops the connection, no reply, the daemon lives on
    assert raw_exchange(daemon, [b"\x00" * (2 << 20)], expect_reply=False) is None
    assert daemon.call("containers.list") == []


def test_the_reply_echoes_the_request_id(daemon: Daemon) -> None:
    reply = raw_exchange(daemon, [pack({"v": 1, "id": "my-id-1", "method": "version"})])
    assert reply is not None and reply["id"] == "my-id-1" and reply["ok"] is True
    assert reply["result"]["events_address"].endswith("/events.sock")


def test_shim_socket_rejects_forged_and_garbage_reports(daemon: Daemon) -> None:
    context = zmq.Context.instance()
    push = context.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 1000)
    push.connect(f"ipc://{daemon.state_dir}/shim.sock")
    push.send(b"\xc1junk")
    push.send(pack({"type": "start_task", "worker": "worker-0", "token": "t", "id": "x", "bundle": "/", "labels": {}}))
    push.send(pack({"type": "shim_exit", "token": "nobody", "id": "x", "pid": "init", "status": 0, "shim_pid": 1}))
    push.close()
    assert daemon.call("containers.list") == []
    assert daemon.events() == []
