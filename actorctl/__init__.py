"""The client side of actord: a request client, an event stream, and the `actorctl` CLI."""

from actorctl.client import CallTimeout, Client, DaemonError, Unreachable

__all__ = ["CallTimeout", "Client", "DaemonError", "Unreachable"]
