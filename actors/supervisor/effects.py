"""What a lifecycle transition asks the Supervisor actor to do: the transitions do no I/O,
they return these, and the actor carries them out in their order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actors.supervisor.phases import Client
from actors.wire import ApiError
from actors.wire.events import EventType
from actors.wire.messages import ExecTask, RuntimeTask, StartTask
from actors.wire.records import ContainerDefinition

__all__ = [
    "ArmAlarm",
    "ClosePidfd",
    "Effect",
    "Emit",
    "ForgetDefinition",
    "LogLine",
    "RemoveContainerDir",
    "RemoveOutput",
    "RemoveProcessDir",
    "Reply",
    "SaveDefinition",
    "Submit",
]


@dataclass(frozen=True)
class Emit:
    """Record and publish an event; `answer` (the reply to a client) goes out once it is on record."""

    event: EventType
    container_id: str
    process: str | None = None
    status: int | None = None
    token: str | None = None
    answer: tuple[Client, Any] | None = None
    attempt: int | None = None
    """Of a `restart`: which restart of the container this is (1: the first)."""


@dataclass(frozen=True)
class Reply:
    client: Client
    error: ApiError


@dataclass(frozen=True)
class Submit:
    """Hand a task to a free worker."""

    task: StartTask | ExecTask | RuntimeTask


@dataclass(frozen=True)
class RemoveProcessDir:
    container_id: str
    process: str


@dataclass(frozen=True)
class RemoveContainerDir:
    container_id: str


@dataclass(frozen=True)
class RemoveOutput:
    token: str


@dataclass(frozen=True)
class ClosePidfd:
    fd: int


@dataclass(frozen=True)
class SaveDefinition:
    """Write a container's definition in the root (its config is kept by the start's worker)."""

    definition: ContainerDefinition


@dataclass(frozen=True)
class ForgetDefinition:
    container_id: str


@dataclass(frozen=True)
class LogLine:
    """A line for the daemon's log (at info), written when the effects before it are done:
    an exit's line after its event is on its way, not ahead of it on the exit path."""

    message: str
    args: tuple[Any, ...]
    fields: dict[str, Any]


@dataclass(frozen=True)
class ArmAlarm:
    """Wake the Supervisor (`due_restarts`) in `delay` seconds."""

    delay: float


Effect = (Emit | Reply | Submit | RemoveProcessDir | RemoveContainerDir | RemoveOutput | ClosePidfd | SaveDefinition
          | ForgetDefinition | ArmAlarm | LogLine)
