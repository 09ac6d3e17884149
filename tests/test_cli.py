"""The actorctl CLI. Each command imports only what it needs, since each run is a new process
that pays for every module it imports: checked by the modules a fresh interpreter holds at
exit, not by timing (timings are in bench/bench.py). --help stays complete; lists are paged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from actorctl.bundle import create_bundle
from actorctl.cli import cli
from actorctl.client import Client
from actorctl.client import api as client_api
from tests.harness import Daemon

RUN_AND_LIST_MODULES = """
import sys
from actorctl.cli import main
sys.argv = ["actorctl", *sys.argv[1:]]
try:
    main()
finally:
    sys.stderr.write("\\nmodules: " + " ".join(sorted(sys.modules)) + "\\n")
"""

HEAVY = ("actorctl.attach", "actorctl.bundle", "actorctl.client.events", "actors.wire.events", "subprocess", "termios",
         "zmq.auth")
"""Modules that only some commands need: bundle creation, attaching, following events, CURVE."""


def run_fresh(*args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run `actorctl ARGS` in a new isolated interpreter; its result and the modules it imported."""
    done = subprocess.run([sys.executable, "-I", "-c", RUN_AND_LIST_MODULES, *args],
                          capture_output=True, text=True, timeout=30)
    listing = done.stderr.rpartition("\nmodules: ")[2]
    return done, set(listing.split())


def test_version_imports_only_the_client(daemon: Daemon) -> None:
    done, modules = run_fresh("--address", daemon.address, "version")
    assert done.returncode == 0, done.stderr
    assert daemon.process is not None and f"pid {daemon.process.pid}" in done.stdout
    assert {"zmq", "msgpack", "actorctl.client"} <= modules, "the module listing is not of this run"
    assert sorted(modules.intersection(HEAVY)) == []
    assert [name for name in modules if name.startswith("actorctl.commands")] == []


@pytest.mark.parametrize("args", [("--help",), ("containers", "start", "--help"), ("events", "--help"),
                                  ("bundle", "create", "--help")])
def test_help_needs_no_transport(args: tuple[str, ...]) -> None:
    done, modules = run_fresh(*args)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: actorctl")
    assert sorted(modules.intersection({"zmq", "msgpack", *HEAVY})) == []


def test_every_command_is_listed_and_resolves() -> None:
    """The lazily loaded groups show in --help with their own summaries, and each one's
    subcommands all answer --help."""
    ctx = click.Context(cli)
    names = cli.list_commands(ctx)
    assert names == ["bundle", "checkpoints", "completion", "containers", "events", "health", "images", "pods",
                     "version"]
    shown = CliRunner().invoke(cli, ["--help"], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    for name in names:
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name
        assert f"  {name}  " in shown.output and command.get_short_help_str(200) in shown.output
        subcommands = command.list_commands(ctx) if isinstance(command, click.Group) else []
        for path in [[name], *([name, sub] for sub in subcommands)]:
            result = CliRunner().invoke(cli, [*path, "--help"])
            assert result.exit_code == 0 and result.output.startswith(f"Usage: cli {' '.join(path)}"), result.output
    assert cli.get_command(ctx, "nosuch") is None


def test_containers_list_reads_every_page(daemon: Daemon, sleeper: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never one unbounded reply (thousands of containers exceed 1 MiB), and nothing missed."""
    for name in ("c", "a", "b"):
        daemon.start_container(name, sleeper)
    asked: list[dict[str, Any]] = []
    real_call = Client.call

    def spy(self: Client, method: str, params: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        if method == "containers.list":
            asked.append(params or {})
        return real_call(self, method, params, timeout)

    monkeypatch.setattr(Client, "call", spy)
    for page in (1, 2, 1000):
        monkeypatch.setattr(client_api, "LIST_PAGE", page)
        asked.clear()
        shown = CliRunner().invoke(cli, ["--address", daemon.address, "containers", "list", "--json"])
        assert shown.exit_code == 0, shown.output
        assert [c["id"] for c in json.loads(shown.output)] == ["a", "b", "c"], f"pages of {page}"
        assert [params["limit"] for params in asked] == [page] * (3 // page + 1)


FORGED = "\x1b[2J\nid:      forged"
"""A terminal's clear-screen, then a line that looks like one of `containers state`'s own."""
FORGED_SHOWN = "\\x1b[2J\\nid:      forged"
"""FORGED as the human-readable output shows it."""


def test_what_a_container_controls_is_printed_escaped_and_json_keeps_it_exact(daemon: Daemon, tmp_path: Path) -> None:
    bundle = create_bundle(tmp_path / f"bundle{FORGED}", ["sh", "-c", "sleep 100000", FORGED])
    daemon.start_container("esc", bundle, labels={f"key{FORGED}": f"value{FORGED}"})
    state = daemon.ctl("containers", "state", "esc")
    listed = daemon.ctl("containers", "list")
    for done in (state, listed):
        assert done.returncode == 0, done.stderr
        assert "\x1b" not in done.stdout and FORGED_SHOWN in done.stdout
    assert [line for line in state.stdout.splitlines() if line.startswith("id:")] == ["id:      esc"]
    assert f"label:   key{FORGED_SHOWN}=value{FORGED_SHOWN}" in state.stdout
    assert f"args=sh -c sleep 100000 {FORGED_SHOWN}" in state.stdout
    assert len(listed.stdout.splitlines()) == 2  # the header and the container: no forged row
    exact = json.loads(daemon.ctl("containers", "state", "--json", "esc").stdout)
    assert exact["bundle"] == str(bundle) and exact["labels"] == {f"key{FORGED}": f"value{FORGED}"}
    assert exact["processes"][0]["args"] == ["sh", "-c", "sleep 100000", FORGED]
    refused = daemon.ctl("containers", "start", "esc2", str(tmp_path / f"missing{FORGED}"))
    assert refused.returncode == 1 and "\x1b" not in refused.stderr and FORGED_SHOWN in refused.stderr
