"""Who a CRI container runs as, read from its rootfs's /etc/passwd and /etc/group (no root
needed): run_as_user, run_as_group, run_as_username, the image's User, additional groups; and
a hostile rootfs (symlinks out, a huge or odd passwd, garbage lines) never reads the host."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from cri_api.v1 import api_pb2

from actors.crispec.errors import CrispecError, ErrorKind
from actors.crispec.rootfs_files import MAX_FILE, read_rootfs_file
from tests.crispec_inputs import make_rootfs, make_spec, security


def user_of(tmp_path: Path, image_user: str = "", **context: Any) -> dict[str, Any]:
    spec = make_spec(tmp_path, security(**context), image={"User": image_user} if image_user else {})
    user: dict[str, Any] = spec["process"]["user"]
    return user


def value(number: int) -> api_pb2.Int64Value:
    return api_pb2.Int64Value(value=number)


@pytest.mark.parametrize(("context", "image_user", "expected"), [
    ({}, "", {"uid": 0, "gid": 0, "additionalGids": [10]}),
    ({"run_as_user": value(1000)}, "", {"uid": 1000, "gid": 1000, "additionalGids": [10, 29]}),
    ({"run_as_user": value(1000), "run_as_group": value(44)}, "", {"uid": 1000, "gid": 44, "additionalGids": [10, 29]}),
    ({"run_as_user": value(5555)}, "", {"uid": 5555, "gid": 0}),
    ({"run_as_user": value(5555), "run_as_group": value(6666)}, "", {"uid": 5555, "gid": 6666}),
    ({"run_as_username": "bob"}, "", {"uid": 1001, "gid": 1001, "additionalGids": [44]}),
    ({"run_as_username": "bob", "run_as_user": value(1000)}, "", {"uid": 1001, "gid": 1001, "additionalGids": [44]}),
    ({"run_as_username": "bob", "run_as_group": value(29)}, "", {"uid": 1001, "gid": 29, "additionalGids": [44]}),
    ({"run_as_user": value(0)}, "alice", {"uid": 0, "gid": 0, "additionalGids": [10]}),
    ({}, "alice", {"uid": 1000, "gid": 1000, "additionalGids": [10, 29]}),
    ({}, "1001", {"uid": 1001, "gid": 1001, "additionalGids": [44]}),
    ({}, "1000:44", {"uid": 1000, "gid": 44, "additionalGids": [10, 29]}),
    ({}, "alice:video", {"uid": 1000, "gid": 44, "additionalGids": [10, 29]}),
    ({"supplemental_groups": [29, 7, 7]}, "bob", {"uid": 1001, "gid": 1001, "additionalGids": [7, 29, 44]}),
])
def test_the_user_is_resolved_as_containerd_does(tmp_path: Path, context: dict[str, Any], image_user: str,
                                                 expected: dict[str, Any]) -> None:
    assert user_of(tmp_path, image_user, **context) == expected


@pytest.mark.parametrize(("context", "image_user", "kind", "message"), [
    ({"run_as_username": "mallory"}, "", ErrorKind.NOT_FOUND,
     "the security context's user 'mallory': no user 'mallory' in the image's /etc/passwd"),
    ({}, "mallory", ErrorKind.NOT_FOUND, "the image's User 'mallory': no user 'mallory'"),
    ({}, "alice:nogroup", ErrorKind.NOT_FOUND, "no group 'nogroup' in the image's /etc/group"),
    ({"run_as_group": value(10)}, "", ErrorKind.INVALID_ARGUMENT, "run_as_group 10 is given without run_as_user"),
    ({"run_as_user": value(-1)}, "", ErrorKind.INVALID_ARGUMENT, "run_as_user -1 is out of range"),
    ({"run_as_user": value(2**31)}, "", ErrorKind.INVALID_ARGUMENT, "run_as_user 2147483648 is out of range"),
    ({"run_as_username": "a:b"}, "", ErrorKind.INVALID_ARGUMENT, "run_as_username 'a:b' contains ':'"),
    ({"supplemental_groups": [-5]}, "", ErrorKind.INVALID_ARGUMENT, "supplemental_groups -5 is out of range"),
])
def test_a_bad_user_is_named(tmp_path: Path, context: dict[str, Any], image_user: str, kind: ErrorKind,
                             message: str) -> None:
    with pytest.raises(CrispecError, match=message) as caught:
        user_of(tmp_path, image_user, **context)
    assert caught.value.kind is kind


def test_a_rootfs_without_passwd_knows_numbers_only(tmp_path: Path) -> None:
    rootfs = make_rootfs(tmp_path, passwd=None, group=None)
    assert make_spec(tmp_path, security(run_as_user=value(7)), rootfs=rootfs)["process"]["user"] == {"uid": 7, "gid": 0}
    with pytest.raises(CrispecError, match="no user 'alice'"):
        make_spec(tmp_path, security(run_as_username="alice"), rootfs=rootfs)


@pytest.mark.parametrize("target", ["/etc/shadow", "../../../../../../etc/shadow", "/../../etc/shadow",
                                    "/proc/1/root/etc/passwd", "/proc/self/root/etc/passwd"])
def test_a_passwd_symlinked_out_of_the_rootfs_reads_nothing_of_the_host(tmp_path: Path, target: str) -> None:
    """The host's /etc/passwd names root; the rootfs names nobody at all: its symlink resolves
    inside the rootfs (/proc too is the rootfs's own, empty here), where there is no such file."""
    rootfs = make_rootfs(tmp_path, passwd=None, group=None)
    (rootfs / "etc" / "passwd").symlink_to(target)
    (rootfs / "etc" / "group").symlink_to(target.replace("passwd", "group"))
    assert read_rootfs_file(rootfs, "/etc/passwd") is None
    assert make_spec(tmp_path, security(), rootfs=rootfs)["process"]["user"] == {"uid": 0, "gid": 0}
    with pytest.raises(CrispecError, match="no user 'root' in the image's /etc/passwd") as caught:
        make_spec(tmp_path, security(run_as_username="root"), rootfs=rootfs)
    assert caught.value.kind is ErrorKind.NOT_FOUND


@pytest.mark.parametrize(("link", "target"), [("etc/passwd", "/etc/passwd"), ("etc/passwd", "../../../etc/passwd"),
                                              ("etc", "/etc"), ("etc", "../../../../etc")])
def test_a_symlink_to_the_host_path_of_itself_is_a_loop_in_the_rootfs(tmp_path: Path, link: str,
                                                                       target: str) -> None:
    """On the host these would name the host's /etc/passwd; in the rootfs they name themselves."""
    rootfs = make_rootfs(tmp_path, passwd=None, group=None)
    if link == "etc":
        (rootfs / "etc").rmdir()
    (rootfs / link).symlink_to(target)
    with pytest.raises(CrispecError, match="the image's /etc/passwd: more than 40 symlinks") as caught:
        make_spec(tmp_path, security(run_as_username="root"), rootfs=rootfs)
    assert caught.value.kind is ErrorKind.INVALID_ARGUMENT


def test_an_etc_symlinked_out_of_the_rootfs_reads_nothing_of_the_host(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    (rootfs / "etc").symlink_to("/usr/../etc/../../../var/../etc/ssl/..")
    (rootfs / "var").mkdir()
    assert read_rootfs_file(rootfs, "/etc/passwd") is None
    with pytest.raises(CrispecError, match="no user 'root'"):
        make_spec(tmp_path, security(run_as_username="root"), rootfs=rootfs)


def test_symlinks_inside_the_rootfs_are_followed_inside(tmp_path: Path) -> None:
    rootfs = make_rootfs(tmp_path, passwd=None, group=None)
    (rootfs / "data").mkdir()
    (rootfs / "data" / "users").write_text("carol:x:300:301::/:/bin/sh\n")
    (rootfs / "etc" / "passwd").symlink_to("/../../data/../data/users")
    assert user_of(tmp_path, "carol") == {"uid": 300, "gid": 301}


def test_a_symlink_loop_is_named(tmp_path: Path) -> None:
    rootfs = make_rootfs(tmp_path, passwd=None, group=None)
    (rootfs / "etc" / "passwd").symlink_to("passwd")
    with pytest.raises(CrispecError, match="the image's /etc/passwd: more than 40 symlinks"):
        read_rootfs_file(rootfs, "/etc/passwd")


def test_a_huge_passwd_is_refused_unread(tmp_path: Path) -> None:
    rootfs = make_rootfs(tmp_path, passwd=None)
    with open(rootfs / "etc" / "passwd", "wb") as huge:
        huge.truncate(100 << 20)
    with pytest.raises(CrispecError, match=f"the image's /etc/passwd is larger than {MAX_FILE} bytes") as caught:
        user_of(tmp_path)
    assert caught.value.kind is ErrorKind.INVALID_ARGUMENT


@pytest.mark.parametrize("kind", ["fifo", "dir"])
def test_a_passwd_that_is_no_file_is_refused(tmp_path: Path, kind: str) -> None:
    """A FIFO would block the reader for ever: it is never opened for reading."""
    rootfs = make_rootfs(tmp_path, passwd=None)
    if kind == "fifo":
        os.mkfifo(rootfs / "etc" / "passwd")
    else:
        (rootfs / "etc" / "passwd").mkdir()
    with pytest.raises(CrispecError, match="the image's /etc/passwd is not a regular file"):
        user_of(tmp_path)


def test_garbage_lines_are_skipped_never_read_as_root(tmp_path: Path) -> None:
    make_rootfs(tmp_path, passwd="::::\nbroken:x:notanumber:0::/:/bin/sh\n\x00\x01:x\nok:x:5:6::/:/bin/sh\n")
    assert user_of(tmp_path, "ok") == {"uid": 5, "gid": 6}
    with pytest.raises(CrispecError, match="no user 'broken'"):
        user_of(tmp_path, "broken")


def test_a_missing_rootfs_is_named(tmp_path: Path) -> None:
    with pytest.raises(CrispecError, match=r"the container's rootfs .*gone cannot be opened"):
        make_spec(tmp_path, security(), rootfs=tmp_path / "gone")
