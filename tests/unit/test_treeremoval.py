"""remove_tree on trees an image or a container could leave (no root: mount points are in
tests/test_tree_removal.py): any depth with a few fds, symlinks removed and never followed."""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.treeremoval import remove_tree

FEW_FDS = 48
"""A soft open-files limit far below the depths removed here (shutil.rmtree holds one fd per level)."""


@contextlib.contextmanager
def few_fds() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (FEW_FDS, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def deep_tree(top: Path, depth: int) -> None:
    """`top`/d/d/.../d (`depth` levels) with a file at the bottom, made through fds: its path is
    longer than PATH_MAX."""
    top.mkdir()
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            below = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = below
        os.close(os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd))
    finally:
        os.close(fd)


def test_a_tree_deeper_than_the_recursion_limit_and_path_max_goes_with_few_fds(tmp_path: Path) -> None:
    deep_tree(tmp_path / "deep", 3000)
    with few_fds():
        remove_tree(tmp_path / "deep")
    assert list(tmp_path.iterdir()) == []


def test_wide_and_mixed_trees_go(tmp_path: Path) -> None:
    top = tmp_path / "top"
    for branch in range(50):
        (top / f"b{branch}" / "x" / "y").mkdir(parents=True)
        (top / f"b{branch}" / "x" / "file").write_text("f")
    os.mkfifo(top / "fifo")
    (top / "empty").mkdir()
    remove_tree(top)
    assert list(tmp_path.iterdir()) == []


def test_symlinks_are_removed_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "sub" / "kept").write_text("kept")
    (outside / "file").write_text("kept too")
    top = tmp_path / "top"
    (top / "a").mkdir(parents=True)
    (top / "a" / "to-dir").symlink_to(outside)
    (top / "a" / "to-sub").symlink_to("../../outside/sub")
    (top / "to-file").symlink_to(outside / "file")
    (top / "dangling").symlink_to("/nonexistent")
    remove_tree(top)
    assert not os.path.lexists(top)
    assert (outside / "sub" / "kept").read_text() == "kept" and (outside / "file").read_text() == "kept too"

    link = tmp_path / "link-to-outside"
    link.symlink_to(outside)
    remove_tree(link)
    assert not os.path.lexists(link) and (outside / "sub" / "kept").exists(), "a symlink given is removed itself"


def test_a_file_a_missing_path_and_a_path_relative_to_a_dir_fd(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    remove_tree(tmp_path / "file")
    assert not (tmp_path / "file").exists()
    with pytest.raises(FileNotFoundError):
        remove_tree(tmp_path / "missing")
    remove_tree(tmp_path / "missing", missing_ok=True)

    (tmp_path / "parent" / "child" / "below").mkdir(parents=True)
    parent = os.open(tmp_path / "parent", os.O_RDONLY | os.O_DIRECTORY)
    try:
        remove_tree("child", dir_fd=parent)
    finally:
        os.close(parent)
    assert list((tmp_path / "parent").iterdir()) == []
