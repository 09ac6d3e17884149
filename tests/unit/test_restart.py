"""Restart policies without a daemon: the rules, the back-off, and the lifecycle's records."""

from __future__ import annotations

import pytest

from actors.supervisor.effects import ArmAlarm, Effect, Emit, ForgetDefinition, SaveDefinition, Submit
from actors.supervisor.lifecycle import Lifecycle
from actors.supervisor.phases import ContainerPhase, IllegalTransition, move
from actors.supervisor.restart import Backoff, Policy, RestartPolicy, should_restart
from actors.wire import ApiError, ErrorCode
from actors.wire.messages import StartTask
from actors.wire.records import ContainerDefinition


class Clock:
    """Wall and monotonic time the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def life_with(clock: Clock) -> Lifecycle:
    return Lifecycle(Backoff(first=1, cap=4, reset=10), stored_config=lambda cid: f"/root/{cid}/config.json",
                     clock=clock, monotonic=clock)


def start(life: Lifecycle, policy: str, container_id: str = "c1") -> list[Effect]:
    task = StartTask(token="", container_id=container_id, bundle="/b", labels={})
    return life.start(container_id, "/b", {}, False, (b"route", "r1"), task, RestartPolicy.parse(policy))


def run_and_exit(life: Lifecycle, status: int, container_id: str = "c1", clock: Clock | None = None,
                 ran: float = 0) -> list[Effect]:
    """The container's current init starts, runs `ran` seconds, exits with `status` and is cleaned up."""
    token = life.containers[container_id].init_token
    life.started(token, {"system_pid": 100, "shim_pid": 101, "pidfd": -1, "args": ["x"]})
    if clock is not None:
        clock.now += ran
    effects = life.exited(token, status)
    life.shim_gone(token)
    effects += life.recorded(token)
    return effects


def restarts(effects: list[Effect]) -> list[tuple[int | None, int | None]]:
    return [(e.attempt, e.status) for e in effects if isinstance(e, Emit) and e.event == "restart"]


@pytest.mark.parametrize(("text", "parsed"), [
    ("no", RestartPolicy()), ("always", RestartPolicy(Policy.ALWAYS)),
    ("on-failure", RestartPolicy(Policy.ON_FAILURE)), ("on-failure:3", RestartPolicy(Policy.ON_FAILURE, 3)),
    ("unless-stopped", RestartPolicy(Policy.UNLESS_STOPPED)),
])
def test_policies_parse_and_print_back(text: str, parsed: RestartPolicy) -> None:
    assert RestartPolicy.parse(text) == parsed and str(parsed) == text


@pytest.mark.parametrize("text", ["", "yes", "always:2", "on-failure:", "on-failure:0", "on-failure:-1",
                                  "on-failure:x", "on-failure:99999999"])
def test_bad_policies_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        RestartPolicy.parse(text)


def test_who_comes_back() -> None:
    def back(policy: str, status: int | None, oom: bool = False, stopped: bool = False, count: int = 0) -> bool:
        return should_restart(RestartPolicy.parse(policy), status=status, oom=oom, stopped=stopped, restarts=count)

    assert not back("no", 1)
    assert back("on-failure", 1) and not back("on-failure", 0) and back("on-failure", 0, oom=True)
    assert back("on-failure", None), "a failed start is a failure"
    assert not back("on-failure", 137, stopped=True)
    assert back("on-failure:2", 1, count=1) and not back("on-failure:2", 1, count=2)
    assert back("always", 0) and back("always", 1) and not back("always", 137, stopped=True)
    assert back("unless-stopped", 0) and not back("unless-stopped", 137, stopped=True)


def test_who_starts_with_the_daemon() -> None:
    """They differ only here: an explicitly stopped `always` container comes back with the daemon."""
    def back(policy: str, stopped: bool) -> bool:
        return RestartPolicy.parse(policy).starts_with_the_daemon(stopped=stopped)

    assert back("always", False) and back("always", True)
    assert back("unless-stopped", False) and not back("unless-stopped", True)
    assert not any(back(policy, stopped) for policy in ("no", "on-failure", "on-failure:3")
                   for stopped in (False, True))


