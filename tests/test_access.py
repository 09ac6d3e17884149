"""Who may use the daemon, and how much one client can make it send or hold: bounded frames."""

from __future__ import annotations

from pathlib import Path

import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from actorctl.client import DaemonError
from tests.harness import Daemon

BIG_LABELS = {f"label-{n}": "x" * 4096 for n in range(200)}
"""About 820 KiB of labels: one container's fit in a frame, two containers' do not."""


def test_a_reply_over_the_frame_limit_becomes_a_too_large_error(daemon: Daemon, sleeper: Path) -> None:
    for container_id in ("big1", "big2"):
        assert daemon.start_container(container_id, sleeper, labels=BIG_LABELS)["labels"] == BIG_LABELS
    with pytest.raises(DaemonError) as refused:
        daemon.call("containers.list", timeout=5)
    assert refused.value.code == "too_large"
    assert "over the 1 MiB frame limit; ask for less" in refused.value.message
    done = daemon.ctl("containers", "list", timeout=10)
    assert done.returncode == 1 and "frame limit" in done.stderr, done
    assert daemon.call("containers.state", {"id": "big1"})["labels"] == BIG_LABELS
    assert "over the frame limit" in daemon.log()


def test_an_oversized_subscription_drops_that_subscriber_and_nothing_else(daemon: Daemon) -> None:
    context = zmq.Context.instance()
    events = f"ipc://{daemon.state_dir}/events.sock"
    hostile = context.socket(zmq.XSUB)
    hostile.setsockopt(zmq.LINGER, 0)
    hostile.setsockopt(zmq.RECONNECT_IVL, -1)
    monitor = hostile.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    listener = context.socket(zmq.SUB)
    listener.setsockopt(zmq.LINGER, 0)
    listener.setsockopt(zmq.SUBSCRIBE, b"daemon/heartbeat")
    try:
        hostile.connect(events)
        hostile.send(b"\x01" + b"x" * (64 << 10))  # a "subscription" of 64 KiB
        assert monitor.poll(5000), "the daemon kept a subscriber that sent a 64 KiB frame"
        assert recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED
        listener.connect(events)
        assert listener.poll(5000), "no heartbeat for a well-behaved subscriber"
        assert daemon.call("version")["protocol"] == 1
    finally:
        hostile.disable_monitor()
        for sock in (monitor, hostile, listener):
            sock.close()
