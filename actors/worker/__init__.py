"""Worker actors: every blocking call (shim spawn, runc) runs here, with a deadline."""

from actors.worker.actor import Worker

__all__ = ["Worker"]
