"""The event socket (`ipc://<state-dir>/events.sock`): its contract, defined once.

Every message on it is two frames, a topic and a msgpack map:

  topic                    body
  container/<id>/<type>    an `EventRecord` (the same map `events.replay` returns)
  daemon/welcome           a `Welcome`: sent once new subscriptions are in effect
  daemon/heartbeat         a `Heartbeat`, every `HEARTBEAT_INTERVAL` seconds
  image/<ref>/<type>       an `ImageEvent`: a pull's progress and outcome, an import, a removal
                           (`<ref>` the reference as normalized, `docker.io/library/busybox:latest`)

A subscription is a topic prefix (ZeroMQ's). The welcome goes out after the daemon has taken
in a batch of new subscriptions, to every subscriber whose subscriptions match its topic:
a subscriber that set its subscriptions (`daemon/welcome` among them, or a prefix of it such
as the empty one) before connecting knows, once a welcome arrives, that every message
published from then on that matches them reaches it (unless it falls behind: a PUB socket
drops for a slow subscriber, which the sequence numbers and the heartbeat reveal).

The daemon side builds bodies with `event_record`, `heartbeat`, `welcome` and `image_event`,
and frames them with `encode`; a client checks what it receives with `decode` (container and
daemon topics; an image topic is a WireError there, so a follower of container events passes
over them) or `decode_image_event`. Image events are not numbered nor stored: they say how
something under way goes, and its reply says how it ended. Both ends import this module,
so that nothing else spells a topic or a field.
"""

from __future__ import annotations

import signal
import time
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal, NotRequired, TypeAlias, TypedDict, TypeGuard, get_args

from actors.wire.codec import MAX_EVENT_MESSAGE, WireError, pack, unpack

__all__ = [
    "CONTAINER_PREFIX",
    "EVENT_FIELDS",
    "EVENT_TYPES",
    "HEARTBEAT_INTERVAL",
    "HEARTBEAT_TOPIC",
    "IMAGE_EVENT_TYPES",
    "IMAGE_PREFIX",
    "KILLED_STATUS",
    "UNKNOWN_STATUS",
    "WELCOME_TOPIC",
    "EventMessage",
    "EventRecord",
    "EventType",
    "Heartbeat",
    "ImageEvent",
    "ImageEventType",
    "Welcome",
    "as_record",
    "container_topic",
    "decode",
    "decode_image_event",
    "encode",
    "event_record",
    "heartbeat",
    "image_event",
    "image_topic",
    "is_event_type",
    "is_record",
    "topic_of",
    "welcome",
]

CONTAINER_PREFIX: Final = "container/"
"""Topics of event records: `container/<id>/<type>`."""
IMAGE_PREFIX: Final = "image/"
"""Topics of image events: `image/<ref>/<type>`."""
WELCOME_TOPIC: Final = "daemon/welcome"
HEARTBEAT_TOPIC: Final = "daemon/heartbeat"

HEARTBEAT_INTERVAL: Final = 1.0
"""Seconds between heartbeats."""

EventType: TypeAlias = Literal["start-container", "start-process", "exit", "oom", "pause", "resume", "restart"]
EVENT_TYPES: Final[frozenset[str]] = frozenset(get_args(EventType))


class EventRecord(TypedDict):
    """One event, as published, stored in the event log and replayed."""

    seq: int
    """Its sequence number: only grows, across daemon restarts too."""
    type: EventType
    id: str
    """The container's id."""
    pid: str | None
    """The process's name in the container (`init` for the container's own), if it concerns one."""
    status: int | None
    """Of an `exit`: the exit code, or 128 + the signal that ended the process."""
    timestamp: float
    """Unix time at which the daemon recorded it."""
    boot: str
    """The boot id of the daemon that recorded it (a new one at each daemon start)."""
    token: NotRequired[str]
    """The daemon's own name for the process (an exit carries it; for tracing and restarts)."""
    attempt: NotRequired[int]
    """Of a `restart` (the restart policy will start the container again after a back-off):
    which restart this is, 1 for the first; `status` is the exit that caused it (None: the
    previous attempt failed to start, or a reboot ended the container)."""


