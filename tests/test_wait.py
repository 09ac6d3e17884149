"""One `wait` (`Client.wait`, which `actorctl containers wait` loops over), with one answer
whatever the event log still holds; against a real actord and real runc containers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from actorctl.client import NotFound
from tests.harness import Daemon, checked_daemon, new_state_dir, remove_state_dir, wait_until

RETAIN = 3
"""Events the short-memory daemon keeps: a few starts push an exit out of its log."""


@pytest.fixture
def forgetful(request: pytest.FixtureRequest) -> Iterator[Daemon]:
    """A daemon whose event log keeps only the last RETAIN events."""
    state_dir = new_state_dir()
    try:
        with checked_daemon(Daemon(state_dir, extra_args=["--retain-count", str(RETAIN)]), request) as instance:
            yield instance
    finally:
        remove_state_dir(state_dir)


def init_exits(daemon: Daemon, container_id: str) -> list[dict[str, object]]:
    return [e for e in daemon.events(container_id=container_id) if e["type"] == "exit" and e["pid"] == "init"]


def test_a_stopped_container_whose_exit_the_log_rotated_past_gives_its_policys_last_status(
        forgetful: Daemon, bundles: Callable[..., Path]) -> None:
    forgetful.start_container("once", bundles("sh", "-c", "exit 2"), restart="on-failure:1")
    wait_until(lambda: forgetful.call("containers.state", {"id": "once"})["status"] == "stopped", 20)
    forgetful.start_container("gone", bundles("sh", "-c", "exit 5"))
    wait_until(lambda: init_exits(forgetful, "gone") != [])
    for n in range(2):  # 4 events: `once`'s and `gone`'s exits leave the log
        forgetful.start_container(f"push{n}", bundles("true"))
    wait_until(lambda: init_exits(forgetful, "push1") != [])
    assert init_exits(forgetful, "once") == [] and init_exits(forgetful, "gone") == []

    with forgetful.client() as client:
        result = client.wait("once", timeout=30)
        assert (result.container_id, result.process, result.status, result.event) == ("once", "init", 2, None)
        with pytest.raises(NotFound, match="no such container 'gone'"):
            client.wait("gone", timeout=30)
    done = forgetful.ctl("containers", "wait", "once")
    assert (done.returncode, done.stdout) == (2, "2\n"), done.stderr
    assert forgetful.ctl("containers", "rm", "once").returncode == 0


def test_waits_begun_together_give_a_restarting_containers_first_exit_since_then(
        daemon: Daemon, bundles: Callable[..., Path]) -> None:
    with daemon.client() as client:
        began = client.last_event_seq()
        daemon.start_container("flaky", bundles("sh", "-c", "exit 4"), restart="on-failure:1")
        wait_until(lambda: daemon.call("containers.state", {"id": "flaky"})["status"] == "stopped", 20)
        first, second = init_exits(daemon, "flaky")
        result = client.wait("flaky", after=began, timeout=30)
        assert result.status == 4 and result.event is not None and result.event.seq == first["seq"]
        after_first = client.wait("flaky", after=int(str(first["seq"])), timeout=30)
        assert after_first.event is not None and after_first.event.seq == second["seq"]
        now = client.wait("flaky", timeout=30)  # begun after both: the policy's record
        assert (now.status, now.event) == (4, None)
    assert daemon.ctl("containers", "rm", "flaky").returncode == 0
