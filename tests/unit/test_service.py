"""sd_notify's addresses and watchdog, the shims' cgroup paths, durations: no daemon, no root."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from actorctl.client import Health
from actorctl.commands.health import format_health
from actorctl.common import format_duration
from actors.service.notify import Notifier, socket_address, watchdog_interval
from actors.service.shim_cgroup import ShimCgroupError, shim_cgroup_dir


def test_an_at_sign_names_an_abstract_socket() -> None:
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("@/org/freedesktop/systemd1/notify/42") == b"\0/org/freedesktop/systemd1/notify/42"


@pytest.mark.parametrize(("usec", "pid", "expected"), [
    (None, None, None),
    ("", None, None),
    ("30000000", None, 15.0),
    ("200000", "4242", 0.1),
    ("200000", "4243", None),  # another process's watchdog
    ("0", None, None),
    ("soon", None, None),
])
def test_the_watchdog_is_half_its_timeout_and_ours_only(usec: str | None, pid: str | None,
                                                          expected: float | None) -> None:
    assert watchdog_interval(usec, pid, 4242) == expected


def test_the_variables_leave_the_environment() -> None:
    environ = {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1", "PATH": "/bin"}
    notifier = Notifier.from_environment(environ)
    assert environ == {"PATH": "/bin"}
    assert notifier.enabled and notifier.address == "@x" and notifier.watchdog is None  # pid 1 is not us
    silent = Notifier.from_environment({"WATCHDOG_USEC": "1000000"})
    assert not silent.enabled and silent.watchdog is None
    silent.send("READY=1")  # nowhere to send: nothing happens


def test_a_message_is_one_datagram(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        notifier = Notifier(str(path), None)
        notifier.send("READY=1", "STATUS=serving 0 containers")
        assert listener.recv(4096) == b"READY=1\nSTATUS=serving 0 containers"
        notifier.close()


def test_a_missing_listener_loses_the_message_quietly(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "nobody"), 0.5)
    notifier.send("WATCHDOG=1")
    notifier.close()


MOUNT = Path("/sys/fs/cgroup/unified")


def test_the_shims_cgroup_is_beside_the_daemons() -> None:
    own = MOUNT / "system.slice" / "actord.service"
    assert shim_cgroup_dir("actord-shims", MOUNT, own) == MOUNT / "system.slice" / "actord-shims"
    assert shim_cgroup_dir("/machine/shims", MOUNT, own) == MOUNT / "machine" / "shims"
    assert shim_cgroup_dir("actord-shims", MOUNT, MOUNT) == MOUNT / "actord-shims"  # at the root: below it


@pytest.mark.parametrize("option", ["..", "a/b", "", "/a/../b", "-x", "/a/b c"])
def test_a_shim_cgroup_that_is_not_a_name_or_a_path_is_refused(option: str) -> None:
    with pytest.raises(ShimCgroupError, match="--shim-cgroup"):
        shim_cgroup_dir(option, MOUNT, MOUNT / "system.slice" / "actord.service")


def test_durations_and_the_health_line() -> None:
    assert [format_duration(s) for s in (0.4, 59, 61, 3600 * 2 + 300, 86400 * 3 + 3600 * 4 + 5)] == [
        "0s", "59s", "1m 01s", "2h 05m", "3d 4h"]
    report = {"status": "degraded", "version": "0.1.0", "pid": 7, "uptime": 75.0,
              "containers": {"paused": 1, "running": 2}, "degraded": ["the runtime /x/runc is missing"]}
    assert format_health(Health.from_wire(report)) == [
        "degraded: actord 0.1.0 (pid 7) up 1m 15s, 3 containers (1 paused, 2 running)",
        "degraded: the runtime /x/runc is missing"]
