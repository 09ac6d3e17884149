"""The CRI container store's state machine, records and names, and the rules of the CRI's
containers that need no daemon: a stop signal's parsing, an exit's reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.cri.containerexits import reason_for
from actors.cri.containers import parse_signal, stop_signal_of
from actors.cri.containerstore import ContainerRecord, ContainerState, ContainerStore, IllegalMove, NameTaken

POD = "a" * 64
CONTAINER = "b" * 64


def record(state: ContainerState = ContainerState.CREATED) -> ContainerRecord:
    return ContainerRecord(id=CONTAINER, pod_id=POD, name="app", attempt=1, reserved_name="app_web_ns_uid_1",
                           state=state, image="busybox", image_ref="sha256:" + "c" * 64, bundle="/b", log_path="",
                           created_at=1, labels={"k": "v"}, mounts=({"container_path": "/data", "readonly": True},))


def test_a_record_moves_forward_only_and_survives_a_reload(tmp_path: Path) -> None:
    store = ContainerStore(tmp_path)
    store.reserve("app_web_ns_uid_1", CONTAINER)
    with pytest.raises(NameTaken):
        store.reserve("app_web_ns_uid_1", "d" * 64)
    store.create(record())
    running = store.move(record(), ContainerState.RUNNING, started_at=5, pid=42)
    exited = store.move(running, ContainerState.EXITED, exit_code=3, reason="Error")
    with pytest.raises(IllegalMove):
        store.move(exited, ContainerState.RUNNING)
    with pytest.raises(IllegalMove):
        store.create(record(ContainerState.RUNNING))
    again = ContainerStore(tmp_path)
    assert again.load() == [exited]
    assert again.resolve(CONTAINER[:5]) == CONTAINER and again.resolve("f") is None
    with pytest.raises(NameTaken):
        again.reserve("app_web_ns_uid_1", "d" * 64)
    again.remove(exited)
    assert again.all() == [] and not list(tmp_path.rglob("*.json"))
    again.reserve("app_web_ns_uid_1", "d" * 64)


def test_a_created_container_may_end_without_running(tmp_path: Path) -> None:
    store = ContainerStore(tmp_path)
    store.create(record())
    assert store.move(record(), ContainerState.EXITED, reason="StartError").state is ContainerState.EXITED


def test_a_damaged_record_is_skipped(tmp_path: Path) -> None:
    (tmp_path / POD / "containers").mkdir(parents=True)
    (tmp_path / POD / "containers" / f"{CONTAINER}.json").write_text("{not json")
    assert ContainerStore(tmp_path).load() == []


def test_stop_signals_and_reasons() -> None:
    assert [parse_signal(text) for text in ("SIGTERM", "term", "9", "SIGRTMIN", "NOPE", "0", "999")] == \
        [15, 15, 9, 34, None, None, None]
    assert stop_signal_of({"StopSignal": "SIGQUIT"}) == "SIGQUIT" and stop_signal_of({"StopSignal": "x"}) == ""
    assert stop_signal_of({}) == ""
    assert [reason_for(0, False), reason_for(1, False), reason_for(137, True)] == ["Completed", "Error", "OOMKilled"]
