"""The request/reply transport to actord's control socket (DEALER, one request at a time).

zmq and the wire codec (msgpack) are imported on the first call, not with this module:
`actorctl` imports it for every command, `--help` included, and a short-lived CLI
process pays for every import it makes.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    import zmq

from actorctl.client.errors import Timeout, Unreachable, daemon_error

__all__ = ["DEFAULT_ADDRESS", "CurveKeys", "Transport"]

DEFAULT_ADDRESS = "ipc:///run/actord/actord.sock"


@dataclass(frozen=True)
class CurveKeys:
    """What a client needs to reach a daemon that speaks CURVE: the daemon's public key, and
    this client's key pair (its public key must be among the daemon's authorized keys)."""

    server_public: bytes
    public: bytes
    secret: bytes

    @classmethod
    def load(cls, server_key: str | os.PathLike[str] | None,
             client_key: str | os.PathLike[str] | None) -> CurveKeys | None:
        """Read them from zmq certificate files; None when neither is given (ValueError if one is)."""
        if server_key is None and client_key is None:
            return None
        if server_key is None or client_key is None:
            raise ValueError("CURVE needs both the daemon's public certificate (--curve-server-key) "
                             "and this client's certificate with its secret key (--curve-client-key)")
        import zmq.auth

        try:
            server_public, _ = zmq.auth.load_certificate(server_key)
            public, secret = zmq.auth.load_certificate(client_key)
        except OSError as exc:
            raise ValueError(f"cannot read a CURVE certificate: {exc}") from None
        if secret is None:
            raise ValueError(f"{os.fspath(client_key)} holds no secret key: give this client's .key_secret file")
        return cls(server_public, public, secret)


class Transport:
    """Calls methods on one daemon by name, with raw params and results. Not thread-safe: one per thread.

    `curve_server_key` (the daemon's public certificate) and `curve_client_key` (this client's
    certificate with its secret key) are for a daemon that listens with CURVE.
    """

    def __init__(self, address: str = DEFAULT_ADDRESS, timeout: float = 10.0,
                 context: zmq.Context[zmq.Socket[bytes]] | None = None, *,
                 curve_server_key: str | os.PathLike[str] | None = None,
                 curve_client_key: str | os.PathLike[str] | None = None) -> None:
        self.address = address
        self.timeout = timeout
        self.curve = CurveKeys.load(curve_server_key, curve_client_key)
        self._context = context
        self._socket: zmq.Socket[bytes] | None = None
        self.interrupt: zmq.Socket[bytes] | None = None
        """A socket of the same context whose first message ends any call under way with
        Unreachable: how a client inside the daemon (the CRI's) stops waiting when the daemon stops."""

    def clone(self) -> Self:
        """A client to the same daemon with the same keys, for another thread (sockets are per thread)."""
        twin = type(self)(self.address, self.timeout, self._context)
        twin.curve = self.curve
        return twin

    def _connect(self) -> zmq.Socket[bytes]:
        if self._socket is None:
            import zmq

            from actors.wire import MAX_CLIENT_MESSAGE

            if self.address.startswith("ipc://"):
                self._check_socket(self.address.removeprefix("ipc://"))
            sock = (self._context or zmq.Context.instance()).socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.IMMEDIATE, 1)
            sock.setsockopt(zmq.MAXMSGSIZE, MAX_CLIENT_MESSAGE)
            if self.curve is not None:
                sock.setsockopt(zmq.CURVE_SERVERKEY, self.curve.server_public)
                sock.setsockopt(zmq.CURVE_PUBLICKEY, self.curve.public)
                sock.setsockopt(zmq.CURVE_SECRETKEY, self.curve.secret)
            sock.connect(self.address)
            self._socket = sock
        return self._socket

    def _check_socket(self, path: str) -> None:
        """Fail at once on a socket that is missing or not ours to use: ZeroMQ would retry
        connecting in silence until the timeout."""
        try:
            os.stat(path)
            allowed = os.access(path, os.W_OK)
        except FileNotFoundError:
            raise Unreachable(f"cannot reach actord at {self.address}: no such socket (is actord running?)") from None
        except PermissionError:
            allowed = False
        if not allowed:
            raise Unreachable(f"cannot reach actord at {self.address}: permission denied (only root, and the "
                              "members of the group actord was started with --socket-group, may use it)")

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        """Call `method` with `params`; its raw result, or raise a DaemonError subclass, Unreachable or Timeout."""
        from actors.wire.api import PROTOCOL_VERSION

        return self.call_raw({"v": PROTOCOL_VERSION, "method": method, "params": params or {}}, timeout)

    def call_raw(self, request: dict[str, Any], timeout: float | None = None, *,
                 meanwhile: tuple[zmq.Socket[bytes], Callable[[list[bytes]], None]] | None = None) -> Any:
        """Send a request map (an `id` is added) and wait for its reply; `meanwhile` (a socket and
        a handler): each message arriving there while waiting goes to the handler (a pull's
        progress events, say)."""
        import zmq

        from actors.wire import WireError, pack, unpack

        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        sock = self._connect()
        request_id = uuid.uuid4().hex
        sock.setsockopt(zmq.SNDTIMEO, max(1, int(limit * 1000)))
        try:
            sock.send(pack({**request, "id": request_id}))
        except zmq.Again:
            self.close()
            hint = " (is this client's public key among the daemon's --curve-authorized-keys?)" if self.curve else ""
            raise Unreachable(f"cannot reach actord at {self.address} within {limit:g}s{hint}") from None
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        if meanwhile is not None:
            poller.register(meanwhile[0], zmq.POLLIN)
        if self.interrupt is not None:
            poller.register(self.interrupt, zmq.POLLIN)
        while True:
            remaining = deadline - time.monotonic()
            ready = dict(poller.poll(int(remaining * 1000) + 1)) if remaining > 0 else {}
            if self.interrupt is not None and self.interrupt in ready:
                self.close()
                raise Unreachable(f"the call of {request.get('method')} to actord at {self.address} was "
                                  "interrupted: actord is stopping")
            if meanwhile is not None and meanwhile[0] in ready:
                meanwhile[1](meanwhile[0].recv_multipart())
                continue
            if sock not in ready:
                self.close()
                raise Timeout(
                    f"actord at {self.address} did not answer {request.get('method')} within {limit:g}s; "
                    "it may still complete it (check 'actorctl containers list' or 'actorctl events')"
                )
            try:
                reply = unpack(sock.recv())
            except WireError:
                continue
            if reply.get("id") != request_id:
                continue  # a late reply to an earlier call
            if reply.get("ok"):
                return reply.get("result")
            error = reply.get("error") or {}
            raise daemon_error(str(error.get("code", "internal")), str(error.get("message", "request failed")))

    def close(self) -> None:
        """Close the socket (the next call opens a new one)."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()
