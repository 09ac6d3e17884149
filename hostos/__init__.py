"""Linux host primitives shared by the daemon and the shim: no actor, no daemon state, no wire.

The daemon (`actors`) and the shim (`shimproc`) meet only at the wire (`actors.wire`); what
both need of the host itself lives here: the C library handle (`libc`), waits on fds with poll
(`fdwait`), process identity and pidfds (`procinfo`), files written whole or not at all
(`atomicfile`), detaching a mount (`mounts`) and moving a process into cgroups
(`cgroupprocs`). It imports nothing of either side, and stays light: every shim imports it.
"""
