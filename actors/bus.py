"""The IO thread: the owner of the daemon's control socket and of the actors' mailbox socket.

Actors never share a socket. Each actor owns one PUSH socket (created in its own
thread) connected to `inproc://actord.bus`; it sends two frames, the name of the
destination and a msgpack message. This thread decodes and validates every
message and hands it to the named actor with `tell`, so actors exchange msgpack
over inproc while pykka keeps their mailboxes. Messages addressed to "bus" are
for this thread: replies for clients.

Its external socket:
  ROUTER  ipc://<state>/actord.sock   client requests and replies (each at most 1 MiB)
The others belong to the actors that read or write them, so that what arrives or leaves
there does not wait for this thread too: the event stream's XPUB to the EventLog
(actors/eventlog/publisher.py), the shims' exit reports' PULL to the Monitor.

The control ROUTER is also bound in-process (`inproc://actord.<name>`) for a server of the
daemon's own that speaks to actord as a client does (the CRI's gRPC server, actors/cri/): its
requests take the very route and checks of actorctl's, and are logged as `via=<name>`.

A network control socket (`--listen tcp://...`) gets a short handshake interval and a cap on
the connections still in their handshake (actors/peercap.py): no one who merely reaches the
port can make it hold more than a bounded number of fds.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

import pykka
import zmq

from actors.daemonlog import log_fields
from actors.peercap import PeerGuard
from actors.wire import MAX_CLIENT_MESSAGE, ApiError, ErrorCode, WireError, pack, trace, unpack
from actors.wire import messages as wire
from actors.wire.api import IMAGE_METHODS, POD_METHODS, error_reply, parse_request
from actors.wire.events import HEARTBEAT_INTERVAL

__all__ = ["BUS_ADDRESS", "DIRECT_INBOXES", "Bus", "BusSender", "direct_address", "internal_address"]

logger = logging.getLogger(__name__)

BUS_ADDRESS = "inproc://actord.bus"

IPC_PEER = re.compile(r"localhost:(\d+):(\d+):(\d+)")
"""libzmq's Peer-Address of an ipc peer: the uid, gid and pid the kernel gives (SO_PEERCRED)."""

TICK_SECONDS = HEARTBEAT_INTERVAL
"""The EventLog's tick: it flushes what waits for the disk and publishes a heartbeat."""
SEND_TIMEOUT_MS = 2000
"""An actor's send fails after this long only if the bus has stopped (its queue is unbounded)."""


def internal_address(name: str) -> str:
    """The in-process address of the control socket for the daemon's own client `name`."""
    return f"inproc://actord.{name}"


def peer_of(frame: zmq.Frame, internal: str | None = None) -> dict[str, Any]:
    """Who sent a frame, as the kernel or the authenticator says, never as the client claims:
    uid, gid and pid of an ipc peer; else its address and, with CURVE, its public key; an
    in-process peer (no address) is the daemon's own client `internal`."""
    try:
        address = str(frame.get("Peer-Address"))
    except zmq.ZMQError:  # inproc: only the daemon's own threads can connect there
        return {"via": internal or "in-process"}
    match = IPC_PEER.fullmatch(address)
    if match:
        uid, gid, pid = (int(part) for part in match.groups())
        return {"uid": uid, "gid": gid, "pid": pid}
    peer: dict[str, Any] = {"address": address}
    try:
        peer["key"] = frame.get("User-Id")
    except zmq.ZMQError:  # set only when an authenticator admitted the peer
        pass
    return peer


def _handler_of(method: str) -> str:
    """The actor that answers a request's method."""
    if method in IMAGE_METHODS:
        return "images"
    return "pods" if method in POD_METHODS else "supervisor"


DIRECT_INBOXES = frozenset({"supervisor", "monitor", "eventlog"})
"""The actors on the exit -> event path, which other actors reach over an inproc socket of
their own (`direct_address`) rather than through this thread: each hop through it is two
thread wake-ups. Messages from the bus itself (client requests, ticks) still reach them by
`tell`; their inbox takes what is on their sockets first (actors/pollinbox.py), so a message
sent to them before a client's reply was sent is handled before the client's next request."""


def direct_address(name: str) -> str:
    return f"inproc://actord.{name}"


