"""The IO thread: the only owner of the daemon's ZeroMQ sockets.

Actors never share a socket. Each actor owns one PUSH socket (created in its own
thread) connected to `inproc://actord.bus`; it sends two frames, the name of the
destination and a msgpack message. This thread decodes and validates every
message and hands it to the named actor with `tell`, so actors exchange msgpack
over inproc while pykka keeps their mailboxes. Messages addressed to "bus" are
for this thread: replies for clients, events to publish, fds to poll.

External sockets:
  ROUTER  ipc://<state>/actord.sock   client requests and replies (each at most 1 MiB)
  XPUB    ipc://<state>/events.sock   the event stream (actors/wire/events.py: a topic frame and a
                                      msgpack body, always); subscriptions at most 1 KiB
  PULL    ipc://<state>/shim.sock     exit reports from shims

The control ROUTER is also bound in-process (`inproc://actord.<name>`) for a server of the
daemon's own that speaks to actord as a client does (the CRI's gRPC server, actors/cri/): its
requests take the very route and checks of actorctl's, and are logged as `via=<name>`.

A network control socket (`--listen tcp://...`) gets a short handshake interval and a cap on
the connections still in their handshake (actors/peercap.py): no one who merely reaches the
port can make it hold more than a bounded number of fds.
"""

from __future__ import annotations

import logging
import os
import re
import select
import threading
import time
from typing import Any

import pykka
import zmq
from zmq.utils.monitor import parse_monitor_message

from actors.daemonlog import log_fields
from actors.peercap import PeerGuard
from actors.wire import MAX_CLIENT_MESSAGE, MAX_SHIM_MESSAGE, ApiError, ErrorCode, WireError, pack, unpack
from actors.wire import messages as wire
from actors.wire.api import IMAGE_METHODS, error_reply, parse_request
from actors.wire.codec import MAX_SUBSCRIPTION
from actors.wire.events import HEARTBEAT_INTERVAL, WELCOME_TOPIC, encode, welcome
from shimproc import trace

__all__ = ["BUS_ADDRESS", "Bus", "BusSender", "internal_address"]

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


