"""CRI logs (actors/wire/crilog.py): a container's output written by its shim in the kubelet's
format, besides actord's own output files, and reopened at `containers.reopen_log`."""

from __future__ import annotations

import calendar
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from actorctl.client import Conflict, InvalidParams, NotFound, RuntimeFailure
from tests.harness import Daemon, wait_until
from tests.test_durability import restart
from tests.test_full_disk import Filler, small_tmpfs

LINE = re.compile(rb"(\S+) (stdout|stderr) (P|F) (.*)")
RFC3339NANO_UTC = re.compile(rb"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{0,8}[1-9]))?Z")
"""Go's time.RFC3339Nano in UTC: a fraction only when it is not zero, trailing zeros trimmed."""
Entry = tuple[int, str, str, bytes]
"""(nanoseconds since the epoch, stream, tag, text) of one line."""


def timestamp(text: bytes) -> int:
    match = RFC3339NANO_UTC.fullmatch(text)
    assert match is not None, f"{text!r} is not RFC3339Nano in UTC"
    seconds = calendar.timegm((*(int(part) for part in match.groups()[:6]), 0, 0, 0))
    return seconds * 10**9 + int((match.group(7) or b"").ljust(9, b"0"))


def entries(path: Path) -> list[Entry]:
    """Every line of a CRI log, checked against the format, its times non-decreasing."""
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), "a torn last line"
    found: list[Entry] = []
    for line in data.split(b"\n")[:-1]:
        match = LINE.fullmatch(line)
        assert match is not None, f"{line[:100]!r} is not a CRI log line"
        found.append((timestamp(match.group(1)), match.group(2).decode(), match.group(3).decode(), match.group(4)))
    times = [entry[0] for entry in found]
    assert times == sorted(times), "timestamps go back"
    return found


def text(found: list[Entry], stream: str) -> bytes:
    """One stream's output as the kubelet puts it together: a newline after each F entry."""
    return b"".join(data + (b"\n" if tag == "F" else b"") for _, name, tag, data in found if name == stream)


def output(daemon: Daemon, container_id: str) -> dict[int, bytes]:
    """The process's output as actord's own logs hold it, per stream."""
    records = daemon.call("containers.logs", {"id": container_id, "max_bytes": 256 << 10})["records"]
    joined = {1: b"", 2: b""}
    for stream, _, data in records:
        joined[stream] += data
    return joined


def exited(daemon: Daemon, container_id: str) -> None:
    daemon.wait_events(lambda ev: any(e["type"] == "exit" and e["id"] == container_id for e in ev))


def test_both_streams_long_and_unterminated_lines_in_the_cri_format(daemon: Daemon, bundles: Callable[..., Path],
                                                                    tmp_path: Path) -> None:
    script = ("echo out1; echo err1 >&2; head -c 40960 /dev/zero | tr '\\0' x; echo; echo; "
              "printf 'cr\\r\\n'; echo err2 >&2; printf tail")
    log = tmp_path / "pods" / "uid" / "talk" / "0.log"  # its parents made, as containerd makes them
    state = daemon.start_container("talk", bundles("sh", "-c", script), cri_log=str(log))
    assert state["cri_log"] == str(log)
    exited(daemon, "talk")
    stdout = b"out1\n" + b"x" * 40960 + b"\n\ncr\ntail"
    wait_until(lambda: text(entries(log), "stdout") == stdout, message="the whole stdout in the CRI log")
    found = entries(log)
    assert text(found, "stderr") == b"err1\nerr2\n"
    shapes = [(name, tag, len(data)) for _, name, tag, data in found if name == "stdout"]
    assert shapes == [("stdout", "F", 4), ("stdout", "P", 16384), ("stdout", "P", 16384), ("stdout", "F", 8192),
                      ("stdout", "F", 0), ("stdout", "F", 2), ("stdout", "P", 4)]
    assert stat.S_IMODE(log.stat().st_mode) == 0o640
    assert output(daemon, "talk") == {1: stdout.replace(b"cr\n", b"cr\r\n"), 2: b"err1\nerr2\n"}


def test_a_terminals_output_is_stdout(daemon: Daemon, bundles: Callable[..., Path], tmp_path: Path) -> None:
    from actorctl.bundle import create_bundle

    bundle = create_bundle(tmp_path / "tty", ["sh", "-c", "echo one; echo two >&2; printf end"], terminal=True)
    log = tmp_path / "tty.log"
    daemon.start_container("tty", bundle, cri_log=str(log))
    exited(daemon, "tty")
    wait_until(lambda: text(entries(log), "stdout").endswith(b"end"), message="the terminal's output")
    found = entries(log)
    assert {name for _, name, _, _ in found} == {"stdout"}
    assert text(found, "stdout") == b"one\ntwo\nend"
    assert output(daemon, "tty")[1] == b"one\r\ntwo\r\nend"  # the terminal's \r\n, as containerd drops the \r


