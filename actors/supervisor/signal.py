"""containers.signal: one process through its pidfd (no pid-reuse hazard), or all through runc."""

from __future__ import annotations

import signal as signals
from typing import TYPE_CHECKING

from actors.supervisor.deferred import DEFERRED
from actors.wire import ApiError, ErrorCode
from actors.wire.api import Params
from actors.wire.messages import Request

if TYPE_CHECKING:
    from actors.supervisor.actor import Supervisor


def request(sup: Supervisor, request: Request) -> object:
    params = Params(request.params)
    container_id = params.container_id()
    signum = params.integer("signal", required=True, low=1, high=int(signals.SIGRTMAX))
    process_id = params.string("pid", required=False, max_len=64)
    every = params.flag("all")
    assert signum is not None
    if every and process_id is not None:
        raise ApiError(ErrorCode.INVALID_PARAMS, "give either 'pid' or 'all', not both")
    if every:
        sup.life.signalled(container_id, signum)
        sup.submit_job("kill_all", container_id, {"signal": signum}, request)
        return DEFERRED
    process = sup.life.find_process(container_id, process_id or "init")
    if process.name == "init":
        sup.life.signalled(container_id, signum)
    if process.pidfd >= 0:
        try:
            signals.pidfd_send_signal(process.pidfd, signum)
        except ProcessLookupError:
            pass  # it has exited; its exit is on the way
    return {}
