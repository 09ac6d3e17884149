"""The security context's capabilities, privileged mode, no_new_privs, read-only root, masked
and read-only paths, and the AppArmor and SELinux options (refused: actord applies neither).

containerd's order: the base's default capabilities; "ALL" in add gives every capability the
host's runtime holds, "ALL" in drop none, then each named one is added or dropped (so add ALL,
drop CHOWN is all but CHOWN); ambient capabilities are cleared. Privileged (only in a
privileged pod) gives every capability, no masked or read-only paths, a writable /sys and
cgroupfs, and leaves seccomp and AppArmor off.
"""

from __future__ import annotations

from typing import Any

from cri_api.v1 import api_pb2

from actors.crispec.base import DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS
from actors.crispec.capabilities import CAPABILITIES, capability_name
from actors.crispec.errors import invalid
from actors.crispec.host import HostFacts

__all__ = ["apply_capabilities", "apply_paths", "apply_privileged", "check_mac_options"]

CAPABILITY_SETS = ("bounding", "effective", "permitted")


def apply_capabilities(spec: dict[str, Any], context: api_pb2.LinuxContainerSecurityContext,
                       host: HostFacts) -> None:
    """Add and drop the context's capabilities (containerd's `WithCapabilities`)."""
    if not context.HasField("capabilities"):
        return
    wanted = context.capabilities
    if list(wanted.add_ambient_capabilities):
        raise invalid("security context capabilities add_ambient_capabilities: ambient capabilities are not "
                      "supported (containerd clears them)")
    sets: dict[str, list[str]] = spec["process"]["capabilities"]
    current = list(sets["bounding"])
    if any(name.upper() == "ALL" for name in wanted.add_capabilities):
        current = host_capabilities(host)
    if any(name.upper() == "ALL" for name in wanted.drop_capabilities):
        current = []
    for name in wanted.add_capabilities:
        if name.upper() == "ALL":
            continue
        full = capability_name(name, "security context capabilities add_capabilities")
        if full not in host.capabilities:
            raise invalid(f"security context capabilities add_capabilities: {name!r} is not in the bounding set "
                          f"of actord on this host, runc cannot give it")
        if full not in current:
            current.append(full)
    dropped = {capability_name(name, "security context capabilities drop_capabilities")
               for name in wanted.drop_capabilities if name.upper() != "ALL"}
    current = [name for name in current if name not in dropped]
    for key in CAPABILITY_SETS:
        sets[key] = list(current)


def host_capabilities(host: HostFacts) -> list[str]:
    """Every capability the host's runtime can give, in the kernel's order."""
    return [name for name in CAPABILITIES if name in host.capabilities]


def apply_paths(spec: dict[str, Any], context: api_pb2.LinuxContainerSecurityContext) -> None:
    """The context's masked and read-only paths, containerd's defaults when it names none.

    proto3 cannot tell an empty list from an absent one: both arrive empty. containerd 1.6 then
    masks nothing (the kubelet always sends its defaults, and empty lists for procMount
    Unmasked); actord keeps its defaults instead, the safe side for a client that leaves them
    out. Only privileged takes them all away."""
    linux = spec["linux"]
    linux["maskedPaths"] = _paths(context.masked_paths, "masked_paths") or list(DEFAULT_MASKED_PATHS)
    linux["readonlyPaths"] = _paths(context.readonly_paths, "readonly_paths") or list(DEFAULT_READONLY_PATHS)


def _paths(paths: Any, field: str) -> list[str]:
    result = [str(path) for path in paths]
    for path in result:
        if not path.startswith("/"):
            raise invalid(f"security context {field}: {path!r} is not an absolute path")
    return result


def apply_privileged(spec: dict[str, Any], context: api_pb2.LinuxContainerSecurityContext,
                     pod_config: api_pb2.PodSandboxConfig, host: HostFacts) -> None:
    """containerd's `WithPrivileged` for a privileged container of a privileged pod (its host
    devices are `devices.apply_host_devices`'s)."""
    if not context.privileged:
        return
    if not pod_config.linux.security_context.privileged:
        raise invalid("security context privileged: a privileged container needs a privileged pod sandbox")
    every = host_capabilities(host)
    for key in CAPABILITY_SETS:
        spec["process"]["capabilities"][key] = list(every)
    spec["linux"]["maskedPaths"] = []
    spec["linux"]["readonlyPaths"] = []
    for mount in spec["mounts"]:
        if mount["type"] in ("sysfs", "cgroup"):
            mount["options"] = [option for option in mount["options"] if option != "ro"]


def check_mac_options(context: api_pb2.LinuxContainerSecurityContext, pod_config: api_pb2.PodSandboxConfig,
                      host: HostFacts) -> None:
    """Refuse AppArmor and SELinux options: with the module absent from the host, as
    containerd does ("apparmor is not supported"), and with it present as well, since actord
    loads no profile and labels nothing. Unconfined is no option: it is always accepted."""
    apparmor = ""
    if context.HasField("apparmor") and context.apparmor.profile_type != api_pb2.SecurityProfile.Unconfined:
        apparmor = api_pb2.SecurityProfile.ProfileType.Name(context.apparmor.profile_type)
    elif not context.HasField("apparmor") and context.apparmor_profile not in ("", "unconfined"):
        apparmor = context.apparmor_profile
    if apparmor:
        reason = "AppArmor is not enabled on this host" if not host.apparmor else "actord applies no AppArmor profile"
        raise invalid(f"security context apparmor {apparmor!r}: {reason}")
    for where, options in (("security context", context.selinux_options),
                           ("pod sandbox security context", pod_config.linux.security_context.selinux_options)):
        if any((options.user, options.role, options.type, options.level)):
            reason = "SELinux is not enabled on this host" if not host.selinux else "actord does no SELinux labelling"
            raise invalid(f"{where} selinux_options: {reason}")
