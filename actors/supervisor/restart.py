"""Restart policies: whether a container that stopped comes back, and after what delay.

The policies are docker's: `no`, `on-failure[:MAX]` (a non-zero exit or an OOM kill, at
most MAX restarts), `always` (whatever the exit) and `unless-stopped` (whatever the exit).
An explicit stop ends all of them while the daemon runs: a `containers.signal` to the init
with one of `STOP_SIGNALS` (a reload signal, HUP, USR1..., is not one) or a forced removal.
`always` and `unless-stopped` differ only when the daemon starts (after its restart or a
reboot): an explicitly stopped `always` container comes back then, an `unless-stopped` one
does not.

Back-off: the first restart waits `first` seconds, each further one twice as long up to
`cap`; a container that ran `reset` seconds or more before it stopped starts again from
`first`. The restart count (what on-failure's MAX limits) only grows.

Pure logic, no I/O; `Alarm` is the one thread: it wakes the Supervisor when the next
restart is due.
"""

from __future__ import annotations

import enum
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["STOP_SIGNALS", "Alarm", "Backoff", "Policy", "RestartPolicy", "should_restart"]

STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGKILL, signal.SIGINT, signal.SIGQUIT})
"""Signals to a container's init that count as an explicit stop."""


class Policy(enum.Enum):
    NO = "no"
    ON_FAILURE = "on-failure"
    ALWAYS = "always"
    UNLESS_STOPPED = "unless-stopped"


@dataclass(frozen=True)
class RestartPolicy:
    policy: Policy = Policy.NO
    max_restarts: int = 0
    """For on-failure: the most restarts (0: no limit)."""

    @classmethod
    def parse(cls, text: str) -> RestartPolicy:
        """`no`, `on-failure`, `on-failure:MAX`, `always` or `unless-stopped`; ValueError otherwise."""
        name, colon, count = text.partition(":")
        try:
            policy = Policy(name)
        except ValueError:
            raise ValueError(f"unknown restart policy {text!r} "
                             "(no, on-failure[:MAX], always, unless-stopped)") from None
        if not colon:
            return cls(policy)
        if policy is not Policy.ON_FAILURE:
            raise ValueError(f"restart policy {name} takes no count (only on-failure:MAX does)")
        if not count.isdigit() or not 0 < int(count) <= 1_000_000:
            raise ValueError(f"on-failure:MAX needs a count from 1 to 1000000, not {count!r}")
        return cls(policy, int(count))

    def __str__(self) -> str:
        return f"{self.policy.value}:{self.max_restarts}" if self.max_restarts else self.policy.value

    def starts_with_the_daemon(self, *, stopped: bool) -> bool:
        """A container under this policy that is not running when actord starts (a reboot ended
        it, or it was `stopped`, explicitly) starts again, as docker's daemon does: `always`
        whatever happened, `unless-stopped` unless it was stopped, on-failure's never (it did not fail)."""
        if self.policy is Policy.ALWAYS:
            return True
        return self.policy is Policy.UNLESS_STOPPED and not stopped

    @property
    def keeps_definition(self) -> bool:
        """A container under this policy is remembered (in the root) until `containers rm`."""
        return self.policy is not Policy.NO


def should_restart(policy: RestartPolicy, *, status: int | None, oom: bool, stopped: bool, restarts: int) -> bool:
    """Whether a container that stopped (exit `status`; None: its start failed) comes back.
    `stopped`: it was explicitly stopped; `restarts`: how many times it was restarted so far."""
    failed = status != 0 or oom
    if policy.policy in (Policy.ALWAYS, Policy.UNLESS_STOPPED):
        return not stopped
    if policy.policy is Policy.ON_FAILURE:
        return failed and not stopped and (policy.max_restarts == 0 or restarts < policy.max_restarts)
    return False


@dataclass(frozen=True)
class Backoff:
    first: float = 0.1
    cap: float = 60.0
    reset: float = 10.0

    def delay(self, streak: int) -> float:
        """The wait before a restart after `streak` quick stops in a row (1: the first)."""
        return float(min(self.cap, self.first * 2 ** max(0, min(streak - 1, 64))))

    def next_streak(self, streak: int, ran: float) -> int:
        """The streak after a stop of a container that ran `ran` seconds."""
        return 1 if ran >= self.reset else streak + 1


class Alarm:
    """One timer for the earliest due restart: `arm(delay)` calls `wake` (on the timer's
    thread) after `delay` seconds, unless an earlier wake-up is already set."""

    def __init__(self, wake: Callable[[], None], clock: Callable[[], float]) -> None:
        self._wake = wake
        self._clock = clock
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._due = float("inf")

    def arm(self, delay: float) -> None:
        due = self._clock() + max(0.0, delay)
        with self._lock:
            if self._timer is not None and self._due <= due:
                return
            if self._timer is not None:
                self._timer.cancel()
            self._due = due
            self._timer = threading.Timer(max(0.0, delay), self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            self._timer, self._due = None, float("inf")
        self._wake()

    def cancel(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer, self._due = None, float("inf")
