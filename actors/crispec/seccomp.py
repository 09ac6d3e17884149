"""The container's seccomp filter: which profile the security context names, read and made
the OCI's `linux.seccomp`.

The profile is named by the `seccomp` SecurityProfile or, when that is absent, the deprecated
`seccomp_profile_path` string (`runtime/default` and `docker/default`, `unconfined`,
`localhost/<path>`); naming none means no filter, as containerd without
`unset_seccomp_profile`. RuntimeDefault is Debian's containers-common profile
(`/usr/share/containers/seccomp.json`, package golang-github-containers-common). A privileged
container gets none.

Profiles come in docker's form (containers/common's: `archMap`, syscall groups with
`includes`/`excludes` by capability and architecture, `name` or `names`) or the OCI's
(`architectures`, `syscalls` with `names`); the OCI's is a subset of docker's, so both are
converted as containers/common's `setupSeccomp` does: the native architecture's entry of
`archMap` and its sub-architectures, a group kept only when the architecture and the bounding
capabilities meet its includes and none of its excludes.
"""

from __future__ import annotations

import json
import os
import platform
import stat
from pathlib import Path
from typing import Any

from cri_api.v1 import api_pb2

from actors.crispec.errors import invalid, not_found

__all__ = ["DEFAULT_PROFILE", "convert_profile", "profile_choice", "seccomp_spec"]

DEFAULT_PROFILE = Path("/usr/share/containers/seccomp.json")
LOCALHOST = "localhost/"
MAX_PROFILE = 1 << 20

GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "s390x": "s390x", "ppc64le": "ppc64le", "i686": "386",
           "armv7l": "arm", "mips64": "mips64"}
"""uname's machine names as Go's GOARCH, the names a profile's includes/excludes use."""
SECCOMP_ARCH = {"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64", "mips64": "SCMP_ARCH_MIPS64",
                "s390x": "SCMP_ARCH_S390X"}
"""The archMap entry of each native architecture (containers/common's `nativeToSeccomp`)."""

Choice = tuple[int, str]
"""A profile type of the CRI and its localhost path ("" for the others)."""


def profile_choice(context: api_pb2.LinuxContainerSecurityContext) -> Choice | None:
    """The profile the context names; None for none."""
    if context.HasField("seccomp"):
        profile = context.seccomp
        if profile.profile_type != api_pb2.SecurityProfile.Localhost and profile.localhost_ref:
            raise invalid("security context seccomp: localhost_ref is set but profile_type is not Localhost")
        if profile.profile_type == api_pb2.SecurityProfile.Localhost:
            return profile.profile_type, _localhost_path(profile.localhost_ref.removeprefix(LOCALHOST),
                                                         "security context seccomp localhost_ref")
        return profile.profile_type, ""
    path = context.seccomp_profile_path
    if not path:
        return None
    if path in ("runtime/default", "docker/default"):
        return api_pb2.SecurityProfile.RuntimeDefault, ""
    if path == "unconfined":
        return api_pb2.SecurityProfile.Unconfined, ""
    if path.startswith(LOCALHOST):
        return api_pb2.SecurityProfile.Localhost, _localhost_path(path.removeprefix(LOCALHOST),
                                                                  "security context seccomp_profile_path")
    raise invalid(f"security context seccomp_profile_path {path!r}: not runtime/default, docker/default, "
                  f"unconfined or localhost/<path>")


def _localhost_path(path: str, field: str) -> str:
    if not path.startswith("/"):
        raise invalid(f"{field} {path!r} is not an absolute path")
    return path


def seccomp_spec(context: api_pb2.LinuxContainerSecurityContext, capabilities: list[str], *,
                 default_profile: Path = DEFAULT_PROFILE) -> dict[str, Any] | None:
    """The spec's `linux.seccomp` for a container with `capabilities` in its bounding set."""
    choice = profile_choice(context)
    if context.privileged or choice is None or choice[0] == api_pb2.SecurityProfile.Unconfined:
        return None
    if choice[0] == api_pb2.SecurityProfile.RuntimeDefault:
        path, field = default_profile, "seccomp RuntimeDefault (package golang-github-containers-common)"
    else:
        path, field = Path(choice[1]), "security context seccomp localhost profile"
    return convert_profile(_load(path, field), capabilities, field)


