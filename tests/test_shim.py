"""The shim and its spawner from the outside: threads, how soon an exit is reported, exit-path stamps."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from actors.wire.trace import TRACE_VARIABLE
from tests.harness import Daemon, checked_daemon, new_state_dir, remove_state_dir, wait_until

SHIM_HOPS = ["shim reaped", "shim drained", "shim reported"]
DAEMON_HOPS = ["monitor: report", "monitor: passed on", "eventlog: emit", "eventlog: written",
               "eventlog: published"]
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


def blocking_syscall(pid: int) -> tuple[int, list[int]]:
    """The syscall the main thread of `pid` sleeps in and its arguments (/proc/<pid>/syscall)."""
    fields = Path(f"/proc/{pid}/syscall").read_text().split()
    return int(fields[0]), [int(arg, 16) for arg in fields[1:7]]


NO_TIMEOUT: dict[str, dict[int, Callable[[list[int]], bool]]] = {
    "x86_64": {7: lambda args: args[2] & 0xFFFFFFFF == 0xFFFFFFFF,  # poll(fds, n, -1)
               271: lambda args: args[2] == 0},  # ppoll(fds, n, NULL, ...)
    "aarch64": {73: lambda args: args[2] == 0},  # ppoll
}
"""Per machine: the numbers of poll and ppoll, and whether their arguments ask for no timeout."""


def test_an_idle_shim_sleeps_with_no_timeout_and_wakes_for_an_exit(daemon: Daemon, bundles: Callable[..., Path],
                                                                    sleeper: Path) -> None:
    """An idle shim waits in poll with no timeout: every wake-up is an fd, so it never runs for
    nothing, and an exit (its SIGCHLD pipe) is what wakes it. Inits that end at once (`true`)
    are reported too: no exit is found only because a timer came round."""
    polls = NO_TIMEOUT.get(os.uname().machine)
    if polls is None:
        pytest.skip(f"the poll syscall numbers of {os.uname().machine} are not listed here")
    shim_pid = daemon.start_container("idle", sleeper)["processes"][0]["shim_pid"]

    def sleeping_in_poll() -> tuple[int, list[int]] | None:
        number, args = blocking_syscall(shim_pid)
        return (number, args) if number in polls else None

    number, args = wait_until(sleeping_in_poll, message="the shim to sleep in poll")
    assert polls[number](args), f"the shim sleeps in syscall {number} with a timeout: {[hex(a) for a in args]}"
    for name in ("quick0", "quick1", "quick2"):
        daemon.start_container(name, bundles("true"))
        daemon.wait_events(lambda events: ("exit", "init") in {(e["type"], e["pid"]) for e in events},
                           container_id=name)


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
        return hops if "eventlog: published" in hops else None

    found = wait_until(published, message="the stamps of the exit")
    path = [hop for hop in SHIM_HOPS + DAEMON_HOPS if hop in found]
    assert path == SHIM_HOPS + DAEMON_HOPS, sorted(found, key=found.__getitem__)
    # Stamps of one process follow its own order. Across processes only cause and effect orders
    # them: the shim stamps "reported" after its send returns, which may be after the Monitor got it.
    for hops in (SHIM_HOPS, DAEMON_HOPS):
        assert sorted(hops, key=found.__getitem__) == hops, sorted(found, key=found.__getitem__)
    assert found["shim drained"] <= found["monitor: report"]
