"""What an image's author could do to the host through actorctl, tried as an attacker would
(issue #16), with real skopeo, umoci, actord and runc: rootfs trees too deep to delete."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Daemon, wait_until
from tests.oci_images import busybox_layer, oci_layout, tar_directory

DEPTH = 1100
"""Deeper than Python's recursion limit (1000), which shutil.rmtree hit."""


@pytest.fixture(scope="module")
def layer() -> bytes:
    return busybox_layer()


@pytest.fixture
def work() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="adh-", dir="/tmp"))
    yield directory
    shutil.rmtree(directory)


def exited(daemon: Daemon, container_id: str, after: int = 0) -> int:
    """The status of the container's init, once it has exited (an exit recorded after event `after`)."""
    def exit_status() -> list[int]:
        return [e["status"] for e in daemon.events(after, container_id) if e["type"] == "exit"]

    statuses: list[int] = wait_until(exit_status, 30, message=f"{container_id} to exit")
    return statuses[0]


def last_seq(daemon: Daemon) -> int:
    events = daemon.events()
    return int(events[-1]["seq"]) if events else 0


@pytest.mark.slow
def test_a_container_with_a_deeper_tree_than_the_recursion_limit_is_removed(daemon: Daemon, work: Path,
                                                                             layer: bytes) -> None:
    builder = {"Cmd": ["/bin/sh", "-c", f'i=0; while [ $i -lt {DEPTH} ]; do mkdir d && cd d || exit 1; '
                                        f'i=$((i + 1)); done; echo bottom > leaf']}
    layout = oci_layout(work / "deep", builder, [layer])
    assert daemon.ctl("images", "import", "--name", "deep", str(tar_directory(layout, work / "d.tar"))).returncode == 0
    bundle = daemon.root_dir / "bundles" / "deep"
    for attempt in range(2):
        after = last_seq(daemon)
        done = daemon.ctl("containers", "start", "--image", "deep", "deep")
        assert done.returncode == 0, (attempt, done.stderr)
        assert exited(daemon, "deep", after) == 0
        assert (bundle / "rootfs" / "d" / "d" / "d").is_dir()
        done = daemon.ctl("containers", "rm", "deep")
        assert done.returncode == 0, (attempt, done.stderr)
        assert not os.path.lexists(bundle)
        daemon.call("events.replay", {"after": 0})  # the daemon still serves
