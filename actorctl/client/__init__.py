"""The Python client library of actord: `from actorctl.client import Client`.

    from actorctl.client import Client, NotFound

    with Client("ipc:///run/actord/actord.sock") as client:
        client.start("web1", "/srv/bundles/web")            # -> Container, once its init runs
        client.exec("web1", ["sh", "-c", "echo hi"], name="greet")
        print(client.wait("web1", "greet").status)          # -> ExitResult
        for record in client.logs("web1", "greet"):          # -> LogRecord (stream, timestamp, data)
            print(record.data.decode(), end="")
        for event in client.events(0, container_id="web1"):  # -> Event, none missed, forever
            ...

This is the one public import path; everything listed in `__all__` is its API, and the
docstrings are its reference (docs/client.md is the guide). Results are frozen dataclasses
(`types`), each with the map it was made from in `.raw`; `Client.call(method, params)` reaches
any method with raw params and results (docs/protocol.md). Failures are `ActordError`s
(`errors`): one `DaemonError` subclass per wire code, plus `Unreachable` and `Timeout`.

What it needs: pyzmq and msgpack, imported on the first call, not with this package. It never
imports click or pykka (those are the CLI's and the daemon's), nor anything of the CLI
(`actorctl.cli`, `actorctl.commands`, ...): the CLI is a layer over this package, so a program
can use it with just `pip install pyzmq msgpack` and this source tree on its path, and gets
what `actorctl` shows.

No asyncio variant, on purpose: each call is one short request/reply on a DEALER socket, and
the long waits (`wait`, `events`, `logs(follow=True)`) are loops over those calls and a SUB
socket. From asyncio, run them in a thread with `asyncio.to_thread`, one `Client` per thread
(`client.clone()`; ZeroMQ sockets must not be shared between threads). A zmq.asyncio twin of
every method would double the surface to test and keep in step for no capability gained.
"""

from actorctl.client.api import Client
from actorctl.client.errors import (
    ActordError,
    AlreadyExists,
    BadRequest,
    Busy,
    CallTimeout,
    ClientError,
    Conflict,
    DaemonError,
    ImageFailure,
    InternalError,
    InvalidParams,
    NotFound,
    RuntimeFailure,
    RuntimeTimeout,
    StorageFull,
    Timeout,
    TooLarge,
    UnknownMethod,
    Unreachable,
    UnsupportedVersion,
)
from actorctl.client.images import Image, PullProgress
from actorctl.client.logs import LogStream
from actorctl.client.pods import Pod
from actorctl.client.transport import DEFAULT_ADDRESS, CurveKeys
from actorctl.client.types import (
    Checkpoint,
    Container,
    Event,
    ExitResult,
    Health,
    LogRecord,
    Process,
    RestartState,
    Stats,
    Version,
)

__all__ = [
    "DEFAULT_ADDRESS",
    "ActordError",
    "AlreadyExists",
    "BadRequest",
    "Busy",
    "CallTimeout",
    "Checkpoint",
    "Client",
    "ClientError",
    "Conflict",
    "Container",
    "CurveKeys",
    "DaemonError",
    "Event",
    "ExitResult",
    "Health",
    "Image",
    "ImageFailure",
    "InternalError",
    "InvalidParams",
    "LogRecord",
    "LogStream",
    "NotFound",
    "Pod",
    "Process",
    "PullProgress",
    "RestartState",
    "RuntimeFailure",
    "RuntimeTimeout",
    "Stats",
    "StorageFull",
    "Timeout",
    "TooLarge",
    "UnknownMethod",
    "Unreachable",
    "UnsupportedVersion",
    "Version",
]
