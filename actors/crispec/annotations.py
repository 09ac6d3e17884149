"""The container's annotations: the CRI's own (`io.kubernetes.cri.*`, as containerd sets them:
which sandbox, pod and image the container belongs to) and the annotations of its config,
filtered.

runc and CRIU read some annotations as instructions, not descriptions: `org.criu.config` names
a config file CRIU (root, on the host) reads at checkpoint and restore, `org.systemd.property.*`
become properties of the container's systemd unit, `run.oci.*` steer crun (hooks, keep
capabilities, seccomp notify). A CRI client is not root on the host, so none of those
prefixes passes; everything else does, as containerd's passthrough does.
"""

from __future__ import annotations

from cri_api.v1 import api_pb2

__all__ = ["FORBIDDEN_PREFIXES", "container_annotations"]

FORBIDDEN_PREFIXES = ("org.criu.", "org.systemd.", "run.oci.")
CRI_PREFIX = "io.kubernetes.cri."


def container_annotations(config: api_pb2.ContainerConfig, pod_config: api_pb2.PodSandboxConfig,
                          sandbox_id: str, image_name: str) -> dict[str, str]:
    """The spec's `annotations`: the config's (without the forbidden ones), then the CRI's."""
    result = {key: value for key, value in config.annotations.items()
              if not any(key.startswith(prefix) for prefix in FORBIDDEN_PREFIXES)}
    result.update({
        CRI_PREFIX + "container-type": "container",
        CRI_PREFIX + "sandbox-id": sandbox_id,
        CRI_PREFIX + "sandbox-namespace": pod_config.metadata.namespace,
        CRI_PREFIX + "sandbox-uid": pod_config.metadata.uid,
        CRI_PREFIX + "sandbox-name": pod_config.metadata.name,
        CRI_PREFIX + "container-name": config.metadata.name,
        CRI_PREFIX + "image-name": image_name,
    })
    return result
