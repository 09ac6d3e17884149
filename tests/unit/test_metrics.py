"""The metrics' pure logic: status classes, addresses, the stopwatch, events -> counters,
the Supervisor's probe and board, a board snapshot -> samples."""

from __future__ import annotations

from typing import Any

import pytest

from actors.cgroups import CgroupUsage
from actors.metrics import Metrics, parse_address
from actors.metrics.board import ContainerBoard, ContainerView
from actors.metrics.collector import container_families
from actors.metrics.registry import status_class
from actors.metrics.stopwatch import Stopwatch
from actors.supervisor.effects import Submit
from actors.supervisor.lifecycle import Lifecycle
from actors.supervisor.pool import WorkerPool
from actors.supervisor.probe import SupervisorProbe, concerned_container, view_of
from actors.wire import ApiError, ErrorCode
from actors.wire.events import EventRecord, event_record
from actors.wire.messages import Message, Recorded, Request, StartDone, StartTask


@pytest.mark.parametrize(("status", "expected"), [
    (0, "ok"), (1, "error"), (3, "error"), (126, "error"), (127, "error"), (128, "error"),
    (129, "signal"), (137, "signal"), (143, "signal"), (128 + 64, "signal"), (193, "error"),
    (254, "error"), (255, "unknown"), (None, "unknown"),
])
def test_status_classes(status: int | None, expected: str) -> None:
    assert status_class(status) == expected


@pytest.mark.parametrize(("address", "expected"), [
    ("127.0.0.1:9338", ("127.0.0.1", 9338)),
    ("localhost:1", ("localhost", 1)),
    ("[::1]:65535", ("::1", 65535)),
    ("0.0.0.0:9338", ("0.0.0.0", 9338)),
])
def test_good_addresses(address: str, expected: tuple[str, int]) -> None:
    assert parse_address(address) == expected


