"""The Monitor actor.

Two sources tell us a process is gone: the shim's exit report (fast path) and
the shim's own death, seen through a pidfd polled by the bus. Whichever comes
first produces the one `process_exit` for that process; the other is dropped.
A shim that died without reporting is looked up in its durable `exit.json`;
with no record there, the status is 255 (unknown).
"""

from __future__ import annotations

import collections
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from actors.base import BusActor
from actors.statedir import read_json

__all__ = ["Monitor", "UNKNOWN_STATUS"]

logger = logging.getLogger(__name__)

UNKNOWN_STATUS = 255
REMEMBERED_EXITS = 65536
"""How many reported process tokens are kept to drop late duplicate reports."""


@dataclass
class WatchedShim:
    token: str
    container_id: str
    process_id: str
    procdir: Path


class Monitor(BusActor):
    def __init__(self, context: zmq.Context) -> None:
        super().__init__(context)
        self.watches: dict[int, WatchedShim] = {}
        self.reported: set[str] = set()
        self._reported_order: collections.deque[str] = collections.deque()

    def on_stop(self) -> None:
        for fd in self.watches:
            os.close(fd)
        self.watches.clear()
        super().on_stop()

    def _report(self, token: str, container_id: str, process_id: str, status: int) -> None:
        if token in self.reported:
            return
        self.reported.add(token)
        self._reported_order.append(token)
        if len(self._reported_order) > REMEMBERED_EXITS:
            self.reported.discard(self._reported_order.popleft())
        self.send("supervisor", "process_exit", token=token, id=container_id, pid=process_id, status=status)

    def on_shim_exit(self, message: dict[str, Any]) -> None:
        self._report(message["token"], message["id"], message["pid"], message["status"])

    def on_watch_process(self, message: dict[str, Any]) -> None:
        shim = WatchedShim(message["token"], message["id"], message["pid"], Path(message["procdir"]))
        try:
            fd = os.pidfd_open(message["shim_pid"])
        except ProcessLookupError:
            self._shim_gone(shim)
            return
        self.watches[fd] = shim
        self.send("bus", "watch_fd", fd=fd)

    def on_fd_ready(self, message: dict[str, Any]) -> None:
        shim = self.watches.pop(message["fd"], None)
        if shim is None:
            return
        os.close(message["fd"])
        self._shim_gone(shim)

    def _shim_gone(self, shim: WatchedShim) -> None:
        if shim.token not in self.reported:
            record = read_json(shim.procdir / "exit.json")
            if isinstance(record, dict) and isinstance(record.get("status"), int):
                status = record["status"]
            else:
                logger.warning(
                    "shim of %s/%s died without reporting an exit", shim.container_id, shim.process_id
                )
                status = UNKNOWN_STATUS
            self._report(shim.token, shim.container_id, shim.process_id, status)
        self.send("supervisor", "shim_gone", token=shim.token, id=shim.container_id, pid=shim.process_id)