def test_the_back_off_doubles_to_its_cap_and_resets_after_a_long_run() -> None:
    backoff = Backoff(first=0.5, cap=3, reset=10)
    assert [backoff.delay(streak) for streak in range(1, 6)] == [0.5, 1, 2, 3, 3]
    assert backoff.next_streak(4, ran=2) == 5 and backoff.next_streak(4, ran=10) == 1
    assert backoff.delay(10_000) == 3


def test_on_failure_restarts_then_keeps_it_stopped_and_rm_forgets_it() -> None:
    clock = Clock()
    life = life_with(clock)
    first = start(life, "on-failure:2")
    assert isinstance(first[0], SaveDefinition)
    (launch,) = [e for e in first if isinstance(e, Submit)]
    assert isinstance(launch.task, StartTask) and launch.task.keep_config  # its worker keeps the bytes it read
    seen = []
    for attempt in (1, 2):
        effects = run_and_exit(life, 3)
        seen += restarts(effects)
        assert ArmAlarm(float(2 ** (attempt - 1))) in effects
        assert life.containers["c1"].phase is ContainerPhase.RESTARTING
        assert life.due_restarts() == [ArmAlarm(float(2 ** (attempt - 1)))], "not before its time: re-armed"
        clock.now += 2 ** (attempt - 1)
        due = life.due_restarts()
        (submit,) = [e for e in due if isinstance(e, Submit)]
        assert isinstance(submit.task, StartTask) and submit.task.config == "/root/c1/config.json"
        assert not submit.task.keep_config  # a restart runs the kept copy, and keeps it as it is
        assert life.containers["c1"].status == "restarting" and life.containers["c1"].shown
    assert seen == [(1, 3), (2, 3)]
    effects = run_and_exit(life, 3)
    assert restarts(effects) == [] and life.containers["c1"].phase is ContainerPhase.STOPPED
    (save,) = [e for e in effects if isinstance(e, SaveDefinition)]
    assert save.definition["stopped"] and save.definition["restarts"] == 2 and save.definition["last_status"] == 3
    assert life.remove("c1") == [ForgetDefinition("c1")] and "c1" not in life.containers


def test_a_restart_waits_for_its_predecessor_to_be_cleaned_up() -> None:
    clock = Clock()
    life = life_with(clock)
    start(life, "always")
    token = life.containers["c1"].init_token
    life.started(token, {"system_pid": 100, "shim_pid": 101, "pidfd": -1, "args": ["x"]})
    life.exited(token, 0)  # its shim is not gone yet: the old record stays in `removed`
    clock.now += 1
    due = life.due_restarts()
    assert life.containers["c1"].phase is ContainerPhase.PARKED and not any(isinstance(e, Submit) for e in due)
    life.shim_gone(token)
    assert any(isinstance(e, Submit) for e in life.recorded(token))
    assert life.containers["c1"].status == "restarting" and life.containers["c1"].phase.value == "starting"


def test_a_failed_restart_backs_off_again_and_a_long_run_resets_the_back_off() -> None:
    clock = Clock()
    life = life_with(clock)
    start(life, "unless-stopped")
    run_and_exit(life, 1)
    clock.now += 1
    life.due_restarts()
    failed = life.start_failed(life.containers["c1"].init_token, ApiError(ErrorCode.INTERNAL, "no bundle"))
    assert restarts(failed) == [(2, None)] and ArmAlarm(2.0) in failed
    clock.now += 2
    life.due_restarts()
    assert ArmAlarm(1.0) in run_and_exit(life, 1, clock=clock, ran=60)  # it ran a minute before it stopped


def test_an_explicit_stop_is_kept_and_only_a_stopped_or_restarting_container_is_removed() -> None:
    life = life_with(Clock())
    start(life, "unless-stopped")
    token = life.containers["c1"].init_token
    life.started(token, {"system_pid": 100, "shim_pid": 101, "pidfd": -1, "args": ["x"]})
    with pytest.raises(ApiError) as refused:
        life.remove("c1")
    assert refused.value.code == ErrorCode.CONFLICT
    life.signalled("c1", 1)  # HUP: a reload, not a stop
    assert not life.containers["c1"].stop_requested
    life.signalled("c1", 15)
    life.exited(token, 143)
    assert life.containers["c1"].phase is ContainerPhase.STOPPED
    with pytest.raises(ApiError) as taken:
        start(life, "no")
    assert "containers rm c1" in taken.value.message
    with pytest.raises(IllegalTransition):
        move("container", life.containers["c1"], "restart due")  # a stopped container has no next attempt


