"""A pod's network, as the CRI's RunPodSandbox, StopPodSandbox, RemovePodSandbox and
PodSandboxStatus need it: a network namespace of its own (`netns`), joined to a network by the
host's CNI plugins (`conf` loads the network config as libcni does, `plugin` runs one plugin,
`cni` runs a config's chain and keeps its result in `results`), whether the node's network is
ready (`readiness`) and the network actord installs when the node has none (`default`).

A library: no actor, no daemon state beyond the files its callers point it at.
"""