KILLED_STATUS: Final = 128 + signal.SIGKILL
"""The status of an `exit` of a process that was killed (`kill -9`), also when its shim died
and what was left of it had to be killed."""
UNKNOWN_STATUS: Final = 255
"""The status of an `exit` whose real status is lost: its shim died and the process was gone."""

EVENT_FIELDS: Final[tuple[str, ...]] = ("seq", "type", "id", "pid", "status", "timestamp", "attempt")
"""The fields of an `EventRecord` a user is shown (`actorctl events --json`; `attempt` only
where the event has one)."""


class Heartbeat(TypedDict):
    """The daemon is alive; `seq` is the last sequence number it issued (a subscriber whose last
    event is older lost some on the way), `boot` tells a restarted daemon."""

    type: Literal["heartbeat"]
    seq: int
    boot: str
    timestamp: float


class Welcome(TypedDict):
    """New subscriptions are in effect (see the module's doc); `boot` names the daemon."""

    type: Literal["welcome"]
    boot: str


ImageEventType: TypeAlias = Literal["pull-progress", "pulled", "pull-failed", "imported", "removed"]
IMAGE_EVENT_TYPES: Final[frozenset[str]] = frozenset(get_args(ImageEventType))


class ImageEvent(TypedDict):
    """Something that happened to an image: a pull's step (`pull-progress`: `stage` such as
    "resolving", "copying blob", "writing manifest", `item` what it concerns, `count` the steps
    so far), its end (`pulled` with `digest`, `pull-failed` with `error`), an import, a removal."""

    type: ImageEventType
    ref: str
    """The reference as asked for, normalized (a pull's, whatever registry it is found in)."""
    timestamp: float
    stage: NotRequired[str]
    item: NotRequired[str]
    count: NotRequired[int]
    digest: NotRequired[str]
    """Of `pulled`: the manifest's digest."""
    name: NotRequired[str]
    """Of `pulled`: the name it is stored under (a short name's search registry)."""
    error: NotRequired[str]


EventMessage: TypeAlias = EventRecord | Heartbeat | Welcome
"""A decoded message of the event socket; its `type` tells which."""


def is_event_type(value: object) -> TypeGuard[EventType]:
    return isinstance(value, str) and value in EVENT_TYPES


def is_record(message: EventMessage) -> TypeGuard[EventRecord]:
    """Is this decoded message an event (not a welcome or a heartbeat)?"""
    return message["type"] in EVENT_TYPES


def container_topic(container_id: str, event_type: EventType) -> str:
    return f"{CONTAINER_PREFIX}{container_id}/{event_type}"


def event_record(*, seq: int, event_type: EventType, container_id: str, pid: str | None, status: int | None,
                 boot: str, token: str | None = None, attempt: int | None = None) -> EventRecord:
    """A new event, stamped now."""
    record: EventRecord = {"seq": seq, "type": event_type, "id": container_id, "pid": pid, "status": status,
                           "timestamp": time.time(), "boot": boot}
    if token is not None:
        record["token"] = token
    if attempt is not None:
        record["attempt"] = attempt
    return record


def heartbeat(seq: int, boot: str) -> Heartbeat:
    return {"type": "heartbeat", "seq": seq, "boot": boot, "timestamp": time.time()}


def welcome(boot: str) -> Welcome:
    return {"type": "welcome", "boot": boot}


def topic_of(message: EventMessage) -> str:
    if message["type"] == "heartbeat":
        return HEARTBEAT_TOPIC
    if message["type"] == "welcome":
        return WELCOME_TOPIC
    return container_topic(message["id"], message["type"])


def image_topic(ref: str, event_type: ImageEventType) -> str:
    return f"{IMAGE_PREFIX}{ref}/{event_type}"


def image_event(event_type: ImageEventType, ref: str, **fields: Any) -> ImageEvent:
    """A new image event, stamped now; `fields` are its optional members."""
    event: dict[str, Any] = {"type": event_type, "ref": ref, "timestamp": time.time()}
    event.update({name: value for name, value in fields.items() if value is not None})
    return _as_image_event(event)