def test_reopen_goes_on_in_a_new_file_losing_and_repeating_nothing(daemon: Daemon, bundles: Callable[..., Path],
                                                                   tmp_path: Path) -> None:
    log, rotated = tmp_path / "0.log", tmp_path / "0.log.20261204-032522"
    daemon.start_container("cat", bundles("cat"), stdin=True, cri_log=str(log))
    with daemon.client() as client:
        client.write_stdin("cat", b"before\nhalf")
        wait_until(lambda: log.exists() and text(entries(log), "stdout") == b"before\n", message="the first line")
        os.rename(log, rotated)  # the kubelet's rotation
        log.symlink_to(tmp_path / "elsewhere")
        with pytest.raises(Conflict, match=f"cannot open the CRI log {log}: .*symlink there is refused"):
            client.reopen_log("cat")
        log.unlink()
        client.reopen_log("cat")
        assert log.exists()
        assert f"cri log: {log}\n" in daemon.ctl("containers", "state", "cat").stdout
        client.write_stdin("cat", b"-line\nafter\n")
        wait_until(lambda: text(entries(log), "stdout") == b"half-line\nafter\n", message="the lines after the reopen")
        assert text(entries(rotated), "stdout") == b"before\n"
        assert not (tmp_path / "elsewhere").exists()
        client.close_stdin("cat")
    exited(daemon, "cat")


def test_reopen_is_refused_without_a_cri_log_or_a_running_init(daemon: Daemon, bundles: Callable[..., Path],
                                                              sleeper: Path, tmp_path: Path) -> None:
    with daemon.client() as client:
        with pytest.raises(NotFound, match="container ghost"):
            client.reopen_log("ghost")
        daemon.start_container("plain", sleeper)
        with pytest.raises(Conflict, match="container plain has no CRI log"):
            client.reopen_log("plain")
        daemon.start_container("done", bundles("true"), cri_log=str(tmp_path / "done.log"), restart="on-failure:1")
        wait_until(lambda: client.container("done").status == "stopped", message="the stopped container")
        with pytest.raises(Conflict, match="container done is stopped"):
            client.reopen_log("done")
        client.remove("done")
        client.kill("plain")
    exited(daemon, "plain")


def test_a_bad_cri_log_path_is_refused_and_leaves_nothing(daemon: Daemon, sleeper: Path, tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"")
    (tmp_path / "link.log").symlink_to(target)
    (tmp_path / "dir.log").mkdir()
    refusals: list[tuple[str, type[Exception], str]] = [
        ("relative/0.log", InvalidParams, "must be an absolute path"),
        (f"{tmp_path}/../x/0.log", InvalidParams, "must be a normalized path"),
        (f"{tmp_path}/0.log/", InvalidParams, "must be a normalized path"),
        (f"{tmp_path}/a\0b.log", InvalidParams, "must not hold a NUL"),
        (f"{tmp_path}/link.log", RuntimeFailure, "cannot open the CRI log .*symlink there is refused"),
        (f"{tmp_path}/dir.log", RuntimeFailure, "cannot open the CRI log .*is a directory"),
    ]
    with daemon.client() as client:
        for path, error, message in refusals:
            with pytest.raises(error, match=message):
                client.start("bad", str(sleeper), cri_log=path)
            assert client.containers() == []
            assert daemon.runc_containers() == []
            wait_until(lambda: daemon.live_shims() == [], message="no shim left")
        assert target.read_bytes() == b""
        client.start("good", str(sleeper), cri_log=str(tmp_path / "good.log"))  # and actord serves on
        client.kill("good")
    exited(daemon, "good")


def test_a_full_disk_drops_lines_but_not_the_container(daemon: Daemon, bundles: Callable[..., Path]) -> None:
    with small_tmpfs("64k") as disk:
        log = disk / "0.log"
        daemon.start_container("cat", bundles("cat"), stdin=True, cri_log=str(log))
        with daemon.client() as client:
            client.write_stdin("cat", b"before\n")
            wait_until(lambda: text(entries(log), "stdout") == b"before\n", message="the first line")
            filler = Filler(disk)
            lost = b"l" * 8000 + b"\n"  # more than the room left in the file's last page
            client.write_stdin("cat", lost)
            wait_until(lambda: output(daemon, "cat")[1] == b"before\n" + lost, message="the line read")
            client.write_stdin("cat", b"")  # acknowledged once the shim is done with the pump that read it
            assert text(entries(log), "stdout") == b"before\n"
            filler.release()
            client.write_stdin("cat", b"back\n")
            wait_until(lambda: text(entries(log), "stdout") == b"before\nback\n", message="lines once there is room")
            assert text(entries(log), "stderr") == b"[actord: 8001 bytes of output dropped: no space left on device]\n"
            assert client.container("cat").status == "running"
            client.close_stdin("cat")
        exited(daemon, "cat")


def test_every_life_and_a_restarted_daemon_keep_the_cri_log(daemon: Daemon, bundles: Callable[..., Path],
                                                           tmp_path: Path) -> None:
    lives = tmp_path / "lives.log"
    daemon.start_container("lives", bundles("sh", "-c", "echo life; exit 1"), cri_log=str(lives),
                           restart="on-failure:2")
    wait_until(lambda: daemon.call("containers.state", {"id": "lives"})["status"] == "stopped",
               message="the policy done with it")
    wait_until(lambda: text(entries(lives), "stdout") == b"life\n" * 3, message="a line from each of its 3 lives")
    assert daemon.call("containers.state", {"id": "lives"})["cri_log"] == str(lives)
    daemon.call("containers.remove", {"id": "lives"})
    log = tmp_path / "cat.log"
    daemon.start_container("cat", bundles("cat"), stdin=True, cri_log=str(log))
    restart(daemon)
    with daemon.client() as client:
        assert client.container("cat").cri_log == str(log)
        os.rename(log, tmp_path / "cat.log.1")
        client.reopen_log("cat")  # the restarted daemon knows the container has one
        client.write_stdin("cat", b"after the restart\n")
        wait_until(lambda: text(entries(log), "stdout") == b"after the restart\n", message="the new file")
        client.close_stdin("cat")
    exited(daemon, "cat")
