"""The config file's logic without a daemon: keys from click options, checking, the default config."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from actors.command import start
from actors.config import (
    SUGGESTED,
    ConfigError,
    ConfiguredCommand,
    check_settings,
    config_commands,
    config_keys,
    default_config,
    trust_problem,
)


def toy_command(seen: dict[str, Any]) -> click.Command:
    """A command as another branch might grow `start`: new options get their keys unasked."""

    @click.command(cls=ConfiguredCommand)
    @click.option("--workers", default=10, type=click.IntRange(1, 256), help="Workers.")
    @click.option("--shim-cgroup", default=None, metavar="PATH", help="Where shims go.")
    @click.option("--metrics-address", default=None, metavar="HOST:PORT", help="Serve /metrics here.")
    @click.option("--restart-delay", default=0.5, type=float, help="First back-off, seconds.")
    @click.option("--debug", is_flag=True, help="Debug.")
    @click.option("--label", multiple=True, help="Labels.")
    def toy(**options: Any) -> None:
        seen.update(options)

    return toy


def test_every_option_of_start_has_its_key_and_config_has_none() -> None:
    keys = config_keys(start)
    assert {"state_dir", "workers", "log_level", "log_format", "debug", "curve_secret_key"} <= set(keys)
    assert "config" not in keys and "help" not in keys
    assert len(keys) == len(start.params) - 1  # every option but --config
    assert set(config_keys(toy_command({}))) == {"workers", "shim_cgroup", "metrics_address", "restart_delay",
                                                 "debug", "label"}


def test_values_are_taken_as_the_flags_take_them() -> None:
    toy = toy_command({})
    assert check_settings(toy, {"workers": "7", "restart_delay": 2, "debug": True, "label": ["a", "b"]}, "f") == {
        "workers": 7, "restart_delay": 2.0, "debug": True, "label": ("a", "b")}


@pytest.mark.parametrize(("table", "problem"), [
    ({"wrokers": 3}, "f: unknown key 'wrokers' (did you mean 'workers'?)"),
    ({"nothing_like_it": 3}, "f: unknown key 'nothing_like_it'"),
    ({"workers": 300}, "f: workers: 300 is not in the range 1<=x<=256"),
    ({"workers": True}, "f: workers: expected an integer, not true"),
    ({"workers": 1.5}, "f: workers: expected an integer, not 1.5"),
    ({"workers": {"n": 1}}, "f: workers: expected an integer, not a table"),
    ({"shim_cgroup": ["a"]}, "f: shim_cgroup: expected a string, not an array"),
    ({"restart_delay": "soon"}, "f: restart_delay: 'soon' is not a valid float"),
    ({"debug": "yes"}, 'f: debug: expected a boolean (true or false), not "yes"'),
    ({"debug": 1}, "f: debug: expected a boolean (true or false), not 1"),
    ({"label": "a"}, 'f: label: expected an array (each a string), not "a"'),
    ({"config": "/x"}, "f: unknown key 'config'"),
])
def test_a_bad_value_is_refused_naming_file_and_key(table: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as refused:
        check_settings(toy_command({}), table, "f")
    assert refused.value.problems == [problem]


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as refused:
        check_settings(start, {"workers": 0, "log_level": "loud", "debug": "no", "state_dir": "/run/a"}, "/c.toml")
    assert refused.value.problems == [
        "/c.toml: workers: 0 is not in the range 1<=x<=256",
        "/c.toml: log_level: 'loud' is not one of 'debug', 'info', 'warning', 'error'",
        '/c.toml: debug: expected a boolean (true or false), not "no"',
    ]


def test_the_default_config_holds_every_key_and_gives_the_defaults() -> None:
    text = default_config(start)
    table = tomllib.loads(text)
    ctx = start.make_context("start", ["--config", "/dev/null"])
    defaults = {key: value for key, value in ctx.params.items() if value is not None}
    assert check_settings(start, table, "default") == {**defaults, **SUGGESTED}
    for key, option in config_keys(start).items():
        assert f"\n{key} = " in text or f"\n# {key} = " in text
        assert (option.help or "").split()[0] in text
    assert '\n# listen = "ADDRESS"\n' in text and '\n# pidfile = "FILE"\n' in text


def test_a_suggested_value_is_set_in_the_default_config_only() -> None:
    toy = toy_command({})
    plain = default_config(toy, {})
    assert '\n# metrics_address = "HOST:PORT"\n' in plain
    suggested = default_config(toy, {"metrics_address": "127.0.0.1:9338"})
    assert '\nmetrics_address = "127.0.0.1:9338"\n' in suggested
    assert "# (suggested here; built-in default: not set)" in suggested
    assert tomllib.loads(suggested)["metrics_address"] == "127.0.0.1:9338"
    assert tomllib.loads(plain) == {"workers": 10, "restart_delay": 0.5, "debug": False}
    assert '\n# label = ["TEXT"]\n' in plain


def test_flags_win_over_the_file_and_the_file_over_the_defaults(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('workers = 3\nrestart_delay = 9\nshim_cgroup = "/sys/fs/cgroup/shims"\n')
    seen: dict[str, Any] = {}
    done = CliRunner().invoke(toy_command(seen), ["--config", str(config), "--workers", "5"])
    assert done.exit_code == 0, done.output
    assert seen == {"workers": 5, "restart_delay": 9.0, "shim_cgroup": "/sys/fs/cgroup/shims",
                    "metrics_address": None, "debug": False, "label": ()}


def test_a_missing_file_is_an_error_only_when_named(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}
    done = CliRunner().invoke(toy_command(seen), ["--config", str(tmp_path / "none.toml")])
    assert done.exit_code == 1
    assert f"{tmp_path / 'none.toml'}: no such file" in done.output
    assert seen == {}


def test_bad_toml_is_named_with_its_line(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("workers = 3\n\nworkers = 4\n")
    done = CliRunner().invoke(toy_command({}), ["--config", str(config)])
    assert done.exit_code == 1
    assert f"{config}: not valid TOML: " in done.output and "line 3" in done.output


def test_config_check_says_ok_or_lists_the_problems(tmp_path: Path) -> None:
    toy = toy_command({})
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(default_config(toy))
    bad.write_text("workers = 0\ndebug = 3\n")
    runner = CliRunner()
    checked = runner.invoke(config_commands(toy), ["check", str(good)])
    assert (checked.exit_code, checked.output) == (0, f"{good}: ok\n")
    refused = runner.invoke(config_commands(toy), ["check", str(bad)])
    assert refused.exit_code == 1
    assert f"{bad}: workers: 0 is not in the range" in refused.output
    assert f"{bad}: debug: expected a boolean" in refused.output
    printed = runner.invoke(config_commands(toy), ["default"])
    assert printed.output == default_config(toy)


def test_a_file_its_group_or_others_may_write_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("workers = 3\n")
    config.chmod(0o646)
    seen: dict[str, Any] = {}
    done = CliRunner().invoke(toy_command(seen), ["--config", str(config)])
    assert done.exit_code == 1 and seen == {}
    assert f"{config}: writable by others (mode 0646)" in done.output and f"(chmod go-w {config})" in done.output
    config.chmod(0o644)
    assert CliRunner().invoke(toy_command(seen), ["--config", str(config)]).exit_code == 0
    assert seen["workers"] == 3


def test_the_null_device_and_our_own_files_are_trusted(tmp_path: Path) -> None:
    with open("/dev/null", "rb") as null:  # 0666, yet reads as nothing: --config /dev/null
        assert trust_problem(Path("/dev/null"), os.fstat(null.fileno())) is None
    mine = tmp_path / "c.toml"
    mine.write_text("")
    mine.chmod(0o600)
    assert trust_problem(mine, mine.stat()) is None  # root's, or the user's running actord
    other_device = os.stat_result((stat.S_IFCHR | 0o666, 0, 0, 1, 0, 0, 0, 0, 0, 0))  # no st_rdev: not the null device
    assert "writable by others" in (trust_problem(Path("/dev/x"), other_device) or "")
