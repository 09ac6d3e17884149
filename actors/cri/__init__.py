"""The Container Runtime Interface (CRI v1): how the kubelet drives actord.

A gRPC server in the daemon, on a unix socket (`--cri-address`, default
`unix://<state-dir>/cri.sock`), serving the CRI's RuntimeService and ImageService with the
generated stubs of PyPI's `container-runtime-interface-api` (`cri_api.v1`). It holds no state
of its own: every request becomes requests to the daemon, made with actorctl's own client
library over the control socket's in-process endpoint (`daemonlink.py`), so the CRI sees what
actorctl sees and changes what actorctl would change.

    address.py    --cri-address: where the socket goes, or none
    server.py     the gRPC server: bounded threads, streams and message sizes; socket access
    daemonlink.py one actorctl Client per gRPC thread, interrupted when the daemon stops
    runtime.py    RuntimeService: Version, Status, pods, ExecSync, resources, stats; the rest
                  UNIMPLEMENTED for now
    lookup.py     which actord containers are CRI containers (the contract's labels)
    execsync.py   ExecSync: exec, output by stream, the exit code, killed at its timeout
    resources.py  UpdateContainerResources through the daemon's containers.update
    stats.py      ContainerStats, ListContainerStats from the daemon's containers.stats
    podstats.py   PodSandboxStats, ListPodSandboxStats: the sum of a pod's members' cgroups
    images.py     ImageService: pull, status, list, remove, image fs info
    imagemap.py   the daemon's images as CRI Images; image names checked as the CRI wants
    auth.py       a pull's AuthConfig as the daemon's per-pull credentials
    status.py     the daemon's errors as gRPC status codes
    imagefs.py    bytes and inodes the image store uses

grpc is imported only with this package, and the daemon imports it only when the CRI is on.
"""
