"""actord's config file with a real actord: precedence, refusals, and the printed default config."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.command import start as start_command
from actors.config import config_keys
from tests.harness import ACTORD, Daemon, checked_daemon, free_port, new_state_dir, remove_state_dir


@pytest.fixture
def state_dir() -> Iterator[Path]:
    path = new_state_dir()
    try:
        yield path
    finally:
        remove_state_dir(path)


def actord(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ACTORD, *args], capture_output=True, text=True, timeout=30)


def test_a_flag_wins_over_the_file_and_the_file_over_the_defaults(state_dir: Path, tmp_path: Path,
                                                                  request: pytest.FixtureRequest) -> None:
    config = tmp_path / "config.toml"
    config.write_text('workers = 3\nretain_count = 42\nlog_level = "debug"\nlog_format = "text"\n')
    with checked_daemon(Daemon(state_dir, ["--config", str(config), "--workers", "5", "--log-format", "json"]),
                        request) as daemon:
        settings = daemon.call("version")["settings"]
        assert settings["config"] == str(config)
        assert settings["workers"] == 5  # the flag's
        assert settings["retain_count"] == 42  # the file's
        assert settings["events_hwm"] == 10000  # the built-in default
        assert (settings["log_level"], settings["log_format"]) == ("debug", "json")
        first = daemon.log().splitlines()[0]
        assert first.startswith("{") and '"level": "debug"' in daemon.log()  # the flag's format, the file's level


def test_no_config_file_leaves_the_built_in_defaults(daemon: Daemon) -> None:
    settings = daemon.call("version")["settings"]
    assert settings["config"] == "/dev/null"  # the harness's: no machine's config reaches a test
    assert (settings["workers"], settings["retain_count"], settings["log_level"]) == (10, 500, "info")


BAD_CONFIGS = [
    ("wrokers = 3\n", ["unknown key 'wrokers' (did you mean 'workers'?)"]),
    ("workers = 0\n", ["workers: 0 is not in the range 1<=x<=256"]),
    ('workers = "many"\n', ["workers: 'many' is not a valid integer range"]),
    ("workers = 2.5\n", ["workers: expected an integer, not 2.5"]),
    ("debug = 1\n", ["debug: expected a boolean (true or false), not 1"]),
    ("runtime = { path = 'runc' }\n", ["runtime: expected a string, not a table"]),
    ('log_format = "xml"\n', ["log_format: 'xml' is not one of 'text', 'json'"]),
    ("workers = \n", ["not valid TOML", "line 1"]),
    ("[daemon]\nworkers = 3\n", ["unknown key 'daemon'"]),
]


@pytest.mark.parametrize(("content", "expected"), BAD_CONFIGS, ids=[text.split()[0] + str(n)
                                                                     for n, (text, _) in enumerate(BAD_CONFIGS)])
def test_a_bad_config_is_named_and_the_daemon_does_not_start(content: str, expected: list[str],
                                                             tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(content)
    state_dir = tmp_path / "state"
    done = actord("start", "--state-dir", str(state_dir), "--config", str(config))
    assert done.returncode == 1, done.stderr
    assert f"{config}: " in done.stderr
    for text in expected:
        assert text in done.stderr
    assert not state_dir.exists()  # refused before anything was made


def test_a_missing_config_file_given_explicitly_is_an_error(tmp_path: Path) -> None:
    done = actord("start", "--state-dir", str(tmp_path / "state"), "--config", str(tmp_path / "missing.toml"))
    assert done.returncode == 1
    assert f"{tmp_path / 'missing.toml'}: no such file" in done.stderr
    assert not (tmp_path / "state").exists()


UNTRUSTED_CONFIGS = [
    (0, 0o666, "writable by others (mode 0666)", "chmod go-w"),
    (0, 0o620, "writable by its group (mode 0620)", "chmod go-w"),
    (65534, 0o644, "owned by uid 65534, not by root", "chown root"),
]


@pytest.mark.parametrize(("owner", "mode", "problem", "fix"), UNTRUSTED_CONFIGS, ids=["others", "group", "owner"])
def test_a_config_file_others_could_write_is_refused_by_start_and_check(owner: int, mode: int, problem: str,
                                                                         fix: str, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('runtime = "/tmp/not-runc"\n')  # what a planted file would choose
    os.chown(config, owner, -1)
    config.chmod(mode)
    state_dir = tmp_path / "state"
    for done in (actord("start", "--state-dir", str(state_dir), "--config", str(config)),
                 actord("config", "check", str(config))):
        assert done.returncode == 1, done.stderr
        assert f"{config}: {problem}" in done.stderr and f"({fix} {config})" in done.stderr
        assert "runtime" not in done.stderr  # refused before its keys are looked at
    assert not state_dir.exists()  # refused before anything was made


def test_config_check_lists_every_problem(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('wrokers = 3\nretain_count = 0\ndebug = "yes"\nstate_dir = "/run/x"\n')
    done = actord("config", "check", str(config))
    assert done.returncode == 1
    problems = [line.removeprefix("Error: ") for line in done.stderr.splitlines()]
    assert problems == [
        f"{config}: unknown key 'wrokers' (did you mean 'workers'?)",
        f"{config}: retain_count: 0 is not in the range 1<=x<=10000000",
        f'{config}: debug: expected a boolean (true or false), not "yes"',
    ]
    assert actord("config", "check", str(tmp_path / "missing.toml")).returncode == 1


def test_the_default_config_passes_the_check_and_changes_nothing_but_its_suggestions(state_dir: Path, tmp_path: Path,
                                                                 request: pytest.FixtureRequest) -> None:
    printed = actord("config", "default")
    assert printed.returncode == 0
    config = tmp_path / "config.toml"
    config.write_text(printed.stdout)
    checked = actord("config", "check", str(config))
    assert (checked.returncode, checked.stdout) == (0, f"{config}: ok\n")
    port = free_port()  # the suggested metrics address, on a port no other test or daemon holds
    text = config.read_text()
    assert '\nmetrics_address = "127.0.0.1:9338"\n' in text
    config.write_text(text.replace('metrics_address = "127.0.0.1:9338"', f'metrics_address = "127.0.0.1:{port}"'))
    with checked_daemon(Daemon(state_dir, ["--config", str(config)]), request) as daemon:
        settings = daemon.call("version")["settings"]
    ctx = start_command.make_context("start", ["--state-dir", str(state_dir), "--config", "/dev/null"])
    defaults = {key: ctx.params[key] for key in config_keys(start_command)}
    assert {key: settings[key] for key in defaults} == {**defaults, "state_dir": str(state_dir),
                                                         "root": str(daemon.root_dir),
                                                         "metrics_address": f"127.0.0.1:{port}"}