class BusSender:
    """An actor's own PUSH sockets: one to the bus, one to each direct inbox; create it, and
    use it, in the actor's thread. All are made at once (an inproc connect may come before
    the bind), so the daemon's fds do not grow with the first message of each kind."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]]) -> None:
        self._context = context
        self._socket = self._push(BUS_ADDRESS)
        self._direct = {name: self._push(direct_address(name)) for name in DIRECT_INBOXES}

    def _push(self, address: str) -> zmq.Socket[bytes]:
        socket = self._context.socket(zmq.PUSH)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.SNDHWM, 0)
        socket.setsockopt(zmq.SNDTIMEO, SEND_TIMEOUT_MS)
        socket.connect(address)
        return socket

    def send(self, destination: str, message: wire.Message) -> None:
        data = pack(wire.encode(message))
        try:
            direct = self._direct.get(destination)
            if direct is not None:
                direct.send(data, zmq.NOBLOCK)  # no peer only once that actor has stopped
            else:
                self._socket.send_multipart([destination.encode(), data])
        except zmq.Again:  # only when the bus or that actor is gone: the daemon is stopping
            logger.warning("%s gone: %s dropped", destination, message.kind)

    def close(self) -> None:
        for socket in (self._socket, *self._direct.values()):
            socket.close()


class Bus(threading.Thread):
    """Moves messages between sockets and actors; never blocks on an actor."""

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        *,
        control_address: str,
        curve_secret_key: bytes | None = None,
        internal: str | None = None,
    ) -> None:
        super().__init__(name="zmq-io", daemon=True)
        self.context = context
        self.control_address = control_address
        self.curve_secret_key = curve_secret_key
        """With it, the control socket is a CURVE server (clients proven by the ZAP handler)."""
        self.internal = internal
        """The daemon's own client the control socket is also bound in-process for (None: none)."""
        self.actors: dict[str, pykka.ActorRef[Any]] = {}
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.guard: PeerGuard | None = None
        """The cap on unproven peers of a network control socket (made with the socket)."""

    def register(self, name: str, ref: pykka.ActorRef[Any]) -> None:
        """Make an actor reachable by name; call before `start()`."""
        self.actors[name] = ref

    def stop(self) -> None:
        """Ask the thread to close its sockets and end (callable from any thread)."""
        sender = BusSender(self.context)
        sender.send("bus", wire.Stop())
        sender.close()
        self.join(timeout=5)

    def run(self) -> None:
        try:
            self._bind()
        except BaseException as exc:
            self.error = exc
            self.ready.set()
            return
        self.ready.set()
        try:
            self._loop()
        except Exception:
            logger.exception("the IO thread failed")
        finally:
            if self.guard is not None:
                self.guard.close()
            for sock in (self.router, self.inbox):
                sock.close(linger=0)

    def _bind(self) -> None:
        self.inbox = self.context.socket(zmq.PULL)
        self.inbox.setsockopt(zmq.RCVHWM, 0)
        self.inbox.bind(BUS_ADDRESS)

        self.router = self.context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.router.setsockopt(zmq.MAXMSGSIZE, MAX_CLIENT_MESSAGE)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.SNDHWM, 1000)
        self.router.setsockopt(zmq.RCVHWM, 1000)
        # on the network, anyone may connect: cap who has not proven itself yet (set up before the bind)
        self.guard = None if self.control_address.startswith("ipc://") else PeerGuard(self.context, self.router)
        if self.curve_secret_key is not None:
            self.router.setsockopt(zmq.CURVE_SERVER, 1)
            self.router.setsockopt(zmq.CURVE_SECRETKEY, self.curve_secret_key)
        self.router.bind(self.control_address)
        if self.internal is not None:
            self.router.bind(internal_address(self.internal))

        self.poller = zmq.Poller()
        if self.guard is not None:  # first: each round refuses the connections over the cap before all else
            self.poller.register(self.guard.events, zmq.POLLIN)
        for sock in (self.inbox, self.router):
            self.poller.register(sock, zmq.POLLIN)

    def _loop(self) -> None:
        next_tick = time.monotonic() + TICK_SECONDS
        while True:
            timeout_ms = max(0, int((next_tick - time.monotonic()) * 1000))
            ready = self.poller.poll(timeout_ms)
            for item, _ in ready:
                try:
                    if item is self.inbox:
                        if not self._drain_inbox():
                            return
                    elif item is self.router:
                        self._drain_router()
                    elif self.guard is not None and item is self.guard.events:
                        self.guard.drain()
                except Exception:
                    logger.exception("the IO thread failed on one event; going on")
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + TICK_SECONDS
                self._tell("eventlog", wire.Tick())

    def _tell(self, name: str, message: wire.Message) -> None:
        ref = self.actors.get(name)
        if ref is None:
            logger.error("message %s for unknown actor %r dropped", message.kind, name)
            return
        try:
            ref.tell(message)
        except pykka.ActorDeadError:
            logger.error("actor %s is dead; message %s dropped", name, message.kind)

    def _drain_inbox(self) -> bool:
        while True:
            try:
                frames = self.inbox.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return True
            if len(frames) != 2:
                logger.error("malformed internal message of %d frames dropped", len(frames))
                continue
            destination = frames[0].decode()
            try:
                message = wire.decode(unpack(frames[1], limit=1 << 30))
            except WireError as exc:
                logger.error("invalid internal message for %s dropped: %s", destination, exc)
                continue
            if destination != "bus":
                token = getattr(message, "token", None)
                if trace.ENABLED and token:
                    trace.stamp(token, f"bus: {message.kind} for {destination}")
                self._tell(destination, message)
            elif isinstance(message, wire.Stop):
                return False
            else:
                self._handle_own(message)

    def _handle_own(self, message: wire.Message) -> None:
        if isinstance(message, wire.ClientReply):
            self._send_reply(message.route, message.body)
        else:
            logger.error("message %s is not for the bus", message.kind)

    def _send_reply(self, route: bytes, body: dict[str, Any]) -> None:
        """Send a reply, or a `too_large` error in its place: the client would drop a bigger frame
        unseen (its MAXMSGSIZE) and wait for an answer that never comes."""
        data = pack(body)
        if len(data) > MAX_CLIENT_MESSAGE:
            logger.warning("reply %s of %d bytes is over the frame limit; sent an error instead",
                           body.get("id"), len(data))
            data = pack(error_reply(body.get("id"), ApiError(
                ErrorCode.TOO_LARGE,
                f"the reply would be {len(data)} bytes, over the {MAX_CLIENT_MESSAGE >> 20} MiB frame limit; "
                "ask for less (page it)",
            )))
        try:
            self.router.send_multipart([route, data], zmq.NOBLOCK)
        except (zmq.Again, zmq.ZMQError) as exc:
            logger.debug("reply %s not delivered: %s", body.get("id"), exc)

    def _drain_router(self) -> None:
        while True:
            try:
                frames = self.router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            if len(frames) != 2:
                if frames:
                    self._send_reply(
                        frames[0].bytes,
                        error_reply(None, ApiError(ErrorCode.BAD_REQUEST, "a request is one frame")),
                    )
                continue
            route, body = frames[0].bytes, frames[1].bytes
            request_id = None
            try:
                decoded = unpack(body)
                raw_id = decoded.get("id")
                request_id = raw_id if isinstance(raw_id, str) and len(raw_id) <= 128 else None
                request_id, method, params = parse_request(decoded)
            except WireError as exc:
                self._refuse(route, None, ApiError(ErrorCode.BAD_REQUEST, str(exc)), frames[1])
                continue
            except ApiError as exc:
                self._refuse(route, request_id, exc, frames[1])
                continue
            self._tell(_handler_of(method),
                       wire.Request(route=route, request_id=request_id, method=method, params=params,
                                    peer=peer_of(frames[1], self.internal)))

    def _refuse(self, route: bytes, request_id: str | None, error: ApiError, frame: zmq.Frame) -> None:
        """Answer a request that never reaches the Supervisor (it does not parse) with `error`."""
        logger.debug("request %s refused: %s: %s", request_id, error.code, error.message,
                     extra=log_fields(request_id=request_id, peer_uid=peer_of(frame, self.internal).get("uid")))
        self._send_reply(route, error_reply(request_id, error))