def _load(path: Path, field: str) -> dict[str, Any]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with open(fd, "rb") as profile:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise invalid(f"{field}: {path} is not a regular file")
            data = profile.read(MAX_PROFILE + 1)
    except FileNotFoundError:
        raise not_found(f"{field}: {path} does not exist") from None
    except OSError as exc:
        raise invalid(f"{field}: {path} cannot be read: {exc.strerror}") from None
    if len(data) > MAX_PROFILE:
        raise invalid(f"{field}: {path} is larger than {MAX_PROFILE} bytes")
    try:
        value: object = json.loads(data)
    except ValueError as exc:
        raise invalid(f"{field}: {path} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise invalid(f"{field}: {path} is not a seccomp profile (not a JSON object)")
    return value


def convert_profile(profile: dict[str, Any], capabilities: list[str], field: str,
                    machine: str | None = None) -> dict[str, Any]:
    """`profile` (docker's form or the OCI's) as the OCI's `linux.seccomp` for this architecture."""
    arch = GO_ARCH.get(machine or platform.machine(), machine or platform.machine())
    architectures = _strings(profile, "architectures", field)
    arch_map = profile.get("archMap") or []
    if architectures and arch_map:
        raise invalid(f"{field}: both architectures and archMap are given, use either")
    if not isinstance(arch_map, list):
        raise invalid(f"{field}: archMap is not a list")
    for entry in arch_map:
        if isinstance(entry, dict) and entry.get("architecture") == SECCOMP_ARCH.get(arch):
            architectures = [entry["architecture"], *_strings(entry, "subArchitectures", field)]
            break
    action = profile.get("defaultAction")
    if not isinstance(action, str) or not action:
        raise invalid(f"{field}: no defaultAction")
    result: dict[str, Any] = {"defaultAction": action}
    if "defaultErrnoRet" in profile:
        result["defaultErrnoRet"] = profile["defaultErrnoRet"]
    if architectures:
        result["architectures"] = architectures
    if isinstance(profile.get("flags"), list):
        result["flags"] = profile["flags"]
    syscalls = profile.get("syscalls") or []
    if not isinstance(syscalls, list):
        raise invalid(f"{field}: syscalls is not a list")
    result["syscalls"] = [rule for group in syscalls if (rule := _syscall_rule(group, arch, capabilities, field))]
    return result


def _syscall_rule(group: object, arch: str, capabilities: list[str], field: str) -> dict[str, Any] | None:
    """One group of the profile as an OCI rule; None when its includes/excludes leave it out."""
    if not isinstance(group, dict):
        raise invalid(f"{field}: a syscalls entry is not an object")
    includes, excludes = group.get("includes") or {}, group.get("excludes") or {}
    if not isinstance(includes, dict) or not isinstance(excludes, dict):
        raise invalid(f"{field}: includes and excludes must be objects")
    if arch in _strings(excludes, "arches", field):
        return None
    if any(cap in capabilities for cap in _strings(excludes, "caps", field)):
        return None
    arches = _strings(includes, "arches", field)
    if arches and arch not in arches:
        return None
    if any(cap not in capabilities for cap in _strings(includes, "caps", field)):
        return None
    names = _strings(group, "names", field)
    if group.get("name"):
        if names:
            raise invalid(f"{field}: a syscalls entry has both name and names")
        names = [str(group["name"])]
    if not names:
        return None
    rule: dict[str, Any] = {"names": names, "action": group.get("action")}
    if not isinstance(rule["action"], str):
        raise invalid(f"{field}: the syscalls entry of {names[0]} has no action")
    if group.get("errnoRet") is not None:
        rule["errnoRet"] = group["errnoRet"]
    args = group.get("args") or []
    if not isinstance(args, list):
        raise invalid(f"{field}: the args of {names[0]} are not a list")
    if args:
        rule["args"] = [{key: arg[key] for key in ("index", "value", "valueTwo", "op") if key in arg}
                        for arg in args if isinstance(arg, dict)]
    return rule


def _strings(where: dict[str, Any], key: str, field: str) -> list[str]:
    value = where.get(key) or []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise invalid(f"{field}: {key} is not a list of strings")
    return list(value)
