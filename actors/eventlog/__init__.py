"""The EventLog actor: numbers, keeps, replays and publishes events."""

from actors.eventlog.actor import EventLog

__all__ = ["EventLog"]
