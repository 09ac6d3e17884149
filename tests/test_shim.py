"""The shim and its spawner from the outside: threads, how soon an exit is reported, exit-path stamps."""

from __future__ import annotations

import os
import signal
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shimproc.trace import TRACE_VARIABLE
from tests.harness import Daemon, checked_daemon, new_state_dir, remove_state_dir, wait_until

SHIM_HOPS = ["shim reaped", "shim drained", "shim reported"]
DAEMON_HOPS = ["bus: shim report received", "monitor: report", "monitor: passed on", "eventlog: emit",
               "eventlog: written", "bus: published"]
"""In the order of the path."""


def thread_names(pid: int) -> list[str]:
    tasks = Path(f"/proc/{pid}/task")
    return sorted((tasks / task / "comm").read_text().strip() for task in os.listdir(tasks))


def test_the_spawner_has_one_thread_and_a_shim_three(daemon: Daemon, sleeper: Path) -> None:
    """The spawner forks without the interpreter's at-fork hooks, which is sound only while it
    has a single thread; a shim has its own and ZeroMQ's I/O and reaper threads, nothing more."""
    shim_pid = daemon.start_container("box", sleeper)["processes"][0]["shim_pid"]
    spawner = daemon.spawner_pid()
    assert spawner is not None
    assert len(thread_names(spawner)) == 1
    names = thread_names(shim_pid)
    assert len(names) == 3 and sum(name.startswith("ZMQbg/") for name in names) == 2, names


def test_an_exit_right_after_start_is_reported_at_once(daemon: Daemon, bundles: Callable[..., Path]) -> None:
    """An init that ends at once (`true`) has its exit reported in a fraction of a second: a shim
    that noticed it only when its poll times out (after 1 s) would show here."""
    delays = []
    for name in ("quick0", "quick1", "quick2"):
        daemon.start_container(name, bundles("true"))
        started = time.monotonic()
        daemon.wait_events(lambda events: ("exit", "init") in {(e["type"], e["pid"]) for e in events},
                           container_id=name)
        delays.append(time.monotonic() - started)
    assert statistics.median(delays) < 0.5, delays


def stamps_of(trace: Path, token: str) -> dict[str, int]:
    """hop -> first stamp (monotonic ns) of the exit path of process `token`."""
    found: dict[str, int] = {}
    for line in trace.read_text().splitlines() if trace.exists() else []:
        stamp_token, rest = line.split(" ", 1)
        hop, ns = rest.rsplit(" ", 1)
        if stamp_token == token:
            found.setdefault(hop, int(ns))
    return found


@pytest.fixture
def traced(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Daemon, Path]]:
    """A running actord whose bus, actors and shims stamp the exit path, and the stamps' file."""
    state_dir = new_state_dir()
    trace = Path(f"{state_dir}.trace")
    monkeypatch.setenv(TRACE_VARIABLE, str(trace))
    try:
        with checked_daemon(Daemon(state_dir), request) as instance:
            yield instance, trace
    finally:
        trace.unlink(missing_ok=True)
        remove_state_dir(state_dir)


def test_every_hop_of_an_exit_is_stamped_in_order(traced: tuple[Daemon, Path], sleeper: Path) -> None:
    daemon, trace = traced
    pid = daemon.start_container("box", sleeper)["processes"][0]["system_pid"]
    os.kill(pid, signal.SIGKILL)
    events = daemon.wait_events(lambda events: any(e["type"] == "exit" for e in events))
    token = next(e["token"] for e in events if e["type"] == "exit")

    def published() -> dict[str, int] | None:
        hops = stamps_of(trace, token)
        return hops if "bus: published" in hops else None

    found = wait_until(published, message="the stamps of the exit")
    path = [hop for hop in SHIM_HOPS + DAEMON_HOPS if hop in found]
    assert path == SHIM_HOPS + DAEMON_HOPS, sorted(found, key=found.__getitem__)
    assert sorted(path, key=found.__getitem__) == path
