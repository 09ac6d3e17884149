"""The Inspector actor: reads process output and cgroup statistics for clients.

File and cgroup reads are quick but they are I/O; doing them here keeps the
Supervisor free to change state while a client pages through a large log.
"""

from __future__ import annotations

import logging
from pathlib import Path

from actors.base import BusActor, Handlers
from actors.cgroups import read_stats
from actors.outputlog import CursorError, read_output
from actors.wire import ApiError, ErrorCode
from actors.wire import messages as wire
from actors.wire.api import error_reply, ok_reply

__all__ = ["Inspector"]

logger = logging.getLogger(__name__)


class Inspector(BusActor):
    def handlers(self) -> Handlers:
        return {wire.Inspect: self.on_inspect}

    def on_inspect(self, message: wire.Inspect) -> None:
        target = message.target
        try:
            if message.what == "logs":
                try:
                    result = read_output(Path(target["dir"]), target["cursor"], target["max_bytes"])
                except CursorError as exc:
                    raise ApiError(ErrorCode.INVALID_PARAMS, str(exc)) from None
                result["status"] = target["status"]
            elif message.what == "stats":
                try:
                    result = read_stats(target["pid"])
                except OSError:
                    raise ApiError(ErrorCode.CONFLICT, f"container {target['id']} has exited") from None
            else:
                raise ApiError(ErrorCode.INTERNAL, f"cannot inspect {message.what!r}")
            body = ok_reply(message.request_id, result)
        except ApiError as exc:
            body = error_reply(message.request_id, exc)
        except Exception as exc:  # damaged output or a cgroup file we cannot parse: still answer
            logger.exception("inspecting %s failed", message.what)
            body = error_reply(message.request_id, ApiError(
                ErrorCode.INTERNAL, f"cannot read the {message.what}: {type(exc).__name__}: {exc}"))
        self.send("bus", wire.ClientReply(route=message.route, body=body))
