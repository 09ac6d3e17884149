"""What the daemon's main thread does while it serves: tell the service manager when it is
ready, how many containers it serves and that it is alive (sd_notify), and bring back a shim
spawner that died.

Readiness and liveness are the Supervisor's answer to a call through its inbox
(`serving_count`): the answer to the first one comes after the Supervisor has restored the
state dir's containers (its `on_start`), and no answer means a wedged Supervisor, so
`WATCHDOG=1` stops and the service manager restarts the daemon. A call is never waited on
after start-up: each round looks whether the last one has been answered.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pykka

from actors.service.notify import Notifier
from actors.worker.spawner import Spawner

__all__ = ["ServiceWatch"]

ROUND = 1.0
"""Seconds between two rounds, at most (less when the watchdog asks for more)."""


def status_line(count: int) -> str:
    return f"STATUS=serving {count} container{'' if count == 1 else 's'}"


class ServiceWatch:
    def __init__(self, notifier: Notifier, supervisor: pykka.ActorRef[Any], bus: threading.Thread,
                 spawner: Spawner) -> None:
        self.notifier = notifier
        self.supervisor = supervisor
        self.bus = bus
        self.spawner = spawner
        self.interval = min(ROUND, notifier.watchdog) if notifier.watchdog else ROUND
        """Seconds between two calls of `tick`."""
        self._proxy: Any = None
        self._pending: pykka.Future[int] | None = None
        self._count: int | None = None
        self._answered = 0.0
        self._last_watchdog = 0.0

    def _ask(self) -> pykka.Future[int] | None:
        try:
            if self._proxy is None:
                self._proxy = self.supervisor.proxy()
            future: pykka.Future[int] = self._proxy.serving_count()
        except pykka.ActorDeadError:
            return None
        return future

    def wait_ready(self, stopping: threading.Event) -> None:
        """Wait for the Supervisor's first answer, then send READY=1; return early if the daemon
        is told to stop meanwhile. RuntimeError if the Supervisor is dead."""
        self.notifier.send("STATUS=restoring containers")
        future = self._ask()
        while not stopping.is_set():
            if future is None:
                raise RuntimeError("the Supervisor has stopped (see the log above)")
            try:
                self._count = future.get(timeout=0.1)
            except pykka.Timeout:
                continue
            except pykka.ActorDeadError:
                future = None
                continue
            self._answered = self._last_watchdog = time.monotonic()
            self.notifier.send("READY=1", status_line(self._count))
            self._pending = self._ask()  # answered by the first round, which then sends WATCHDOG=1
            return

    def tick(self) -> None:
        """One round: the spawner, the Supervisor's last answer, STATUS on a change, WATCHDOG=1."""
        self.spawner.revive()
        if not self.notifier.enabled:
            return
        now = time.monotonic()
        if self._pending is not None:
            try:
                count = self._pending.get(timeout=0)
            except pykka.Timeout:
                pass  # not answered yet: no WATCHDOG=1 until it is
            except Exception:
                self._pending = None  # the Supervisor is gone: ask again, and starve the watchdog
            else:
                self._pending = None
                self._answered = now
                if count != self._count:
                    self._count = count
                    self.notifier.send(status_line(count))
        if self._pending is None:
            self._pending = self._ask()
        watchdog = self.notifier.watchdog
        if (watchdog is not None and self._answered > self._last_watchdog and self.bus.is_alive()
                and now - self._last_watchdog >= watchdog):
            self._last_watchdog = now
            self.notifier.send("WATCHDOG=1")

    def stopping(self) -> None:
        self.notifier.send("STOPPING=1", "STATUS=stopping; containers keep running")
