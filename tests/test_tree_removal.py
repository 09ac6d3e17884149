"""remove_tree never descends into a mount point below the tree (root: real mounts), whether
another filesystem (tmpfs) or a bind mount of the same one: it stays, with what holds it, and
the error names it; everything else is removed."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.treeremoval import MountPointsKept, remove_tree
from tests.harness import mounts_under


@pytest.fixture
def work() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="adt-", dir="/tmp"))
    yield directory
    for point in sorted(mounts_under(directory), reverse=True):
        subprocess.run(["umount", point], check=True)
    assert mounts_under(directory) == []
    shutil.rmtree(directory)


def test_mount_points_below_the_tree_are_left_untouched_and_named(work: Path) -> None:
    outside = work / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "sub" / "host-file").write_text("host")
    tree = work / "tree"
    for directory in ("a/tmpfs", "a/b/bind", "c/d"):
        (tree / directory).mkdir(parents=True)
    (tree / "c" / "d" / "file").write_text("goes")
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(tree / "a" / "tmpfs")], check=True)
    (tree / "a" / "tmpfs" / "on-the-tmpfs").write_text("stays")
    subprocess.run(["mount", "--bind", str(outside), str(tree / "a" / "b" / "bind")], check=True)

    with pytest.raises(MountPointsKept) as kept:
        remove_tree(tree)
    assert sorted(kept.value.mounts) == ["a/b/bind", "a/tmpfs"]
    assert "a/tmpfs" in str(kept.value) and "a/b/bind" in str(kept.value)
    assert (outside / "sub" / "host-file").read_text() == "host", "the bind mount's source is untouched"
    assert (tree / "a" / "tmpfs" / "on-the-tmpfs").read_text() == "stays"
    assert sorted(str(p.relative_to(tree)) for p in tree.rglob("*") if "bind/" not in str(p)) == [
        "a", "a/b", "a/b/bind", "a/tmpfs", "a/tmpfs/on-the-tmpfs"], "all else is gone"

    for point in ("a/tmpfs", "a/b/bind"):
        subprocess.run(["umount", str(tree / point)], check=True)
    remove_tree(tree)
    assert not tree.exists() and (outside / "sub" / "host-file").exists()
