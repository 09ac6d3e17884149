"""The OCI runtime spec (config.json) of a CRI container, made as containerd 1.6's CRI plugin
makes it: pure logic over the CRI's `ContainerConfig` and `PodSandboxConfig`, the image's config,
the container's rootfs (read only for its /etc/passwd and /etc/group) and the pod's facts.

`actors.crispec.spec.container_spec` is the entry; every rule has its own module.
"""