class BusSender:
    """An actor's own PUSH socket to the bus; create it in the actor's thread."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]]) -> None:
        self._socket = context.socket(zmq.PUSH)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SNDHWM, 0)
        self._socket.setsockopt(zmq.SNDTIMEO, SEND_TIMEOUT_MS)
        self._socket.connect(BUS_ADDRESS)

    def send(self, destination: str, message: wire.Message) -> None:
        try:
            self._socket.send_multipart([destination.encode(), pack(wire.encode(message))])
        except zmq.Again:  # only when the bus is gone: the daemon is stopping
            logger.warning("bus gone: %s for %s dropped", message.kind, destination)

    def close(self) -> None:
        self._socket.close()


class Bus(threading.Thread):
    """Moves messages between sockets and actors; never blocks on an actor."""

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        *,
        control_address: str,
        events_address: str,
        shim_address: str,
        events_hwm: int = 10000,
        events_buffer: int = 0,
        curve_secret_key: bytes | None = None,
        boot: str,
        internal: str | None = None,
    ) -> None:
        super().__init__(name="zmq-io", daemon=True)
        self.context = context
        self.control_address = control_address
        self.events_address = events_address
        self.shim_address = shim_address
        self.events_hwm = events_hwm
        self.events_buffer = events_buffer
        self.curve_secret_key = curve_secret_key
        """With it, the control socket is a CURVE server (clients proven by the ZAP handler)."""
        self.internal = internal
        """The daemon's own client the control socket is also bound in-process for (None: none)."""
        self.welcome = encode(WELCOME_TOPIC, welcome(boot))
        self.actors: dict[str, pykka.ActorRef[Any]] = {}
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.subscribers = 0
        """Connections to the event socket now (read by the metrics from other threads)."""
        self._watched: dict[int, int] = {}
        """raw fd -> key of its watch, for fds armed and not yet ready."""
        self.guard: PeerGuard | None = None
        """The cap on unproven peers of a network control socket (made with the socket)."""
        self._epoll = select.epoll()
        """The raw fds (shim pidfds, OOM eventfds: a few per container) are watched through one
        epoll fd in the ZeroMQ poll, which stays six items long (seven on the network) however many containers run:
        zmq_poll costs O(items) on every round of the loop."""

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
            self.xpub.disable_monitor()
            if self.guard is not None:
                self.guard.close()
            for sock in (self.router, self.xpub, self._xpub_events, self.shims, self.inbox):
                sock.close(linger=0)
            self._epoll.close()

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

        self.xpub = self.context.socket(zmq.XPUB)
        self.xpub.setsockopt(zmq.XPUB_VERBOSE, 1)  # every subscription is seen, each one earns a welcome
        self.xpub.setsockopt(zmq.MAXMSGSIZE, MAX_SUBSCRIPTION)
        self.xpub.setsockopt(zmq.SNDHWM, self.events_hwm)
        if self.events_buffer:
            self.xpub.setsockopt(zmq.SNDBUF, self.events_buffer)
        self.xpub.setsockopt(zmq.LINGER, 0)
        self.xpub.bind(self.events_address)
        # its connects and disconnects: how many subscribers there are
        self._xpub_events = self.xpub.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)

        self.shims = self.context.socket(zmq.PULL)
        self.shims.setsockopt(zmq.MAXMSGSIZE, MAX_SHIM_MESSAGE)
        self.shims.setsockopt(zmq.LINGER, 0)
        self.shims.bind(self.shim_address)

        self.poller = zmq.Poller()
        if self.guard is not None:  # first: each round refuses the connections over the cap before all else
            self.poller.register(self.guard.events, zmq.POLLIN)
        for sock in (self.inbox, self.router, self.xpub, self._xpub_events, self.shims):
            self.poller.register(sock, zmq.POLLIN)
        self.poller.register(self._epoll.fileno(), zmq.POLLIN)

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
                    elif item is self.shims:
                        self._drain_shims()
                    elif item is self.xpub:
                        self._drain_subscriptions()
                    elif item is self._xpub_events:
                        self._count_subscribers()
                    elif self.guard is not None and item is self.guard.events:
                        self.guard.drain()
                    elif item == self._epoll.fileno():
                        for fd, _ in self._epoll.poll(0):
                            self._fd_ready(fd)
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
        elif isinstance(message, wire.Publish):
            try:
                self.xpub.send_multipart(encode(message.topic, message.event), zmq.NOBLOCK)
                if trace.ENABLED and message.event.get("token"):
                    trace.stamp(message.event["token"], "bus: published")
            except zmq.Again:
                logger.debug("event %s not published: subscribers are full", message.topic)
        elif isinstance(message, wire.WatchFd):
            try:
                self._epoll.register(message.fd, select.EPOLLIN)
            except FileExistsError:
                pass  # armed already (re-armed before its readiness was seen)
            self._watched[message.fd] = message.key
        elif isinstance(message, wire.ForgetFd):
            if self._watched.pop(message.fd, None) is not None:
                self._epoll.unregister(message.fd)
            os.close(message.fd)
        else:
            logger.error("message %s is not for the bus", message.kind)

    def _fd_ready(self, fd: int) -> None:
        key = self._watched.pop(fd, None)
        if key is None:
            return  # forgotten earlier in this same round of events
        self._epoll.unregister(fd)
        self._tell("monitor", wire.FdReady(fd=fd, key=key))

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
            self._tell("images" if method in IMAGE_METHODS else "supervisor",
                       wire.Request(route=route, request_id=request_id, method=method, params=params,
                                    peer=peer_of(frames[1], self.internal)))

    def _refuse(self, route: bytes, request_id: str | None, error: ApiError, frame: zmq.Frame) -> None:
        """Answer a request that never reaches the Supervisor (it does not parse) with `error`."""
        logger.debug("request %s refused: %s: %s", request_id, error.code, error.message,
                     extra=log_fields(request_id=request_id, peer_uid=peer_of(frame, self.internal).get("uid")))
        self._send_reply(route, error_reply(request_id, error))

    def _drain_shims(self) -> None:
        while True:
            try:
                frames = self.shims.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                if len(frames) != 1:
                    raise WireError("a shim report is one frame")
                message = wire.decode(unpack(frames[0], limit=MAX_SHIM_MESSAGE))
                if not isinstance(message, wire.ShimExit):
                    raise WireError(f"shims may not send {message.kind}")
            except WireError as exc:
                logger.warning("bad shim report dropped: %s", exc)
                continue
            if trace.ENABLED:
                trace.stamp(message.token, "bus: shim report received")
            self._tell("monitor", message)

    def _count_subscribers(self) -> None:
        """Follow the event socket's connects and disconnects: the metrics show the count."""
        while True:
            try:
                frames = self._xpub_events.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            event = parse_monitor_message(frames)["event"]
            if event == zmq.EVENT_ACCEPTED:
                self.subscribers += 1
            elif event == zmq.EVENT_DISCONNECTED:
                self.subscribers = max(0, self.subscribers - 1)

    def _drain_subscriptions(self) -> None:
        """Take in the subscriptions that arrived, then welcome them all at once: by now the
        XPUB applies them, so a subscriber that receives the welcome knows that every message
        matching them from then on is sent to it. (ZeroMQ's own welcome, XPUB_WELCOME_MSG, is
        one frame, and is sent when the pipe attaches, before any subscription is applied.)
        The welcome reaches every subscriber whose subscriptions match its topic, not just the
        new ones; they ignore it."""
        subscribed = False
        while True:
            try:
                frame = self.xpub.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            subscribed = subscribed or frame[:1] == b"\x01"
        if subscribed:
            try:
                self.xpub.send_multipart(self.welcome, zmq.NOBLOCK)
            except zmq.Again:
                logger.debug("welcome not sent: subscribers are full")
