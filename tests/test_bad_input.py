"""Bad input gets a clear error and a non-zero exit; nothing is created and the daemon keeps serving."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from actorctl.bundle import create_bundle
from actorctl.client import DaemonError
from tests.harness import Daemon, new_state_dir, remove_state_dir, wait_until


def nothing_created(daemon: Daemon) -> None:
    assert daemon.call("containers.list") == []
    assert list((daemon.state_dir / "containers").iterdir()) == []
    assert daemon.runc_containers() == []
    assert daemon.live_shims() == []


def test_duplicate_id_is_refused_and_the_original_is_untouched(daemon: Daemon, sleeper: Path) -> None:
    first = daemon.start_container("dup", sleeper)
    again = daemon.ctl("containers", "start", "dup", str(sleeper))
    assert again.returncode == 1
    assert "already exists" in again.stderr
    [container] = daemon.call("containers.list")
    assert container == first
    assert daemon.events() and all(e["type"] == "start-container" for e in daemon.events())


@pytest.mark.parametrize("bad_id", ["..", "a/b", "", "x" * 300, "café", "-lead", ".hidden", "a b", "a\nb"])
def test_invalid_ids_are_refused_by_the_daemon(daemon: Daemon, sleeper: Path, bad_id: str) -> None:
    with pytest.raises(DaemonError) as refused:
        daemon.call("containers.start", {"id": bad_id, "bundle": str(sleeper)})
    assert refused.value.code == "invalid_params"
    nothing_created(daemon)


@pytest.mark.parametrize("bad_id", ["..", "a/b", "x" * 300, "café"])
def test_invalid_ids_are_refused_by_actorctl(daemon: Daemon, sleeper: Path, bad_id: str) -> None:
    done = daemon.ctl("containers", "start", bad_id, str(sleeper))
    assert done.returncode == 2
    assert "ids are 1 to 64" in done.stderr
    nothing_created(daemon)


def test_missing_bundle_is_named(daemon: Daemon, tmp_path: Path) -> None:
    done = daemon.ctl("containers", "start", "nob", str(tmp_path / "nowhere"))
    assert done.returncode == 1
    assert str(tmp_path / "nowhere") in done.stderr and "does not exist" in done.stderr
    nothing_created(daemon)
    kept = daemon.ctl("containers", "start", "--restart", "always", "nob", str(tmp_path / "nowhere"))
    assert kept.returncode == 1 and "does not exist" in kept.stderr  # found by the worker, the definition forgotten
    nothing_created(daemon)
    assert list((daemon.root_dir / "containers").iterdir()) == []


def test_missing_config_json_is_named(daemon: Daemon, tmp_path: Path) -> None:
    done = daemon.ctl("containers", "start", "nocfg", str(tmp_path))
    assert done.returncode == 1
    assert "config.json" in done.stderr and str(tmp_path) in done.stderr
    nothing_created(daemon)


def test_damaged_config_json_is_refused(daemon: Daemon, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    done = daemon.ctl("containers", "start", "badcfg", str(tmp_path))
    assert done.returncode == 1
    assert "not valid JSON" in done.stderr
    nothing_created(daemon)


def test_runtime_failure_reports_runcs_reason_and_leaves_nothing(daemon: Daemon, bundles: Callable[..., Path]) -> None:
    missing = bundles("/no/such/program")
    done = daemon.ctl("containers", "start", "broken", str(missing))
    assert done.returncode == 1
    assert "/no/such/program" in done.stderr and "no such file or directory" in done.stderr.lower()
    nothing_created(daemon)
    assert daemon.events() == []
    # the daemon still serves, and the id is free
    sleeper = bundles("sleep", "100000")
    daemon.start_container("broken", sleeper)
    assert [c["id"] for c in daemon.call("containers.list")] == ["broken"]


def test_a_start_that_passes_its_deadline_is_undone(bundles: Callable[..., Path], tmp_path: Path) -> None:
    """A hook that hangs makes runc create overrun --start-timeout: the start fails as a timeout
    (the hook never ends, so only the deadline can end the start; actorctl's own 10 s would be exit 4)."""
    bundle = create_bundle(tmp_path / "slow", ["sleep", "1000"])
    config = json.loads((bundle / "config.json").read_text())
    config["hooks"] = {"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "100000"]}]}
    (bundle / "config.json").write_text(json.dumps(config))
    state_dir = new_state_dir()
    daemon = Daemon(state_dir, extra_args=["--start-timeout", "1.5"]).start()
    try:
        container_id = f"slow-{uuid.uuid4().hex[:8]}"
        done = daemon.ctl("containers", "start", container_id, str(bundle))
        assert done.returncode == 1
        assert "not created within 1.5s" in done.stderr
        nothing_created(daemon)
        left = [d for d, _, _ in os.walk("/sys/fs/cgroup") if os.path.basename(d) == container_id]
        assert left == [], "the cgroups runc made for the killed create are left"
        assert daemon.call("version")["protocol"] == 1
    finally:
        daemon.kill_everything()
        assert daemon.stop() == 0
        remove_state_dir(state_dir)


def test_unknown_container_is_not_found(daemon: Daemon) -> None:
    for args in (["containers", "state", "ghost"], ["containers", "kill", "ghost"]):
        done = daemon.ctl(*args)
        assert done.returncode == 1
        assert "container ghost not found" in done.stderr


def test_unknown_process_and_bad_signal(daemon: Daemon, sleeper: Path) -> None:
    daemon.start_container("sig", sleeper)
    done = daemon.ctl("containers", "kill", "--pid", "nope", "sig")
    assert done.returncode == 1 and "process nope of container sig not found" in done.stderr
    done = daemon.ctl("containers", "kill", "--signal", "NOTASIGNAL", "sig")
    assert done.returncode == 2 and "unknown signal" in done.stderr
    with pytest.raises(DaemonError) as refused:
        daemon.call("containers.signal", {"id": "sig", "signal": 0})
    assert refused.value.code == "invalid_params"
    with pytest.raises(DaemonError):
        daemon.call("containers.signal", {"id": "sig", "signal": "KILL"})
    assert daemon.call("containers.list")[0]["status"] == "running"


def test_unreachable_daemon_exits_3_within_the_timeout(tmp_path: Path) -> None:
    import subprocess

    from tests.harness import ACTORCTL

    for address in (f"ipc://{tmp_path}/none.sock", "tcp://127.0.0.1:9"):
        done = subprocess.run([ACTORCTL, "--address", address, "--timeout", "1", "containers", "list"],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 3, done.stderr
        assert "cannot reach actord" in done.stderr


def test_kill_all_signals_every_process(daemon: Daemon, sleeper: Path) -> None:
    daemon.start_container("every", sleeper)
    done = daemon.ctl("containers", "kill", "--all", "--signal", "KILL", "every")
    assert done.returncode == 0, done.stderr
    events = daemon.wait_events(lambda ev: any(e["type"] == "exit" for e in ev))
    assert events[-1]["status"] == 137
    done = daemon.ctl("containers", "kill", "--all", "--pid", "init", "every")
    assert done.returncode == 2


def test_every_stdin_chunk_the_api_takes_reaches_the_process(daemon: Daemon, bundles: Callable[..., Path]) -> None:
    from actors.wire.codec import MAX_STDIN_CHUNK

    daemon.start_container("cat", bundles("sh", "-c", "wc -c; exit 0"), stdin=True)
    assert daemon.call("containers.stdin", {"id": "cat", "data": b"x" * MAX_STDIN_CHUNK}, timeout=10) == {}
    with pytest.raises(DaemonError) as refused:
        daemon.call("containers.stdin", {"id": "cat", "data": b"x" * (MAX_STDIN_CHUNK + 1)})
    assert refused.value.code == "invalid_params" and str(MAX_STDIN_CHUNK) in refused.value.message
    assert daemon.call("containers.close_stdin", {"id": "cat"}) == {}
    daemon.wait_events(lambda ev: any(e["type"] == "exit" for e in ev))
    assert daemon.ctl("containers", "logs", "cat").stdout.strip() == str(MAX_STDIN_CHUNK)


def test_damaged_output_still_gets_an_answer(daemon: Daemon, bundles: Callable[..., Path]) -> None:
    daemon.start_container("talk", bundles("sh", "-c", "echo hello; sleep 1000"))
    [output] = list((daemon.state_dir / "output").iterdir())
    wait_until(lambda: list(output.glob("output.*.log")) and daemon.ctl("containers", "logs", "talk").stdout,
               message="output")
    with open(next(output.glob("output.*.log")), "ab") as log:
        log.write(b"\xc1\xc1\xc1")  # 0xc1 is never valid msgpack
    with pytest.raises(DaemonError) as failed:
        daemon.call("containers.logs", {"id": "talk"}, timeout=5)
    assert failed.value.code == "internal" and "cannot read the logs" in failed.value.message
    assert daemon.call("containers.list")[0]["id"] == "talk"
