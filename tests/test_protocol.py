"""The wire: hostile and malformed frames on the control socket get a clear reply, never harm;
every message on the event socket is a topic frame and a msgpack map."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq

from actors.wire import pack
from actors.wire.events import CONTAINER_PREFIX, HEARTBEAT_TOPIC, WELCOME_TOPIC, container_topic, decode
from tests.harness import Daemon


def raw_exchange(daemon: Daemon, frames: list[bytes], expect_reply: bool = True) -> dict[str, Any] | None:
    sock = zmq.Context[zmq.Socket[bytes]].instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(daemon.address)
    try:
        sock.send_multipart(frames)
        if not sock.poll(3000 if expect_reply else 500):
            return None
        reply: dict[str, Any] = msgpack.unpackb(sock.recv(), raw=False)
        return reply
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
    push = zmq.Context[zmq.Socket[bytes]].instance().socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 1000)
    push.connect(f"ipc://{daemon.state_dir}/shim.sock")
    push.send(b"\xc1junk")
    push.send(pack({"type": "start_task", "worker": "worker-0", "token": "t", "id": "x", "bundle": "/", "labels": {}}))
    push.send(pack({"type": "shim_exit", "token": "nobody", "id": "x", "pid": "init", "status": 0, "shim_pid": 1}))
    push.close()
    assert daemon.call("containers.list") == []
    assert daemon.events() == []


def test_every_message_on_the_event_socket_is_a_topic_and_a_msgpack_map(daemon: Daemon, sleeper: Path) -> None:
    """As a plain ZeroMQ subscriber sees it (README): the welcome, heartbeats and events alike."""
    sub = zmq.Context[zmq.Socket[bytes]].instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(daemon.events_address)
    seen: list[tuple[str, dict[str, Any]]] = []

    def receive_until(done: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            assert sub.poll(max(1, int((deadline - time.monotonic()) * 1000))), f"only {seen} within {timeout}s"
            frames = sub.recv_multipart()
            assert len(frames) == 2, frames
            body = msgpack.unpackb(frames[1], raw=False)
            assert isinstance(body, dict), frames
            assert decode(frames)["type"] == body["type"]
            seen.append((frames[0].decode(), body))

    def topics() -> set[str]:
        return {topic for topic, _ in seen}

    try:
        receive_until(lambda: {WELCOME_TOPIC, HEARTBEAT_TOPIC} <= topics())
        welcome = next(body for topic, body in seen if topic == WELCOME_TOPIC)
        beat = next(body for topic, body in seen if topic == HEARTBEAT_TOPIC)
        assert welcome == {"type": "welcome", "boot": beat["boot"]}
        assert beat["seq"] == 0 and isinstance(beat["timestamp"], float)
        daemon.start_container("framed", sleeper)
        daemon.call("containers.signal", {"id": "framed", "signal": 9})
        exit_topic = container_topic("framed", "exit")
        receive_until(lambda: exit_topic in topics())
        events = [body for topic, body in seen if topic.startswith(CONTAINER_PREFIX)]
        assert [(e["type"], e["id"], e["pid"], e["status"]) for e in events] == [
            ("start-container", "framed", None, None), ("exit", "framed", "init", 137)]
        assert [e["seq"] for e in events] == [1, 2] and {e["boot"] for e in events} == {beat["boot"]}
        assert events == daemon.events(), "the same records as events.replay"
    finally:
        sub.close()


def test_a_welcome_follows_each_new_subscription(daemon: Daemon) -> None:
    """A subscriber of the welcome alone gets one once subscribed, and again, as every subscriber
    of it does, when another subscriber's subscription is in effect."""
    context = zmq.Context[zmq.Socket[bytes]].instance()
    address = daemon.events_address
    first = context.socket(zmq.SUB)
    second = context.socket(zmq.SUB)
    try:
        for sock in (first, second):
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SUBSCRIBE, WELCOME_TOPIC.encode())
        first.connect(address)
        assert first.poll(5000) and decode(first.recv_multipart())["type"] == "welcome"
        second.connect(address)
        for sock in (first, second):
            assert sock.poll(5000) and decode(sock.recv_multipart())["type"] == "welcome"
        assert not first.poll(1500), "nothing but welcomes on that topic (no heartbeat)"
    finally:
        first.close()
        second.close()
