"""A RunPodSandboxRequest checked and read into what actors/pods needs: the pod's metadata,
namespaces, DNS, port mappings and infra options. Pure: nothing is made here, so a request
refused here has changed nothing.

Refused with INVALID_ARGUMENT, naming the field: missing metadata (name, uid, namespace), a
runtime handler other than "" or "runc", AppArmor (a Localhost profile) or SELinux options on
a host that has neither, a PID namespace of another container (TARGET) or a user namespace
(neither is supported), a systemd-style cgroup parent (actord's runc uses cgroupfs paths), a
port mapping that is no port.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import grpc
from cri_api.v1 import api_pb2

from actors.cri.status import Refusal
from actors.podnet.cni import PortMapping
from actors.pods.infra import DnsConfig
from actors.pods.store import PodMetadata

__all__ = ["RUNTIME_HANDLERS", "PodConfig", "host_security", "read_pod_config"]

RUNTIME_HANDLERS = ("", "runc")
APPARMOR_ENABLED = Path("/sys/module/apparmor/parameters/enabled")
SELINUX_FS = Path("/sys/fs/selinux/enforce")
PROTOCOLS = {api_pb2.TCP: "tcp", api_pb2.UDP: "udp", api_pb2.SCTP: "sctp"}


@dataclass(frozen=True)
class HostSecurity:
    """The Linux security modules the host runs."""

    apparmor: bool
    selinux: bool


def host_security() -> HostSecurity:
    try:
        apparmor = APPARMOR_ENABLED.read_text().strip() == "Y"
    except OSError:
        apparmor = False
    return HostSecurity(apparmor, SELINUX_FS.exists())


@dataclass(frozen=True)
class PodConfig:
    """A checked PodSandboxConfig."""

    metadata: PodMetadata
    runtime_handler: str
    hostname: str
    log_directory: str
    dns: DnsConfig
    port_mappings: tuple[PortMapping, ...]
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    host_network: bool = False
    host_pid: bool = False
    host_ipc: bool = False
    sysctls: dict[str, str] = field(default_factory=dict)
    cgroup_parent: str = ""


def _invalid(message: str) -> Refusal:
    return Refusal(grpc.StatusCode.INVALID_ARGUMENT, message)


def _metadata(config: api_pb2.PodSandboxConfig) -> PodMetadata:
    if not config.HasField("metadata"):
        raise _invalid("PodSandboxConfig.metadata is required (name, uid, namespace)")
    metadata = config.metadata
    for name in ("name", "uid", "namespace"):
        if not getattr(metadata, name):
            raise _invalid(f"PodSandboxConfig.metadata.{name} is required")
    return PodMetadata(metadata.name, metadata.uid, metadata.namespace, metadata.attempt)


def _check_security(context: api_pb2.LinuxSandboxSecurityContext, host: HostSecurity) -> None:
    if context.HasField("apparmor") and context.apparmor.profile_type == api_pb2.SecurityProfile.Localhost \
            and not host.apparmor:
        raise _invalid(f"linux.security_context.apparmor: profile {context.apparmor.localhost_ref!r} asked for, "
                       "but AppArmor is not enabled on this host")
    selinux = context.selinux_options
    if context.HasField("selinux_options") and any((selinux.user, selinux.role, selinux.type, selinux.level)) \
            and not host.selinux:
        raise _invalid("linux.security_context.selinux_options given, but SELinux is not enabled on this host")
    options = context.namespace_options
    if options.pid == api_pb2.TARGET:
        raise _invalid("linux.security_context.namespace_options.pid: TARGET is not supported for a pod sandbox")
    if options.HasField("userns_options") and options.userns_options.mode == api_pb2.POD:
        raise _invalid("linux.security_context.namespace_options.userns_options: user namespaces are not supported")


def _port_mappings(config: api_pb2.PodSandboxConfig) -> tuple[PortMapping, ...]:
    mappings = []
    for index, mapping in enumerate(config.port_mappings):
        if not mapping.host_port:
            continue  # publishes nothing (containerd drops it too)
        protocol = PROTOCOLS.get(mapping.protocol)
        if protocol is None:
            raise _invalid(f"port_mappings[{index}].protocol {mapping.protocol} is not TCP, UDP or SCTP")
        try:
            mappings.append(PortMapping(mapping.host_port, mapping.container_port, protocol, mapping.host_ip))
        except ValueError as exc:
            raise _invalid(f"port_mappings[{index}]: {exc}") from None
    return tuple(mappings)


def read_pod_config(request: api_pb2.RunPodSandboxRequest, host: HostSecurity) -> PodConfig:
    """The request's config, checked; Refusal(INVALID_ARGUMENT) naming what is wrong."""
    if request.runtime_handler not in RUNTIME_HANDLERS:
        raise _invalid(f"runtime_handler {request.runtime_handler!r} is not served: actord runs pods with runc "
                       "(give \"\" or \"runc\")")
    config = request.config
    metadata = _metadata(config)
    linux = config.linux
    security = linux.security_context
    _check_security(security, host)
    parent = linux.cgroup_parent
    if parent and not parent.startswith("/"):
        raise _invalid(f"linux.cgroup_parent {parent!r}: give a cgroupfs path (/kubepods/...); actord's runc "
                       "does not use the systemd cgroup driver")
    options = security.namespace_options
    dns = config.dns_config
    return PodConfig(
        metadata=metadata, runtime_handler=request.runtime_handler, hostname=config.hostname,
        log_directory=config.log_directory,
        dns=DnsConfig(tuple(dns.servers), tuple(dns.searches), tuple(dns.options)),
        port_mappings=_port_mappings(config), labels=dict(config.labels), annotations=dict(config.annotations),
        host_network=options.network == api_pb2.NODE, host_pid=options.pid == api_pb2.NODE,
        host_ipc=options.ipc == api_pb2.NODE, sysctls=dict(linux.sysctls), cgroup_parent=parent.rstrip("/"))
