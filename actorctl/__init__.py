"""The client side of actord: the client library (`actorctl.client`, its public API) and the
`actorctl` CLI built on it."""

from actorctl.client import CallTimeout, Client, DaemonError, Unreachable

__all__ = ["CallTimeout", "Client", "DaemonError", "Unreachable"]
