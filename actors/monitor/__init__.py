"""The Monitor actor: turns shim reports and shim deaths into exit tasks."""

from actors.monitor.actor import Monitor

__all__ = ["Monitor"]