def definition(**changes: object) -> ContainerDefinition:
    base = ContainerDefinition(id="c1", bundle="/b", labels={}, init=False, restart="always", restarts=2, streak=1,
                               next_attempt=None, stopped=False, last_status=0)
    return ContainerDefinition(**{**base, **changes})  # type: ignore[typeddict-item]


def test_definitions_without_state_come_back_as_their_policy_says() -> None:
    clock = Clock()
    life = life_with(clock)
    effects = life.restored_definition(definition(), RestartPolicy.parse("always"))
    assert restarts(effects) == [(3, None)] and life.containers["c1"].phase is ContainerPhase.RESTARTING
    life.restored_definition(definition(id="c2", restart="on-failure"), RestartPolicy.parse("on-failure"))
    assert life.containers["c2"].phase is ContainerPhase.STOPPED
    life.restored_definition(definition(id="c3", stopped=True), RestartPolicy.parse("always"))
    assert life.containers["c3"].phase is ContainerPhase.RESTARTING and not life.containers["c3"].stop_requested
    kept = life.restored_definition(definition(id="c5", stopped=True, restart="unless-stopped"),
                                    RestartPolicy.parse("unless-stopped"))
    assert kept == [] and life.containers["c5"].phase is ContainerPhase.STOPPED
    backing_off = life.restored_definition(definition(id="c4", next_attempt=clock.now + 5),
                                           RestartPolicy.parse("always"))
    assert backing_off == [ArmAlarm(5.0)] and life.containers["c4"].next_attempt == clock.now + 5


def test_a_forced_removal_kills_and_ends_the_container_whatever_its_policy() -> None:
    life = life_with(Clock())
    start(life, "always")
    token = life.containers["c1"].init_token
    life.started(token, {"system_pid": 100, "shim_pid": 101, "pidfd": -1, "args": ["x"]})
    (kill,) = life.force_remove("c1", (b"remover", "r2")) or []
    assert isinstance(kill, Submit) and kill.task.job == "kill_all"  # type: ignore[union-attr]
    assert kill.task.params == {"signal": 9}  # type: ignore[union-attr]
    with pytest.raises(ApiError) as twice:
        life.force_remove("c1", (b"other", "r3"))
    assert twice.value.code == ErrorCode.CONFLICT
    effects = life.exited(token, 137)
    (exit_,) = [e for e in effects if isinstance(e, Emit)]
    assert exit_.event == "exit" and exit_.answer == ((b"remover", "r2"), {}), "answered once the exit is on record"
    assert ForgetDefinition("c1") in effects and restarts(effects) == []
    assert "c1" not in life.containers
    life.shim_gone(token)
    life.recorded(token)
    start(life, "on-failure")  # the id is free again
    run_and_exit(life, 0)
    assert life.containers["c1"].phase is ContainerPhase.STOPPED
    assert life.force_remove("c1", (b"remover", "r4")) is None, "nothing to kill: a plain removal does it"
    with pytest.raises(ApiError) as unknown:
        life.force_remove("ghost", (b"remover", "r5"))
    assert unknown.value.code == ErrorCode.NOT_FOUND


def test_an_oom_during_the_start_is_published_after_start_container() -> None:
    """The OOM watch is armed before `runc start`: a process that is killed at once can be
    reported before the worker's start is done; subscribers still see start-container first."""
    life = life_with(Clock())
    start(life, "no")
    token = life.containers["c1"].init_token
    assert life.oom("c1", token) == []
    effects = life.started(token, {"system_pid": 100, "shim_pid": 101, "pidfd": -1, "args": ["x"]})
    assert [e.event for e in effects if isinstance(e, Emit)] == ["start-container", "oom"]
    assert life.oom("c1", token) == [Emit("oom", "c1")], "once it runs, at once"
