"""The Supervisor actor: the only place where container and process state changes."""

from actors.supervisor.actor import Supervisor

__all__ = ["Supervisor"]
