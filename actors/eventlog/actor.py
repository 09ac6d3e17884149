"""The EventLog actor.

Every event gets the next sequence number (which only grows, across restarts
too), goes to the log file, then out on the PUB socket, which this actor owns
(actors/eventlog/publisher.py: no hop through the bus thread). On a full disk it goes
out all the same and waits in memory for the file (retried on every event and
every tick); meanwhile the Supervisor is told the storage is degraded, a client
waiting for the change gets `storage_full`, and a process's state is kept until
its exit is on record. Subscribers that miss
some (a PUB drops at its high-water mark) fill the gap with `events.replay`;
the heartbeat carries the last number so a lost tail is noticed as well.
"""

from __future__ import annotations

import logging
from typing import Any

import zmq

from actors.base import Handlers, SocketActor
from actors.eventlog.publisher import EventPublisher
from actors.eventlog.store import EventStore
from actors.metrics import Metrics
from actors.wire import MAX_CLIENT_MESSAGE, ApiError, ErrorCode, WireError, pack, trace
from actors.wire import messages as wire
from actors.wire.api import Params, error_reply, ok_reply
from actors.wire.events import (
    EVENT_TYPES,
    HEARTBEAT_TOPIC,
    EventRecord,
    event_record,
    heartbeat,
    is_event_type,
    topic_of,
)

__all__ = ["EventLog"]

logger = logging.getLogger(__name__)

REPLAY_PAGE = 1000
REPLAY_BUDGET = MAX_CLIENT_MESSAGE // 2
"""Bytes of events per reply page, well under the message limit."""


_CHANGES = {
    "start-container": "container {id} started",
    "start-process": "process {pid} of container {id} started",
    "pause": "container {id} was paused",
    "resume": "container {id} was resumed",
}


def _unrecorded(event: EventRecord, reason: str | None) -> str:
    """What a client is told of a change whose event could not be written yet."""
    change = _CHANGES.get(event["type"], "{type} of container {id}").format(**event)
    return (f"{change}, but its event could not be recorded: {reason}; it is kept in memory "
            "and written when space returns")


class EventLog(SocketActor):
    inbox_name = "eventlog"

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], store: EventStore, boot: str,
                 metrics: Metrics | None, publisher: EventPublisher) -> None:
        super().__init__(context)
        self.publisher = publisher
        self.metrics = metrics
        """Counts the events; None without --metrics-address."""
        if metrics is not None:
            metrics.last_seq.set(store.last_seq)
            metrics.count_subscribers(lambda: publisher.subscribers)
        self.boot = boot
        """This daemon's boot id, in every event and heartbeat."""
        self.store = store
        self.trouble: str | None = None
        """The storage trouble last reported to the Supervisor."""

    def handlers(self) -> Handlers:
        return {wire.Emit: self.on_emit, wire.Tick: self.on_tick, wire.Replay: self.on_replay,
                wire.Publish: self.on_publish}

    def on_start(self) -> None:
        super().on_start()
        self.watch(self.publisher.socket, self.publisher.take_subscriptions)
        self.watch(self.publisher.connections, self.publisher.count_subscribers)

    def on_stop(self) -> None:
        self.publisher.close()
        super().on_stop()

    def on_publish(self, message: wire.Publish) -> None:
        """An event that is not numbered or kept (an image pull's progress): out as it is."""
        self.publisher.publish(message.topic, message.event)

    def on_emit(self, message: wire.Emit) -> None:
        token = message.token
        kind = message.event
        if not is_event_type(kind):
            raise WireError(f"no such event type: {kind!r}")
        event = event_record(seq=self.store.last_seq + 1, event_type=kind, container_id=message.container_id,
                             pid=message.process, status=message.status, boot=self.boot,
                             token=token or None, attempt=message.attempt)
        written = self.store.append(dict(event))
        if trace.ENABLED and token:
            trace.stamp(token, "eventlog: written")
        self.publisher.publish(topic_of(event), dict(event))
        if trace.ENABLED and token:
            trace.stamp(token, "eventlog: published")
        self._recorded(written)
        self._report_storage()
        route, reply = message.route, message.reply
        if route is not None and reply is not None:
            if self.store.unwritten:
                refusal = ApiError(ErrorCode.STORAGE_FULL, _unrecorded(event, self.store.error))
                reply = error_reply(reply.get("id"), refusal)
            self.send("bus", wire.ClientReply(route=route, body=reply))
        if self.metrics is not None:
            self.metrics.recorded(event)  # last: whatever it does, the event is out and the client answered

    def _recorded(self, written: list[dict[str, Any]]) -> None:
        """Exits now on record: the Supervisor may remove their processes' state."""
        for event in written:
            if "token" in event:
                self.send("supervisor", wire.Recorded(token=event["token"]))

    def _report_storage(self) -> None:
        """Tell the Supervisor when the storage trouble starts, changes or ends."""
        trouble = self.store.trouble()
        if trouble == self.trouble:
            return
        if trouble is None:
            logger.info("storage is fine again: every event is on record")
        elif self.trouble is None:
            logger.warning("%s", trouble)
        self.trouble = trouble
        self.send("supervisor", wire.Storage(degraded=trouble is not None, reason=trouble))

    def on_tick(self, _: wire.Tick) -> None:
        self._recorded(self.store.flush())
        self._report_storage()
        self.publisher.publish(HEARTBEAT_TOPIC, dict(heartbeat(self.store.last_seq, self.boot)))

    def on_replay(self, message: wire.Replay) -> None:
        route, request_id = message.route, message.request_id
        try:
            result = self._replay(Params(message.params))
        except ApiError as exc:
            body = error_reply(request_id, exc)
        else:
            body = ok_reply(request_id, result)
        self.send("bus", wire.ClientReply(route=route, body=body))

    def _replay(self, params: Params) -> dict[str, Any]:
        after = params.integer("after", low=0)
        since = params.number("since")
        container_id = params.optional_container_id("id")
        types = params.choices("type", EVENT_TYPES)
        limit = params.integer("limit", low=1, high=REPLAY_PAGE) or REPLAY_PAGE
        start = after or 0
        events: list[dict[str, Any]] = []
        size = 0
        more = False
        for event in self.store.after(start):
            if since is not None and event["timestamp"] < since:
                continue
            if container_id is not None and event["id"] != container_id:
                continue
            if types is not None and event["type"] not in types:
                continue
            encoded = len(pack(event))
            if len(events) >= limit or size + encoded > REPLAY_BUDGET:
                more = True
                break
            events.append(event)
            size += encoded
        # how far this page goes: to the end, or to its last event (`start` if it holds none)
        through = (events[-1]["seq"] if events else start) if more else self.store.last_seq
        return {
            "events": events,
            "first_seq": self.store.first_seq,
            "last_seq": self.store.last_seq,
            "through": through,
            "more": more,
            "truncated": after is not None and after + 1 < self.store.first_seq,
            "boot": self.boot,
        }

