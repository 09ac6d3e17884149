from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import pytest

from actorctl.bundle import create_bundle
from tests.harness import Daemon, mounts_under, new_state_dir, pid_alive, remove_state_dir, wait_until


@pytest.fixture(scope="session", autouse=True)
def _requirements() -> None:
    if os.geteuid() != 0:
        pytest.exit("the tests run real runc containers and need root", returncode=2)
    for tool, package in (("runc", "runc"), ("busybox", "busybox-static"), ("tini-static", "tini")):
        if shutil.which(tool) is None:
            pytest.exit(f"{tool} is missing: apt-get install {package}", returncode=2)


@pytest.fixture(scope="session")
def bundles() -> Iterator[Callable[..., Path]]:
    """Make (and cache) busybox bundles: bundles("sleep", "1000") -> bundle dir."""
    root = Path(tempfile.mkdtemp(prefix="adb-", dir="/tmp"))
    made: dict[tuple[str, ...], Path] = {}

    def make(*args: str) -> Path:
        if args not in made:
            made[args] = create_bundle(root / f"b{len(made)}", list(args))
        return made[args]

    yield make
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def sleeper(bundles: Callable[..., Path]) -> Path:
    return bundles("sleep", "100000")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
def daemon(request: pytest.FixtureRequest) -> Iterator[Daemon]:
    """A running actord; afterwards: no container, no shim, no zombie, the daemon stopped by pid."""
    state_dir = new_state_dir()
    instance = Daemon(state_dir).start()
    try:
        yield instance
        # a child is a zombie for a moment between its exit and its reaping: only a lasting one is a leak
        wait_until(lambda: instance.zombies() == [], 5, 0.05, "no zombies under actord or its shims")
    finally:
        report = getattr(request.node, "report_call", None)
        if report is None or report.failed:
            print(f"--- actord log ---\n{instance.log()}")
        try:
            instance.kill_everything()
            spawner = instance.spawner_pid()
            assert instance.stop() == 0, instance.log()
            assert instance.runc_containers() == []
            assert instance.live_shims() == []
            assert mounts_under(state_dir) == [], "a rootfs mount outlived its container"
            if spawner:
                assert not pid_alive(spawner), "the shim spawner outlived actord"
        finally:
            if instance.process and instance.process.poll() is None:
                instance.process.kill()
                instance.process.wait()
            for container in instance.runc_containers():
                subprocess.run(["runc", "--root", str(instance.runtime_root), "delete", "--force",
                                container["id"]], capture_output=True)
            remove_state_dir(state_dir)