def _as_image_event(body: Mapping[str, Any]) -> ImageEvent:
    kind, ref, timestamp = body.get("type"), body.get("ref"), body.get("timestamp")
    if kind not in IMAGE_EVENT_TYPES or not isinstance(ref, str) or not _is_number(timestamp):
        raise WireError("not an image event: type, ref or timestamp missing or mistyped")
    event: dict[str, Any] = {"type": kind, "ref": ref, "timestamp": timestamp}
    for name, kind_of in (("stage", str), ("item", str), ("count", int), ("digest", str), ("name", str),
                          ("error", str)):
        value = body.get(name)
        if value is not None:
            if not isinstance(value, kind_of) or isinstance(value, bool):
                raise WireError(f"image event: {name} mistyped")
            event[name] = value
    return typing.cast(ImageEvent, event)


def decode_image_event(frames: Sequence[bytes]) -> ImageEvent:
    """Check one message of an `image/` topic and return its body, or raise `WireError`."""
    if len(frames) != 2:
        raise WireError(f"a message on the event socket is 2 frames, not {len(frames)}")
    topic = frames[0].decode(errors="replace")
    if not topic.startswith(IMAGE_PREFIX):
        raise WireError(f"{topic}: not an image topic")
    event = _as_image_event(unpack(frames[1], limit=MAX_EVENT_MESSAGE))
    if topic != image_topic(event["ref"], event["type"]):
        raise WireError(f"{topic}: the topic does not name the event's image and type")
    return event


def encode(topic: str, body: Mapping[str, Any]) -> list[bytes]:
    """The two frames of one message."""
    return [topic.encode(), pack(body)]


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def decode(frames: Sequence[bytes]) -> EventMessage:
    """Check one message received on the event socket and return its body, or raise `WireError`
    (for anything but two frames, an unknown topic, or a body that does not fit its topic)."""
    if len(frames) != 2:
        raise WireError(f"a message on the event socket is 2 frames, not {len(frames)}")
    try:
        topic = frames[0].decode()
    except UnicodeDecodeError:
        raise WireError("the topic is not UTF-8") from None
    body = unpack(frames[1], limit=MAX_EVENT_MESSAGE)
    if topic == WELCOME_TOPIC:
        boot = body.get("boot")
        if body.get("type") != "welcome" or not isinstance(boot, str):
            raise WireError(f"{topic}: not a welcome")
        return {"type": "welcome", "boot": boot}
    if topic == HEARTBEAT_TOPIC:
        seq, boot, timestamp = body.get("seq"), body.get("boot"), body.get("timestamp")
        if not (body.get("type") == "heartbeat" and _is_int(seq) and isinstance(boot, str) and _is_number(timestamp)):
            raise WireError(f"{topic}: not a heartbeat")
        return {"type": "heartbeat", "seq": seq, "boot": boot, "timestamp": timestamp}
    if not topic.startswith(CONTAINER_PREFIX):
        raise WireError(f"{topic}: unknown topic")
    record = as_record(body)
    if topic != container_topic(record["id"], record["type"]):
        raise WireError(f"{topic}: the topic does not name the event's container and type")
    return record


def as_record(body: Mapping[str, Any]) -> EventRecord:
    """An event record received whole (on the event socket, or in an `events.replay` reply)
    after checking every field, or `WireError`."""
    seq, kind, container_id, pid, status = (body.get(name) for name in ("seq", "type", "id", "pid", "status"))
    timestamp, boot, token = body.get("timestamp"), body.get("boot"), body.get("token")
    if not _is_int(seq) or not is_event_type(kind) or not isinstance(container_id, str):
        raise WireError("not an event record: seq, type or id missing or mistyped")
    if not _is_number(timestamp) or not isinstance(boot, str):
        raise WireError(f"event {seq}: timestamp or boot missing or mistyped")
    if not (pid is None or isinstance(pid, str)) or not (status is None or _is_int(status)):
        raise WireError(f"event {seq}: pid or status mistyped")
    record: EventRecord = {"seq": seq, "type": kind, "id": container_id, "pid": pid, "status": status,
                           "timestamp": timestamp, "boot": boot}
    if isinstance(token, str):
        record["token"] = token
    elif token is not None:
        raise WireError(f"event {seq}: token mistyped")
    attempt = body.get("attempt")
    if _is_int(attempt):
        record["attempt"] = attempt
    elif attempt is not None:
        raise WireError(f"event {seq}: attempt mistyped")
    return record
