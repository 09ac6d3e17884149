"""actord as a service of the init system: readiness and watchdog (sd_notify), the shims' own
cgroup, and the daemon's health."""
