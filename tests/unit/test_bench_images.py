"""The image bench's own logic (bench/diskuse.py, bench/imagefigures.py): the disk counter counts
as `du -sx` does (each inode once, nothing below a mount point, excluded subtrees left out) and
the table's arithmetic (per-container bytes, ratios) is right."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent / "bench"))

from diskuse import disk_bytes, mount_points
from imagefigures import Row, as_json, ordinal, ratios, table

CHUNK = 64 * 1024


def blocks(*paths: Path) -> int:
    """Bytes allocated to each path itself (no descent)."""
    return sum(os.lstat(path).st_blocks * 512 for path in paths)


def filled(path: Path, size: int = CHUNK) -> Path:
    """`path` holding `size` random bytes, on disk (its blocks allocated)."""
    with open(path, "wb") as file:
        file.write(os.urandom(size))
        file.flush()
        os.fsync(file.fileno())
    return path


def test_a_hard_linked_file_counts_once_within_a_tree_and_across_trees(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    data = filled(one / "data")
    os.link(data, one / "again")
    os.link(data, two / "elsewhere")
    assert blocks(data) >= CHUNK
    assert disk_bytes([one], mounts=set()) == blocks(one, data)
    assert disk_bytes([one, two], mounts=set()) == blocks(one, two, data)
    assert disk_bytes([one, one / "data"], mounts=set()) == blocks(one, data)


def test_it_agrees_with_du(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    for n in range(5):
        filled(tree / "a" / f"f{n}", CHUNK * (n + 1))
    os.link(tree / "a" / "f3", tree / "a" / "b" / "link")
    (tree / "a" / "b" / "sym").symlink_to("../f1")
    with open(tree / "sparse", "wb") as sparse:
        sparse.truncate(10 * 1024 * 1024)
    du = subprocess.run(["du", "-s", "-x", "-B1", str(tree)], check=True, capture_output=True, text=True)
    assert disk_bytes([tree]) == int(du.stdout.split()[0])


def test_excluded_subtrees_and_mount_points_are_left_out(tmp_path: Path) -> None:
    (tmp_path / "content").mkdir()
    (tmp_path / "rootfs").mkdir()
    filled(tmp_path / "content" / "blob")
    filled(tmp_path / "rootfs" / "file")
    filled(tmp_path / "own")
    everything = disk_bytes([tmp_path], mounts=set())
    assert disk_bytes([tmp_path], exclude=[tmp_path / "content"], mounts=set()) == \
        everything - blocks(tmp_path / "content", tmp_path / "content" / "blob")
    assert disk_bytes([tmp_path], mounts={str(tmp_path / "rootfs")}) == \
        everything - blocks(tmp_path / "rootfs", tmp_path / "rootfs" / "file")
    assert disk_bytes([tmp_path / "missing"], mounts=set()) == 0


def test_mount_points_decode_mountinfo_escapes(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text("22 1 8:1 / / rw - ext4 /dev/vda rw\n"
                         "90 22 0:50 / /tmp/a\\040b\\134c rw - overlay overlay rw\n")
    assert mount_points(mountinfo) == {"/", "/tmp/a b\\c"}


def row(runtime: str, first: float, last: float, disk_first: int, disk_last: int, containers: int = 50,
        image: str = "2 MB") -> Row:
    return Row(image, runtime, containers, first, last, disk_first, disk_last, content=1_000_000)


def test_per_container_bytes_spread_the_growth_after_the_first_over_the_rest() -> None:
    assert row("actord", 0.1, 0.1, 2_000_000, 2_000_000 + 49 * 80_000).per_container == 80_000
    assert row("actord", 0.1, 0.1, 2_000_000, 2_000_000, containers=1).per_container is None


def test_ratios_are_each_figure_over_the_baselines_for_each_image() -> None:
    rows = [row("actord", 0.2, 0.05, 3_000_000, 3_000_000 + 49 * 40_000),
            row("containerd", 0.4, 0.1, 2_000_000, 2_000_000 + 49 * 80_000),
            row("actord", 1.0, 0.1, 200_000_000, 200_000_000, image="200 MB"),
            row("containerd", 0.5, 0.1, 0, 0, image="200 MB")]
    found = ratios(rows, "actord", "containerd")
    assert found["2 MB"] == {"first_start": 0.5, "last_start": 0.5, "disk_first": 1.5,
                             "disk_last": (3_000_000 + 49 * 40_000) / (2_000_000 + 49 * 80_000),
                             "per_container": 0.5, "content": 1.0}
    assert found["200 MB"]["first_start"] == 2.0
    assert found["200 MB"]["disk_first"] is None  # over nothing: no ratio
    assert as_json(rows, load=[0.5, 0.7])["ratios"]["actord/containerd"] == found


def test_the_table_shows_each_row_in_its_units_and_the_ratio_lines() -> None:
    rows = [row("actord", 0.0675, 0.05, 2_150_000, 2_150_000 + 49 * 75_000),
            row("containerd", 0.135, 0.1, 2_150_000, 2_150_000 + 49 * 150_000)]
    lines = table(rows).splitlines()
    assert lines[0].split() == ["image", "runtime", "1st", "start", "ms", "50th", "start", "ms", "disk@1st", "MB",
                                "disk@50th", "MB", "per-container", "KB", "content", "MB"]
    assert lines[1].split() == ["2", "MB", "actord", "67.5", "50.0", "2.1", "5.8", "75.0", "1.0"]
    assert lines[3].split() == ["2", "MB", "actord/containerd", "0.50x", "0.50x", "1.00x", "0.61x", "0.50x", "1.00x"]
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 50, 101, 111)] == \
        ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "50th", "101st", "111th"]
