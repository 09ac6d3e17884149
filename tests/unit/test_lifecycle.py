"""The lifecycle's ordering rules, without a daemon, runc or root: transitions in, effects out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from actors.supervisor.effects import (
    ClosePidfd,
    Effect,
    Emit,
    RemoveContainerDir,
    RemoveOutput,
    RemoveProcessDir,
    Reply,
    Submit,
)
from actors.supervisor.lifecycle import Lifecycle
from actors.supervisor.phases import (
    MOVES,
    Container,
    ContainerPhase,
    IllegalTransition,
    Process,
    ProcessPhase,
    diagram,
    move,
)
from actors.wire import ApiError, ErrorCode
from actors.wire.messages import ExecTask, RuntimeTask, StartTask

ROOT = Path(__file__).resolve().parents[2]


def info(pid: int, pidfd: int = -1) -> dict[str, Any]:
    return {"system_pid": pid, "shim_pid": pid + 1, "pidfd": pidfd, "args": ["sleep", "1"], "tty": False}


def events(effects: list[Effect]) -> list[tuple[str, str | None, int | None]]:
    return [(e.event, e.process, e.status) for e in effects if isinstance(e, Emit)]


def phase(life: Lifecycle, container_id: str) -> ContainerPhase:
    return life.containers[container_id].phase


def start(life: Lifecycle, container_id: str = "c1") -> tuple[str, list[Effect]]:
    """Start a container; (init token, effects of the start request)."""
    task = StartTask(token="", container_id=container_id, bundle="/b", labels={})
    effects = life.start(container_id, "/b", {}, False, (b"route", "r1"), task)
    return life.containers[container_id].init_token, effects


def running(life: Lifecycle, container_id: str = "c1") -> str:
    token, _ = start(life, container_id)
    life.started(token, info(100))
    return token


def exec_token(life: Lifecycle, container_id: str = "c1", name: str | None = None) -> str:
    (submit,) = life.exec(container_id, name, (b"route", "r2"),
                          ExecTask(token="", container_id=container_id, process="", spec={}))
    assert isinstance(submit, Submit) and isinstance(submit.task, ExecTask)
    assert submit.task.process == life.processes[submit.task.token].name
    return submit.task.token


def test_a_start_submits_its_task_and_answers_with_the_start_event() -> None:
    life = Lifecycle()
    token, effects = start(life)
    assert effects == [Submit(StartTask(token=token, container_id="c1", bundle="/b", labels={}))]
    assert phase(life, "c1") is ContainerPhase.STARTING
    with pytest.raises(ApiError) as refused:
        life.find("c1")  # not listed until it runs
    assert refused.value.code == ErrorCode.NOT_FOUND
    effects = life.started(token, info(100))
    assert events(effects) == [("start-container", None, None)]
    (emit,) = effects
    assert isinstance(emit, Emit) and emit.answer is not None and emit.answer[0] == (b"route", "r1")
    assert life.find("c1").to_json()["status"] == "running"


def test_an_exit_before_the_start_is_done_waits_for_it() -> None:
    life = Lifecycle()
    token, _ = start(life)
    assert life.exited(token, 0) == []
    assert life.processes[token].early_exit == 0
    assert events(life.started(token, info(100))) == [("start-container", None, None), ("exit", "init", 0)]
    assert "c1" not in life.containers and life.removed["c1"].phase is ContainerPhase.REMOVED


def test_exec_exits_come_before_the_inits() -> None:
    life = Lifecycle()
    init = running(life)
    job = exec_token(life)
    assert events(life.started(job, info(200))) == [("start-process", "exec-1", None)]
    assert life.exited(init, 137) == []  # waits for exec-1
    assert phase(life, "c1") is ContainerPhase.STOPPING
    assert events(life.exited(job, 137)) == [("exit", "exec-1", 137), ("exit", "init", 137)]


def test_an_exec_still_starting_holds_the_inits_exit_until_it_fails() -> None:
    life = Lifecycle()
    init = running(life)
    job = exec_token(life)
    assert life.exited(init, 0) == []
    effects = life.start_failed(job, ApiError(ErrorCode.RUNTIME_ERROR, "runc exec failed"))
    assert [(e.client, e.error.code) for e in effects if isinstance(e, Reply)] == [
        ((b"route", "r2"), ErrorCode.RUNTIME_ERROR)]
    assert events(effects) == [("exit", "init", 0)]


def test_state_is_removed_only_when_the_shim_is_gone_and_the_exit_on_record() -> None:
    for first, second in (("shim_gone", "recorded"), ("recorded", "shim_gone")):
        life = Lifecycle()
        token = running(life)
        life.exited(token, 0)
        assert getattr(life, first)(token) == []
        assert life.processes[token].phase is ProcessPhase.CLEANING
        assert getattr(life, second)(token) == [RemoveContainerDir("c1")]
        assert token not in life.processes and "c1" not in life.removed


def test_a_shim_gone_before_the_exit_is_processed_is_remembered() -> None:
    life = Lifecycle()
    init = running(life)
    job = exec_token(life)
    life.started(job, info(200))
    assert life.shim_gone(job) == []
    effects = life.exited(job, 1)
    assert events(effects) == [("exit", "exec-1", 1)]
    assert life.recorded(job) == [RemoveProcessDir("c1", "exec-1")]
    assert life.processes[init].phase is ProcessPhase.RUNNING


def test_a_start_for_a_removed_containers_id_is_parked_until_it_is_cleaned_up() -> None:
    life = Lifecycle()
    old = running(life)
    life.exited(old, 0)
    new, effects = start(life)
    assert effects == [] and phase(life, "c1") is ContainerPhase.PARKED
    with pytest.raises(ApiError) as refused:
        start(life)
    assert refused.value.code == ErrorCode.ALREADY_EXISTS
    life.shim_gone(old)
    effects = life.recorded(old)
    restarted = StartTask(token=new, container_id="c1", bundle="/b", labels={})
    assert effects == [RemoveContainerDir("c1"), Submit(restarted)]
    assert phase(life, "c1") is ContainerPhase.STARTING


def test_duplicate_exits_are_dropped_and_a_duplicate_start_done_is_illegal() -> None:
    life = Lifecycle()
    token = running(life)
    life.exited(token, 0)
    assert life.exited(token, 9) == []
    with pytest.raises(IllegalTransition):
        life.started(token, info(300))


def test_pause_resume_and_what_they_refuse() -> None:
    life = Lifecycle()
    running(life)
    life.pause("c1", "pause")
    assert life.find("c1").to_json()["status"] == "running"  # until it is done
    with pytest.raises(ApiError, match="a pause of c1 is under way"):
        life.pause("c1", "resume")
    with pytest.raises(ApiError, match="c1 is pausing"):
        life.exec("c1", None, (None, None), ExecTask(token="", container_id="c1", process="", spec={}))
    assert life.paused("c1", "pause", True, ((b"r", "1"), {})) == [Emit("pause", "c1", answer=((b"r", "1"), {}))]
    with pytest.raises(ApiError, match="c1 is paused"):
        life.pause("c1", "pause")
    life.pause("c1", "resume")
    assert life.paused("c1", "resume", False, ((b"r", "2"), {})) is None  # failed: the job's error answers
    assert phase(life, "c1") is ContainerPhase.PAUSED


def test_an_init_exit_during_a_pause_ends_it() -> None:
    life = Lifecycle()
    token = running(life)
    life.pause("c1", "pause")
    assert events(life.exited(token, 137)) == [("exit", "init", 137)]
    assert life.paused("c1", "pause", True, ((b"r", "1"), {})) is None


def test_exec_names_skip_those_in_use_and_pidfds_are_closed_at_exit() -> None:
    life = Lifecycle()
    running(life)
    exec_token(life, name="exec-1")
    second = exec_token(life)
    assert life.processes[second].name == "exec-2"
    with pytest.raises(ApiError) as refused:
        exec_token(life, name="exec-2")
    assert refused.value.code == ErrorCode.ALREADY_EXISTS
    life.started(second, info(200, pidfd=42))
    assert ClosePidfd(42) in life.exited(second, 0)


def test_the_output_of_the_last_exits_is_kept() -> None:
    life = Lifecycle()
    first = running(life)
    job = exec_token(life, name="job")
    life.started(job, info(200))
    life.exited(job, 0)
    again = exec_token(life, name="job")
    life.started(again, info(201))
    assert RemoveOutput(job) in life.exited(again, 0)  # the same name's older output goes
    assert life.finished[("c1", "job")] == (again, 0)
    assert life.finished.get(("c1", "init")) is None and first in life.processes


def test_an_orphan_job_goes_out_only_for_a_running_process() -> None:
    life = Lifecycle()
    token = running(life)
    (submit,) = life.orphan(token)
    assert isinstance(submit, Submit) and isinstance(submit.task, RuntimeTask) and submit.task.job == "orphan"
    assert submit.task.params["token"] == token
    life.exited(token, 137)
    assert life.orphan(token) == []


def test_the_architecture_doc_draws_the_machines_in_the_code() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    for machine in ("process", "container"):
        assert f"```mermaid\n{diagram(machine)}\n```" in doc, f"docs/architecture.md: the {machine} diagram is stale"


def restored(life: Lifecycle, *names: str, paused: bool = False) -> dict[str, Process]:
    """A container of a previous run, as restore builds it: processes running, their shims alive."""
    container = Container(id="c1", bundle="/b", labels={}, init_token="t-init")
    for name in names:
        container.processes[name] = Process(token=f"t-{name}", container_id="c1", name=name, system_pid=100)
    life.restored(container, paused=paused)
    return container.processes


def test_a_restore_with_exits_on_disk_reports_exec_exits_first() -> None:
    life = Lifecycle()
    restored(life, "init", "job")
    # restore reports what it found in exit.json files, execs first (as actord does)
    assert life.exited("t-init", 0) == []
    assert events(life.exited("t-job", 3)) == [("exit", "job", 3), ("exit", "init", 0)]


def test_a_restore_with_a_dead_shim_has_the_process_killed_then_reports_it() -> None:
    life = Lifecycle()
    processes = restored(life, "init", paused=True)
    processes["init"].shim_gone = True  # restore saw it dead
    (submit,) = life.orphan("t-init")
    assert isinstance(submit, Submit) and isinstance(submit.task, RuntimeTask)
    assert submit.task.params["paused"] is True  # a frozen process cannot die: the job resumes it first
    assert events(life.exited("t-init", 137)) == [("exit", "init", 137)]
    assert life.recorded("t-init") == [RemoveContainerDir("c1")]  # its shim is gone already


def test_a_discarded_container_holds_its_id_until_it_is_cleaned_up() -> None:
    life = Lifecycle()
    life.discard("c1")
    token, effects = start(life)
    assert effects == [] and phase(life, "c1") is ContainerPhase.PARKED
    assert life.discarded("c1") == [RemoveContainerDir("c1"),
                                    Submit(StartTask(token=token, container_id="c1", bundle="/b", labels={}))]


def test_a_transition_from_a_phase_it_does_not_start_from_raises() -> None:
    life = Lifecycle()
    restored(life, "init")
    container = life.containers["c1"]
    illegal = [name for name, (sources, _) in MOVES["container"].items() if ContainerPhase.RUNNING not in sources]
    assert "last process exited" in illegal
    for name in illegal:
        with pytest.raises(IllegalTransition, match=f"container c1: '{name}' from running"):
            move("container", container, name)
    assert container.phase is ContainerPhase.RUNNING
