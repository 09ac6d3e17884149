"""actorctl for scripts: `containers wait`, --json everywhere, filters, logs by time and
line, --attach exit codes, shell completion, an example in every --help."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest

from actorctl.cli import cli
from tests.harness import ACTORCTL, Daemon, wait_until
from tests.oci_images import IMAGE_CONFIG, busybox_layer, docker_archive

READ_THEN_EXIT_3 = ("sh", "-c", "read line; exit 3")
"""A container that runs until its stdin is closed, then exits 3."""


def commands(group: click.Group = cli, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command of actorctl (groups too), with its words."""
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))


def json_values(text: str) -> list[Any]:
    """One JSON document, or one per line."""
    try:
        return [json.loads(text)]
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def start_reader(daemon: Daemon, bundles: Callable[..., Path], container_id: str, **params: Any) -> None:
    daemon.start_container(container_id, bundles(*READ_THEN_EXIT_3), stdin=True, **params)


def end_reader(daemon: Daemon, container_id: str) -> None:
    daemon.call("containers.close_stdin", {"id": container_id})


def test_wait_for_running_exited_and_unknown_containers(daemon: Daemon, bundles: Callable[..., Path]) -> None:
    start_reader(daemon, bundles, "w1")
    start_reader(daemon, bundles, "w2")
    waiter = subprocess.Popen([ACTORCTL, "--address", daemon.address, "containers", "wait", "--json", "w1", "w2"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        end_reader(daemon, "w2")
        daemon.call("containers.signal", {"id": "w1", "signal": 9})
        out, err = waiter.communicate(timeout=30)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert waiter.returncode == 137, err
    assert [json.loads(line) for line in out.splitlines()] == [{"id": "w1", "status": 137}, {"id": "w2", "status": 3}]

    done = daemon.ctl("containers", "wait", "w2")  # gone: from the event log
    assert (done.returncode, done.stdout) == (3, "3\n"), done.stderr
    done = daemon.ctl("containers", "wait", "nosuch")
    assert done.returncode == 1 and "no such container 'nosuch'" in done.stderr and done.stdout == ""
    done = daemon.ctl("containers", "wait", "w2", "nosuch")
    assert done.returncode == 1 and "nosuch" in done.stderr
    start_reader(daemon, bundles, "w3")
    done = daemon.ctl("containers", "wait", "w3", "nosuch")  # at once: not after w3's exit
    assert (done.returncode, done.stdout) == (1, "") and "no such container 'nosuch'" in done.stderr


def test_wait_for_a_stopped_restart_policy_container_gives_its_last_status(
        daemon: Daemon, bundles: Callable[..., Path]) -> None:
    daemon.start_container("once", bundles("sh", "-c", "exit 2"), restart="on-failure:1")
    wait_until(lambda: daemon.call("containers.state", {"id": "once"})["status"] == "stopped", 20)
    done = daemon.ctl("containers", "wait", "once")
    assert (done.returncode, done.stdout) == (2, "2\n"), done.stderr
    assert daemon.ctl("containers", "rm", "once").returncode == 0


def test_wait_outlives_a_daemon_restart(daemon: Daemon, bundles: Callable[..., Path]) -> None:
    """The exit happens while actord is down; the restarted daemon records it and the wait sees it."""
    start_reader(daemon, bundles, "early")
    end_reader(daemon, "early")
    daemon.wait_events(lambda events: any(e["type"] == "exit" for e in events), container_id="early")
    start_reader(daemon, bundles, "late")
    init_pid = daemon.call("containers.state", {"id": "late"})["processes"][0]["system_pid"]
    waiter = subprocess.Popen([ACTORCTL, "--address", daemon.address, "containers", "wait", "early", "late"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert waiter.stdout is not None
        assert waiter.stdout.readline() == "3\n"  # `early`: the wait has begun
        assert daemon.stop() == 0
        os.kill(init_pid, 9)
        daemon.start()
        out, err = waiter.communicate(timeout=60)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert (waiter.returncode, out) == (3, "137\n"), err


def test_every_command_that_prints_has_json_and_it_parses(daemon: Daemon, bundles: Callable[..., Path],
                                                          tmp_path: Path) -> None:
    silent = {("containers", "kill"), ("containers", "rm"), ("containers", "pause"), ("containers", "resume"),
              ("containers", "update"), ("checkpoints", "delete"), ("images", "rm"), ("completion",)}
    """Commands that print nothing on success (completion prints a shell script)."""
    bundle = bundles("sh", "-c", "echo hello; echo oops >&2; sleep 100000")
    runs: dict[tuple[str, ...], list[str]] = {
        ("version",): [],
        ("health",): [],
        ("bundle", "create"): [str(tmp_path / "b")],
        ("containers", "start"): ["j1", str(bundle)],
        ("containers", "exec"): ["j1", "--", "true"],
        ("containers", "list"): [],
        ("containers", "state"): ["j1"],
        ("containers", "stats"): ["j1"],
        ("containers", "logs"): ["j1"],
        ("checkpoints", "list"): ["j1"],
        ("events",): ["--after", "0", "--no-follow"],
        ("containers", "wait"): ["j1"],
        ("checkpoints", "create"): [],  # needs CRIU, which this machine lacks: only its --json is checked
        ("images", "import"): ["--name", "bb", str(docker_archive(tmp_path / "bb.tar", "bb:1", IMAGE_CONFIG,
                                                                  [busybox_layer()]))],
        ("images", "list"): [],
        ("images", "inspect"): ["bb:1"],
        ("images", "prune"): [],
        ("images", "pull"): [],  # needs a registry: tests/test_pulls.py runs its --json; only the option here
        ("pods", "list"): [],
        ("pods", "inspect"): [],  # needs a pod run through the CRI: tests/test_pods.py runs its --json
    }
    with_json = {path for path, command in commands() if not isinstance(command, click.Group)
                 and any("--json" in param.opts for param in command.params)}
    leaves = {path for path, command in commands() if not isinstance(command, click.Group)}
    assert leaves - with_json == silent
    assert with_json == set(runs)
    for path, args in runs.items():
        if path in (("checkpoints", "create"), ("images", "pull"), ("pods", "inspect")):
            continue
        if path == ("containers", "wait"):
            daemon.call("containers.signal", {"id": "j1", "signal": 9})
        done = daemon.ctl(*path, "--json", *args)
        assert done.returncode in (0, 137), (path, done.stderr)
        values = json_values(done.stdout)
        assert values, path
        if path == ("containers", "logs"):
            assert {(v["stream"], v["data"]) for v in values} == {("stdout", "hello\n"), ("stderr", "oops\n")}
    assert json_values(daemon.ctl("version", "--json").stdout)[0]["daemon"]["pid"] == daemon.process.pid  # type: ignore[union-attr]


def test_list_and_events_filters(daemon: Daemon, sleeper: Path) -> None:
    daemon.start_container("a", sleeper, labels={"tier": "web"})
    daemon.start_container("b", sleeper, labels={"tier": "db", "zone": "1"})
    daemon.start_container("c", sleeper)
    daemon.call("containers.pause", {"id": "b"})

    def ids(*args: str) -> list[str]:
        done = daemon.ctl("containers", "list", "--quiet", *args)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert ids() == ["a", "b", "c"]
    assert ids("--filter", "label=tier") == ["a", "b"]
    assert ids("--filter", "label=tier=web") == ["a"]
    assert ids("--filter", "label=tier", "--filter", "label=zone=1") == ["b"]
    assert ids("--filter", "status=paused") == ["b"]
    assert ids("--filter", "status=running", "--filter", "label=tier") == ["a"]
    listed = json.loads(daemon.ctl("containers", "list", "--json", "--filter", "label=zone").stdout)
    assert [c["id"] for c in listed] == ["b"]
    for bad in ("colour=red", "status=asleep", "label="):
        done = daemon.ctl("containers", "list", "--filter", bad)
        assert done.returncode == 2 and "--filter" in done.stderr, (bad, done.stderr)

    done = daemon.ctl("events", "--after", "0", "--no-follow", "--json", "--type", "start-container",
                      "--filter", "label=tier")
    assert [(e["type"], e["id"]) for e in json_values(done.stdout)] == [("start-container", "a"),
                                                                        ("start-container", "b")]
    done = daemon.ctl("events", "--after", "0", "--no-follow", "--json", "--type", "pause", "--type", "exit")
    assert [(e["type"], e["id"]) for e in json_values(done.stdout)] == [("pause", "b")]
    done = daemon.ctl("events", "--no-follow", "--type", "nosuch")
    assert done.returncode == 2 and "--type" in done.stderr
    assert daemon.call("events.replay", {"after": 0, "type": ["oom"]})["events"] == []
    daemon.call("containers.resume", {"id": "b"})
    for name in "abc":
        daemon.call("containers.signal", {"id": name, "signal": 9})


def test_logs_tail_since_until_timestamps(daemon: Daemon, bundles: Callable[..., Path]) -> None:
    daemon.start_container("echo", bundles("sh", "-c", "while read line; do echo $line; done"), stdin=True)

    def records(*args: str) -> list[dict[str, Any]]:
        done = daemon.ctl("containers", "logs", "--json", *args, "echo")
        assert done.returncode == 0, done.stderr
        return json_values(done.stdout) if done.stdout else []

    daemon.call("containers.stdin", {"id": "echo", "data": b"one\ntwo\n"})
    wait_until(lambda: len(records()) == 2)
    first_time = records()[-1]["time"]
    wait_until(lambda: __import__("time").time() > first_time + 0.01)
    daemon.call("containers.stdin", {"id": "echo", "data": b"three\n"})
    wait_until(lambda: len(records()) == 3)
    last_time = records()[-1]["time"]
    assert [r["data"] for r in records()] == ["one\n", "two\n", "three\n"]

    def text(*args: str) -> str:
        done = daemon.ctl("containers", "logs", *args, "echo")
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert text("--tail", "2") == "two\nthree\n"
    assert text("--tail", "0") == ""
    assert text("--tail", "10") == "one\ntwo\nthree\n"
    middle = str((first_time + last_time) / 2)
    assert text("--since", middle) == "three\n"
    assert text("--until", middle) == "one\ntwo\n"
    assert text("--since", "1h", "--tail", "1") == "three\n"
    stamped = text("--timestamps").splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["one", "two", "three"]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", line.split(" ")[0]) for line in stamped)
    done = daemon.ctl("containers", "logs", "--since", "yesterday-ish", "echo")
    assert done.returncode == 2 and "--since" in done.stderr
    follower = subprocess.Popen([ACTORCTL, "--address", daemon.address, "containers", "logs", "--follow",
                                 "--tail", "1", "echo"], stdout=subprocess.PIPE, text=True)
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline() == "three\n"
        daemon.call("containers.stdin", {"id": "echo", "data": b"four\n"})
        assert follower.stdout.readline() == "four\n"
        daemon.call("containers.close_stdin", {"id": "echo"})
        assert follower.wait(30) == 0
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()


@pytest.mark.parametrize(("args", "code"), [
    (("sh", "-c", "exit 3"), 3),
    (("sh", "-c", "exit 1"), 1),
    (("/nonexistent",), 127),
    (("nosuchcommand",), 127),
    (("/etc/passwd",), 126),
])
def test_start_attach_exit_codes(daemon: Daemon, bundles: Callable[..., Path], args: tuple[str, ...],
                                 code: int) -> None:
    done = daemon.ctl("containers", "start", "--attach", "x", str(bundles(*args)))
    assert done.returncode == code, done.stderr
    if code >= 126:
        assert "unable to start container process" in done.stderr
        daemon.wait_events(lambda events: True)


def test_attach_failures_of_actorctl_and_daemon_exit_125(daemon: Daemon, sleeper: Path,
                                                          bundles: Callable[..., Path]) -> None:
    daemon.start_container("up", sleeper)
    done = daemon.ctl("containers", "start", "--attach", "up", str(sleeper))  # refused: the id is taken
    assert done.returncode == 125 and "up" in done.stderr
    done = daemon.ctl("containers", "start", "--attach", "--label", "novalue", "y", str(sleeper))
    assert done.returncode == 125 and "--label" in done.stderr
    assert daemon.ctl("containers", "start", "--label", "novalue", "y", str(sleeper)).returncode == 2
    done = daemon.ctl("containers", "start", "--attach", "--no-such-flag", "y", str(sleeper))
    assert done.returncode == 125
    unreachable = subprocess.run([ACTORCTL, "--address", "ipc:///nonexistent/actord.sock", "containers", "start",
                                  "--attach", "y", str(sleeper)], capture_output=True, text=True, timeout=30)
    assert unreachable.returncode == 125 and "cannot reach" in unreachable.stderr
    assert daemon.ctl("containers", "exec", "--attach", "up", "sh", "-c", "exit 4").returncode == 4
    assert daemon.ctl("containers", "exec", "--attach", "up", "/nonexistent").returncode == 127
    assert daemon.ctl("containers", "exec", "--attach", "up", "/etc/passwd").returncode == 126
    assert daemon.ctl("containers", "exec", "--attach", "nosuch", "true").returncode == 125
    assert daemon.ctl("containers", "exec", "nosuch", "true").returncode == 1
    daemon.call("containers.signal", {"id": "up", "signal": 9})


def test_completion_scripts_load_and_complete_live_ids(daemon: Daemon, sleeper: Path) -> None:
    bash_script = daemon.ctl("completion", "bash").stdout
    assert subprocess.run(["bash", "-n"], input=bash_script, text=True).returncode == 0
    loaded = subprocess.run(["bash", "-c", 'source /dev/stdin; complete -p actorctl'], input=bash_script,
                            capture_output=True, text=True)
    assert loaded.returncode == 0 and "_actorctl_completion" in loaded.stdout, loaded.stderr
    for shell in ("zsh", "fish"):
        script = daemon.ctl("completion", shell)
        assert script.returncode == 0 and "_ACTORCTL_COMPLETE" in script.stdout
    if shutil.which("zsh"):
        assert subprocess.run(["zsh", "-n"], input=daemon.ctl("completion", "zsh").stdout, text=True).returncode == 0
    assert daemon.ctl("completion", "tcsh").returncode == 2

    daemon.start_container("web1", sleeper)

    def complete(words: str) -> list[str]:
        env = dict(os.environ, ACTORD_ADDRESS=daemon.address, COMP_WORDS=words,
                   COMP_CWORD=str(len(words.split(" ")) - 1), _ACTORCTL_COMPLETE="bash_complete")
        done = subprocess.run([ACTORCTL], env=env, capture_output=True, text=True, timeout=30)
        return [line.partition(",")[2] for line in done.stdout.splitlines()]

    assert "wait" in complete("actorctl containers w")
    assert "--tail" in complete("actorctl containers logs --t")
    assert complete("actorctl containers state w") == ["web1"]
    assert complete("actorctl containers wait web1 ") == ["web1"]
    daemon.call("containers.signal", {"id": "web1", "signal": 9})


def test_every_help_ends_with_an_example() -> None:
    for path, command in [((), cli), *commands()]:
        paragraphs = [part for part in (command.help or "").strip().split("\n\n") if part.strip()]
        assert paragraphs and paragraphs[-1].lstrip("\b\n ").startswith("Example"), f"actorctl {' '.join(path)}"
