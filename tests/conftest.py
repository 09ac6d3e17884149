from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from actorctl.bundle import create_bundle
from tests.harness import Certificates, Daemon, checked_daemon, new_state_dir, remove_state_dir
from tests.oci_images import IMAGE_CONFIG, busybox_layer, oci_layout
from tests.registry import Registry

UNIT_TESTS = Path(__file__).resolve().parent / "unit"
"""Tests of pure logic: no root, runc or daemon needed."""


@pytest.fixture(scope="session", autouse=True)
def _requirements(request: pytest.FixtureRequest) -> None:
    if all(UNIT_TESTS in Path(str(item.fspath)).parents for item in request.session.items):
        return
    if os.geteuid() != 0:
        pytest.exit("the tests run real runc containers and need root", returncode=2)
    for tool, package in (("runc", "runc"), ("busybox", "busybox-static"), ("tini-static", "tini"), ("umoci", "umoci"),
                          ("skopeo", "skopeo")):
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
def certificates(tmp_path: Path) -> Certificates:
    """A daemon's, a client's (authorized) and an intruder's CURVE certificates."""
    return Certificates.make(tmp_path)


@pytest.fixture
def sleeper(bundles: Callable[..., Path]) -> Path:
    return bundles("sleep", "100000")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the test item (`report_setup`, `report_call`, ...): fixtures
    tell from it whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def daemon(request: pytest.FixtureRequest) -> Iterator[Daemon]:
    """A running actord; afterwards: no container, no shim, no zombie, the daemon stopped by pid."""
    state_dir = new_state_dir()
    try:
        with checked_daemon(Daemon(state_dir), request) as instance:
            yield instance
    finally:
        remove_state_dir(state_dir)


@pytest.fixture(scope="session")
def registry() -> Iterator[Registry]:
    """Debian's docker-registry on a free 127.0.0.1 port (plain HTTP), started once for the
    session and stopped by its pid. It holds `team/bb:v1` and `bb:v1` (tests/oci_images.py's
    IMAGE_CONFIG busybox image: it prints its args, env, pwd and user) and `team/sleeper:v1` (runs
    until killed)."""
    if shutil.which("docker-registry") is None:
        pytest.exit("docker-registry is missing: bin/install installs it", returncode=2)
    started = Registry()
    layouts = Path(tempfile.mkdtemp(prefix="adl-", dir="/tmp"))
    try:
        layer = busybox_layer()
        oci_layout(layouts / "bb", IMAGE_CONFIG, [layer], tags=("v1",))
        oci_layout(layouts / "sleeper", {**IMAGE_CONFIG, "Entrypoint": ["/bin/sleep"], "Cmd": ["1000"]}, [layer],
                   tags=("v1",))
        for layout, repository in (("bb", "team/bb:v1"), ("bb", "bb:v1"), ("sleeper", "team/sleeper:v1")):
            started.push(layouts / layout, "v1", repository)
        shutil.rmtree(layouts)
        yield started
    finally:
        shutil.rmtree(layouts, ignore_errors=True)
        started.stop()


@pytest.fixture(scope="session")
def layer() -> bytes:
    """The busybox layer of the image tests' images (tests/oci_images.py), built once."""
    from tests.oci_images import busybox_layer

    return busybox_layer()


@pytest.fixture
def work() -> Iterator[Path]:
    """A scratch dir for a test's images, archives and bundles, removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="adw-", dir="/tmp"))
    yield directory
    shutil.rmtree(directory)
