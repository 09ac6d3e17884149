"""The shim: one small process per container process, outliving the daemon.

`shimproc.shim` runs one container process through the OCI runtime
(`shimproc.runtime`, its one-off calls in a helper child: `shimproc.helper`) and
reports its exit; `shimproc.spawner` forks shims from a pre-warmed process so that
starting one costs a fork, not a new interpreter. Of the daemon's code it imports only
the wire (`actors.wire`); the host primitives it shares with the daemon are `hostos`.
"""