@pytest.mark.parametrize(("address", "says"), [
    ("nope", "is not HOST:PORT"), (":9338", "is not HOST:PORT"), ("host:", "is not HOST:PORT"),
    ("host:http", "is not HOST:PORT"), ("host:-1", "is not HOST:PORT"),
    ("host:0", "1 to 65535"), ("host:65536", "1 to 65535"),
])
def test_bad_addresses_say_why(address: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_address(address)


def test_the_stopwatch_times_each_key_once() -> None:
    now = [500.0]
    watch = Stopwatch(capacity=2, clock=lambda: now[0])
    watch.begin("a", at=100.0)
    watch.begin("a")  # the first beginning counts
    now[0] = 512.5
    assert watch.end("a") == 412.5
    assert watch.end("a") is None
    watch.begin("b")
    watch.cancel("b")
    assert watch.end("b") is None


def test_the_stopwatch_forgets_the_oldest_past_its_capacity() -> None:
    watch = Stopwatch(capacity=2)
    for key in "abc":
        watch.begin(key)
    assert len(watch) == 2
    assert watch.end("a") is None
    assert watch.end("b") is not None and watch.end("c") is not None


def event(seq: int, kind: str, container_id: str = "c1", pid: str | None = None, status: int | None = None,
          token: str | None = None) -> EventRecord:
    record = event_record(seq=seq, event_type="exit", container_id=container_id, pid=pid, status=status,
                          boot="boot", token=token)
    record["type"] = kind  # type: ignore[typeddict-item]  # also a type this branch does not know: restart
    return record


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_events_become_counters_by_status_class_never_by_id() -> None:
    metrics = Metrics()
    metrics.start_clock.begin("c1")
    metrics.exit_clock.begin("t1")
    for record in [
        event(1, "start-container"), event(2, "start-process", pid="exec-1"),
        event(3, "exit", pid="exec-1", status=0, token="t1"), event(4, "oom"),
        event(5, "exit", pid="init", status=137, token="t2"), event(6, "restart"),
        event(7, "start-container"), event(8, "exit", pid="init", status=2, token="t3"),
        event(9, "pause"), event(10, "resume"),
    ]:
        metrics.recorded(record)
    assert value(metrics, "actord_container_starts_total") == 2
    assert value(metrics, "actord_execs_total") == 1
    assert value(metrics, "actord_oom_kills_total") == 1
    assert value(metrics, "actord_container_restarts_total") == 1
    assert value(metrics, "actord_process_exits_total", process="exec", status_class="ok") == 1
    assert value(metrics, "actord_process_exits_total", process="init", status_class="signal") == 1
    assert value(metrics, "actord_process_exits_total", process="init", status_class="error") == 1
    assert value(metrics, "actord_process_exits_total", process="init", status_class="unknown") == 0
    assert value(metrics, "actord_event_last_seq") == 10
    # only the start and the exit whose beginnings were seen are timed
    assert value(metrics, "actord_container_start_seconds_count") == 1
    assert value(metrics, "actord_exit_event_seconds_count") == 1
    for family in metrics.registry.collect():
        if family.name.startswith("actord_") and family.type == "counter":
            assert all("id" not in sample.labels for sample in family.samples), family.name


def usage(memory: int = 4096, limit: int | None = None) -> CgroupUsage:
    return CgroupUsage(memory_bytes=memory, memory_limit_bytes=limit, cpu_seconds=1.5, pids=2)


def samples(views: list[ContainerView], readings: dict[str, CgroupUsage | None]) -> dict[str, dict[str, float]]:
    """family name -> label value -> value, for the families made from `views`."""
    found: dict[str, dict[str, float]] = {}
    for family in container_families(views, lambda view: readings[view.id]):
        for sample in family.samples:
            found.setdefault(sample.name, {})[next(iter(sample.labels.values()))] = sample.value
    return found


def test_a_snapshot_becomes_status_counts_and_gauges_of_running_containers() -> None:
    views = [
        ContainerView("web", "running", 100, 5), ContainerView("db", "paused", 200, 6),
        ContainerView("new", "starting", 0, None), ContainerView("gone", "running", 300, 7),
        ContainerView("old", "stopping", 0, None),
    ]
    readings = {"web": usage(8192, 64 << 20), "db": usage(), "gone": None}
    found = samples(views, readings)
    assert found["actord_containers"] == {"parked": 0, "starting": 1, "running": 2, "paused": 1, "stopping": 1,
                                          "restarting": 0, "stopped": 0}
    assert found["actord_container_memory_usage_bytes"] == {"db": 4096, "web": 8192}
    assert found["actord_container_memory_limit_bytes"] == {"web": 64 << 20}  # db has no limit
    assert found["actord_container_cpu_seconds_total"] == {"db": 1.5, "web": 1.5}
    assert found["actord_container_pids"] == {"db": 2, "web": 2}


def test_an_empty_board_still_shows_every_status() -> None:
    assert samples([], {}) == {"actord_containers": dict.fromkeys(
        ("parked", "starting", "running", "paused", "stopping", "restarting", "stopped"), 0)}


def test_the_board_keeps_the_last_view_of_each_container() -> None:
    board = ContainerBoard()
    board.put("a", ContainerView("a", "starting", 0, None))
    board.put("a", ContainerView("a", "running", 10, 1))
    board.put("b", ContainerView("b", "running", 11, 1))
    board.put("b", None)
    board.put("never", None)
    assert board.snapshot() == (ContainerView("a", "running", 10, 1),)
    board.replace([ContainerView("c", "paused", 12, 1)])
    assert board.snapshot() == (ContainerView("c", "paused", 12, 1),)


def request(method: str, **params: Any) -> Request:
    return Request(route=b"r", request_id="1", method=method, params=params)


class Rig:
    """A Lifecycle, a pool and the probe around them, with the Supervisor's part done by hand."""

    def __init__(self) -> None:
        self.metrics = Metrics()
        self.life = Lifecycle()
        self.sent: list[tuple[str, Message]] = []
        self.pool = WorkerPool(["w0"], lambda name, task: self.sent.append((name, task)))
        self.probe = SupervisorProbe(self.metrics, self.life, self.pool)

    def handle(self, message: Message, work: Any) -> None:
        concern = self.probe.before(message)
        work()
        self.probe.after(concern)

    def start(self, container_id: str) -> str:
        task = StartTask(token="", container_id=container_id, bundle="/b", labels={})

        def submit() -> None:
            for effect in self.life.start(container_id, "/b", {}, False, (b"r", "1"), task):
                assert isinstance(effect, Submit)
                self.pool.submit(effect.task)
        self.handle(request("containers.start", id=container_id, bundle="/b"), submit)
        return self.life.containers[container_id].init_token

    def board(self) -> dict[str, ContainerView]:
        return {view.id: view for view in self.metrics.board.snapshot()}


def test_a_start_shows_on_the_board_and_starts_the_clock() -> None:
    rig = Rig()
    token = rig.start("a")
    assert rig.board() == {"a": ContainerView("a", "starting", 0, None)}
    assert len(rig.metrics.start_clock) == 1
    assert value(rig.metrics, "actord_workers") == 1
    assert value(rig.metrics, "actord_workers_busy") == 1
    rig.start("b")  # no free worker: queued
    assert value(rig.metrics, "actord_worker_tasks_queued") == 1
    started = {"system_pid": 4242, "shim_pid": 4241, "pidfd": -1, "system_start": 99, "args": ["sleep"]}
    done = StartDone(worker="w0", token=token, container_id="a", ok=True, started=started)

    def finish() -> None:
        rig.life.started(token, started)
        rig.pool.done("w0")
    rig.handle(done, finish)
    assert rig.board()["a"] == ContainerView("a", "running", 4242, 99)
    assert value(rig.metrics, "actord_worker_tasks_queued") == 0
    assert value(rig.metrics, "actord_workers_busy") == 1


def test_a_failed_start_is_counted_and_leaves_the_board() -> None:
    rig = Rig()
    token = rig.start("a")
    done = StartDone(worker="w0", token=token, container_id="a", ok=False, error={"code": "x", "message": "no"})
    rig.handle(done, lambda: rig.life.start_failed(token, ApiError(ErrorCode.INTERNAL, "no")))
    assert rig.board() == {}
    assert value(rig.metrics, "actord_container_start_failures_total") == 1
    assert value(rig.metrics, "actord_exec_failures_total") == 0
    assert len(rig.metrics.start_clock) == 0


def test_a_refused_start_starts_no_clock() -> None:
    rig = Rig()
    rig.handle(request("containers.start", id="a", bundle="relative"), lambda: None)
    assert len(rig.metrics.start_clock) == 0
    assert rig.board() == {}


def test_the_concerned_container_comes_from_the_message_or_its_token() -> None:
    rig = Rig()
    token = rig.start("a")
    assert concerned_container(request("containers.pause", id="a"), rig.life) == "a"
    assert concerned_container(request("containers.list"), rig.life) is None
    assert concerned_container(Recorded(token=token), rig.life) == "a"
    assert concerned_container(Recorded(token="unknown"), rig.life) is None
    assert view_of(rig.life.containers["a"]).status == "starting"
