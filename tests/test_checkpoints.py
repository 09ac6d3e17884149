"""Checkpoints: real runc up to CRIU's failure on this kernel, and the argument path through a
recording stand-in runtime (CRIU cannot run here; tests/recording_runtime.py says what it fakes)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Daemon, new_state_dir, pid_alive, remove_state_dir


def test_a_failing_criu_is_reported_and_the_container_keeps_running(daemon: Daemon, tmp_path: Path) -> None:
    from actorctl.bundle import create_bundle

    bundle = create_bundle(tmp_path / "b", ["sleep", "100000"])
    started = daemon.start_container("cp", bundle)
    init = started["processes"][0]
    done = daemon.ctl("checkpoints", "create", "cp", "first")
    assert done.returncode == 1
    assert "checkpoint failed" in done.stderr and "criu" in done.stderr.lower()
    [container] = daemon.call("containers.list")
    assert container["status"] == "running" and pid_alive(init["system_pid"])
    assert container["processes"][0]["system_pid"] == init["system_pid"]
    assert not (bundle / "checkpoints" / "first").exists()
    assert daemon.ctl("checkpoints", "list", "cp").stdout == ""
    missing = daemon.ctl("containers", "start", "--checkpoint", "nope", "cp2", str(bundle))
    assert missing.returncode == 1 and "checkpoint nope not found" in missing.stderr


@pytest.fixture
def recording_daemon(tmp_path: Path) -> Iterator[tuple[Daemon, Path]]:
    record = tmp_path / "argv.jsonl"
    wrapper = tmp_path / "runtime"
    wrapper.write_text(f"#!/bin/sh\nRECORD_FILE={record} exec {sys.executable} "
                       f"{Path(__file__).parent / 'recording_runtime.py'} \"$@\"\n")
    wrapper.chmod(0o755)
    state_dir = new_state_dir()
    daemon = Daemon(state_dir, extra_args=["--runtime", str(wrapper)]).start()
    try:
        yield daemon, record
    finally:
        daemon.kill_everything()
        assert daemon.stop() == 0
        remove_state_dir(state_dir)


def calls(record: Path, command: str) -> list[list[str]]:
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    return [argv for argv in lines if command in argv]


def test_checkpoint_and_restore_pass_their_arguments(recording_daemon: tuple[Daemon, Path],
                                                     tmp_path: Path) -> None:
    from actorctl.bundle import create_bundle

    daemon, record = recording_daemon
    bundle = create_bundle(tmp_path / "b", ["sleep", "100000"])
    daemon.start_container("orig", bundle)
    done = daemon.ctl("checkpoints", "create", "--tcp", "--shell", "orig", "cp1")
    assert done.returncode == 0, done.stderr
    [argv] = calls(record, "checkpoint")
    root = str(daemon.state_dir / "runc")
    image = str(bundle / "checkpoints" / "cp1")
    assert argv[:2] == ["--root", root], "runtime options go before the subcommand"
    assert argv[2] == "checkpoint"
    assert argv[argv.index("--image-path") + 1] == image
    work = str(daemon.state_dir / "criu") + "/"
    assert argv[argv.index("--work-path") + 1].startswith(work), "CRIU works in the state dir"
    assert {"--tcp-established", "--shell-job", "--leave-running"} <= set(argv)
    assert "--ext-unix-sk" not in argv and argv[-1] == "orig"

    listed = json.loads(daemon.ctl("checkpoints", "list", "--json", "orig").stdout)
    assert [(c["name"], c["tcp"], c["shell"], c["exit"]) for c in listed] == [("cp1", True, True, False)]
    assert daemon.call("containers.state", {"id": "orig"})["status"] == "running"

    restored = daemon.ctl("containers", "start", "--checkpoint", "cp1", "copy", str(bundle))
    assert restored.returncode == 0, restored.stderr
    [argv] = calls(record, "restore")
    assert argv[argv.index("--image-path") + 1] == image
    assert argv[argv.index("--work-path") + 1].startswith(work)
    assert {"-d", "--tcp-established", "--shell-job"} <= set(argv) and argv[-1] == "copy"
    assert argv[argv.index("--bundle") + 1] == str(daemon.state_dir / "containers" / "copy"), \
        "runc runs the config copied at start"
    assert not (daemon.state_dir / "criu").exists() or not list((daemon.state_dir / "criu").iterdir())
    assert not [a for a in calls(record, "start") if a[-1] == "copy" and "restore" not in a], \
        "a restored container is not started again"
    assert sorted(c["id"] for c in daemon.call("containers.list")) == ["copy", "orig"]

    done = daemon.ctl("checkpoints", "create", "--exit", "orig", "cp2")
    assert done.returncode == 0, done.stderr
    assert "--leave-running" not in calls(record, "checkpoint")[-1]
    assert daemon.ctl("checkpoints", "delete", "orig", "cp1").returncode == 0
    assert not (bundle / "checkpoints" / "cp1").exists()
    gone = daemon.ctl("checkpoints", "delete", "orig", "cp1")
    assert gone.returncode == 1 and "not found" in gone.stderr
