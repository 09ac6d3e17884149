"""The file descriptors actord keeps free, so that no client can make libzmq abort it.

libzmq aborts the whole process when an ipc accept meets EMFILE (a local client connecting, a
shim reporting an exit): actord must never run out. Starts and execs are what grow its fds
(4 per container, 3 per further process), so a start or an exec that would leave fewer than
the reserve free is refused with `busy`. The reserve holds what the listeners may take at
most, whoever connects:

* CLIENTS: local clients, event subscribers, the fds a cleanup needs (a pidfd, a runc call's
  pipes), as always;
* with --metrics-address: the metrics server's MAX_FDS (its connections are capped, the
  excess closed at once);
* with a network control socket: MAX_UNPROVEN connections in their handshake, plus
  ACCEPT_LAG for those libzmq accepts before the bus has seen and shut them down;
* with the CRI served: CRI_FDS.
"""

from __future__ import annotations

import os
import resource

from actors.metrics.server import MAX_FDS as METRICS_FDS
from actors.peercap import MAX_UNPROVEN
from actors.wire import ApiError, ErrorCode

__all__ = ["ACCEPT_LAG", "CLIENTS", "CRI_FDS", "check_fd_reserve", "fd_reserve"]

CLIENTS = 256
ACCEPT_LAG = 512
"""Connections over the cap that libzmq's IO thread may have accepted before the bus thread
shut them down and libzmq closed them. Measured with bench/flood.py on 2 cores: 1 to 16 local
processes opening 1,000 connections each at once peaked at 100 to 391 fds over MAX_UNPROVEN.
This is a measured bound, not a hard one (libzmq accepts on its own thread): a flood faster
than the bus can shut connections down could exceed it, so keep a network control socket
behind a firewall that limits connection rates."""


CRI_FDS = 64
"""The CRI's gRPC server (actors/cri/server.py): about 10 of its own (epoll, wakeup fds, the
listening socket), one per connection and two sockets per gRPC thread's client of the daemon
(8 threads). Its socket is as private as the control socket, so its clients are the
kubelet and crictl, a few connections; like CLIENTS, this is room for them, not a cap."""


def fd_reserve(*, metrics: bool = False, network: bool = False, cri: bool = False) -> int:
    """The fds to keep free with a metrics server, a network control socket, the CRI."""
    return (CLIENTS + (METRICS_FDS if metrics else 0) + (MAX_UNPROVEN + ACCEPT_LAG if network else 0)
            + (CRI_FDS if cri else 0))


def check_fd_reserve(reserve: int) -> None:
    """Refuse a start or exec (`busy`) when fewer than `reserve` fds are left below the soft limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    in_use = len(os.listdir("/proc/self/fd"))
    if in_use + reserve > soft:
        raise ApiError(ErrorCode.BUSY, f"actord holds {in_use} of its {soft} file descriptors and keeps "
                       f"{reserve} free: no more starts until containers exit (raise its LimitNOFILE)")
