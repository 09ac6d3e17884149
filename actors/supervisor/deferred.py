"""The marker a request handler returns when its reply will come from a later message."""

DEFERRED = object()
