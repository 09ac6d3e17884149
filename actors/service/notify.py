"""The sd_notify protocol: telling systemd (or whatever set NOTIFY_SOCKET) how the daemon is.

A message is one datagram of newline-separated `KEY=VALUE` lines, sent to the unix socket
NOTIFY_SOCKET names: a path, or an abstract socket written with a leading `@`. Without
NOTIFY_SOCKET nothing is sent. WATCHDOG_USEC asks for `WATCHDOG=1` at least that often
(we send it every half of it), unless WATCHDOG_PID names another process.

The variables are taken out of the environment as they are read: the spawner, the shims,
runc and the containers inherit it, none of them is the service, and a runc that finds
NOTIFY_SOCKET hands the socket to the container and waits for the container's READY=1.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import MutableMapping

__all__ = ["NOTIFY_VARIABLES", "Notifier", "socket_address", "watchdog_interval"]

logger = logging.getLogger(__name__)

NOTIFY_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def socket_address(value: str) -> str | bytes:
    """The address to send to: a path as it is, `@name` as the abstract socket `\\0name`."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


def watchdog_interval(usec: str | None, watchdog_pid: str | None, own_pid: int) -> float | None:
    """Seconds between two `WATCHDOG=1` (half the timeout), or None: no watchdog for us (none
    asked, another process's, or a value that is not a positive number of microseconds)."""
    if not usec:
        return None
    if watchdog_pid and watchdog_pid.strip() != str(own_pid):
        return None
    try:
        timeout = int(usec)
    except ValueError:
        logger.warning("ignoring WATCHDOG_USEC=%r: not a number of microseconds", usec)
        return None
    return timeout / 2e6 if timeout > 0 else None


class Notifier:
    """Sends sd_notify messages; does nothing when there is no NOTIFY_SOCKET."""

    def __init__(self, address: str | None, watchdog: float | None) -> None:
        self.address = address
        self.watchdog = watchdog if address else None
        """Seconds between two WATCHDOG=1, or None."""
        self._socket: socket.socket | None = None
        self._failed = False

    @classmethod
    def from_environment(cls, environ: MutableMapping[str, str] = os.environ) -> Notifier:
        """The notifier the environment asks for; the variables are removed from it."""
        values = {name: environ.pop(name, None) for name in NOTIFY_VARIABLES}
        address = values["NOTIFY_SOCKET"] or None
        watchdog = watchdog_interval(values["WATCHDOG_USEC"], values["WATCHDOG_PID"], os.getpid())
        return cls(address, watchdog)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> None:
        """Send `fields` (`KEY=VALUE` each) in one datagram. Never blocks: a full or absent
        listener loses the message, as systemd's own client library would."""
        if self.address is None:
            return
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.sendto("\n".join(fields).encode(), socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL,
                                socket_address(self.address))
        except OSError as exc:
            if not self._failed:  # once: a missing listener would otherwise log at every tick
                logger.warning("cannot notify %s: %s", self.address, exc.strerror or exc)
                self._failed = True
        else:
            self._failed = False

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
