"""The daemon's own log: text lines for people or JSON lines for log collectors (`--log-format`).

Either way a line carries, where known, what it is about: the container, the process, the
client request and the uid of the peer that sent it. They come from two places: the fields
given at the log call (`extra=log_fields(...)`), and the fields of the message the logging
actor is handling (`log_context`, set by every actor around each message it handles), so
even an unexpected traceback says which container and request it happened on. A field given
at the call wins over the same field of the context.

JSON lines: `time` (RFC 3339, UTC, microseconds: `2024-05-01T12:00:00.123456Z`), `level`
(`debug`, `info`, `warning`, `error`, `critical`), `logger`, `message`, `exception` (the
traceback, when there is one) and the known fields among `container_id`, `process`,
`request_id`, `peer_uid`; a field not known is absent, never null.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import IO, Any

__all__ = ["FIELDS", "FORMATS", "LEVELS", "configure", "log_context", "log_fields"]

FIELDS = ("container_id", "process", "request_id", "peer_uid")
"""What a line may be about, in the order they are shown."""
RECORD_ATTRIBUTES = {name: f"actord_{name}" for name in FIELDS}
"""Where a log record holds each field (a record's own `process` is the pid)."""

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
FORMATS = ("text", "json")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_context: ContextVar[dict[str, Any]] = ContextVar("actord_log_context", default={})  # noqa: B039 (never mutated)
"""The fields of what this thread is handling now (each actor has its own thread)."""


def log_fields(*, container_id: str | None = None, process: str | None = None, request_id: str | None = None,
               peer_uid: int | None = None) -> dict[str, Any]:
    """The known ones of the fields, for a log call's `extra=` (None: not known)."""
    given = {"container_id": container_id, "process": process, "request_id": request_id, "peer_uid": peer_uid}
    return {RECORD_ATTRIBUTES[name]: value for name, value in given.items() if value is not None}


class LogContext:
    """The `with` of `log_context`: a class, not a generator, as it runs around every actor message."""

    __slots__ = ("_fields", "_token")

    def __init__(self, fields: dict[str, Any]) -> None:
        self._fields = fields
        self._token: Token[dict[str, Any]] | None = None

    def __enter__(self) -> None:
        if self._fields:  # nothing to add: the enclosing context stands
            self._token = _context.set({**_context.get(), **self._fields})

    def __exit__(self, *_: object) -> None:
        if self._token is not None:
            _context.reset(self._token)
            self._token = None


def log_context(*, container_id: str | None = None, process: str | None = None, request_id: str | None = None,
                peer_uid: int | None = None) -> LogContext:
    """Every line logged in this thread meanwhile carries these fields (added to those of an
    enclosing context); as record attributes, like `log_fields`."""
    return LogContext(log_fields(container_id=container_id, process=process, request_id=request_id,
                                 peer_uid=peer_uid))


class ContextFields(logging.Filter):
    """Give a record the context's fields that its log call did not give."""

    def filter(self, record: logging.LogRecord) -> bool:
        for attribute, value in _context.get().items():
            if getattr(record, attribute, None) is None:
                setattr(record, attribute, value)
        return True


def _known_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {name: value for name, attribute in RECORD_ATTRIBUTES.items()
            if (value := getattr(record, attribute, None)) is not None}


class TextFormatter(logging.Formatter):
    """The classic line, then ` key=value` for each known field (before any traceback)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        pairs = "".join(f" {name}={_text_value(value)}" for name, value in _known_fields(record).items())
        return super().formatMessage(record) + pairs


def _text_value(value: Any) -> str:
    """A value as it reads, quoted (JSON style) only when it would not read as one word."""
    text = str(value)
    if text and not any(c.isspace() or c in '"=' for c in text):
        return text
    return json.dumps(text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line (see the module's doc for its members)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds")
                            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_known_fields(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure(level: str, log_format: str, stream: IO[str]) -> None:
    """Send every logger's lines at `level` or above to `stream`, in `log_format`; replaces any
    handler set before."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(ContextFields())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
