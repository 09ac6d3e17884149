"""The daemon's own conditions, for `version` and `health`: its uptime, and what is wrong now
that no request would otherwise show (the state dir's storage is the EventLog's word).

Both are looked at when asked, in the Supervisor's thread, so each check is a stat or a
non-blocking wait: never a runtime call.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from actors.worker.spawner import Spawner

__all__ = ["Health"]


class Health:
    def __init__(self, runtime: str, spawner: Spawner) -> None:
        self.runtime = runtime
        """The runtime binary's resolved path."""
        self.spawner = spawner
        self.started = time.monotonic()

    def uptime(self) -> float:
        """Seconds since the daemon started."""
        return round(time.monotonic() - self.started, 3)

    def degraded(self) -> list[str]:
        """Why the daemon cannot do all it should now (empty when healthy)."""
        reasons = []
        if not (os.path.isfile(self.runtime) and os.access(self.runtime, os.X_OK)):
            reasons.append(f"the runtime {self.runtime} is missing or not executable: containers cannot be "
                           "started, signalled or paused")
        spawner = self.spawner.trouble()
        if spawner is not None:
            reasons.append(spawner)
        return reasons
