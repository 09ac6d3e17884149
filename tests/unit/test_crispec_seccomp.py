"""Seccomp of a CRI container without root: which profile the security context names (the
SecurityProfile message or the deprecated string), docker-form profiles converted as
containers/common converts them (arch map, includes and excludes by capability and arch), OCI
form kept, and bad or missing profiles named."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from cri_api.v1 import api_pb2

from actors.crispec.errors import CrispecError, ErrorKind
from actors.crispec.seccomp import DEFAULT_PROFILE, convert_profile
from tests.crispec_inputs import make_spec, security

DOCKER_FORM: dict[str, Any] = {
    "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
    "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
    "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "args": [], "includes": {}, "excludes": {}},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
        {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32"]}},
        {"names": ["sync_file_range2"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["ppc64le"]}},
        {"names": ["mount", "unshare"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["mount", "unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
         "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"name": "chroot", "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_CHROOT"]}},
    ],
}


def rules(profile: dict[str, Any], capabilities: list[str], machine: str = "x86_64") -> dict[str, Any]:
    return convert_profile(profile, capabilities, "test profile", machine)


def test_docker_form_keeps_the_native_arch_and_the_groups_the_capabilities_meet() -> None:
    converted = rules(DOCKER_FORM, ["CAP_SYS_CHROOT"])
    assert converted["defaultAction"] == "SCMP_ACT_ERRNO" and converted["defaultErrnoRet"] == 38
    assert converted["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert converted["syscalls"] == [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
        {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["mount", "unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        {"names": ["chroot"], "action": "SCMP_ACT_ALLOW"}]


def test_with_cap_sys_admin_the_allow_group_replaces_the_errno_group() -> None:
    converted = rules(DOCKER_FORM, ["CAP_SYS_ADMIN"], machine="aarch64")
    assert converted["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    names = [rule["names"] for rule in converted["syscalls"]]
    assert ["mount", "unshare"] in names and ["arch_prctl"] not in names and ["chroot"] not in names
    assert {"names": ["mount", "unshare"], "action": "SCMP_ACT_ALLOW"} in converted["syscalls"]
    assert not any(rule.get("errnoRet") == 1 for rule in converted["syscalls"])


def test_oci_form_is_kept() -> None:
    oci = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
           "flags": ["SECCOMP_FILTER_FLAG_LOG"],
           "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
    assert rules(oci, []) == oci


@pytest.mark.parametrize(("profile", "message"), [
    ({"syscalls": []}, "no defaultAction"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"], "archMap": [{}]},
     "both architectures and archMap"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW"}]},
     "a syscalls entry has both name and names"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": "all"}, "syscalls is not a list"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"]}]}, "the syscalls entry of a has no action"),
])
def test_a_bad_profile_is_named(profile: dict[str, Any], message: str) -> None:
    with pytest.raises(CrispecError, match=f"test profile: {message}"):
        rules(profile, [])


def test_debians_containers_common_profile_converts() -> None:
    """The real RuntimeDefault (bin/install installs golang-github-containers-common)."""
    profile = json.loads(DEFAULT_PROFILE.read_text())
    converted = rules(profile, ["CAP_CHOWN"])
    names = {name for rule in converted["syscalls"] for name in rule["names"]}
    assert {"read", "clone", "arch_prctl"} <= names
    allowed = {name for rule in converted["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW" for name in rule["names"]}
    assert "chroot" not in allowed
    assert {"names": ["chroot"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1} in converted["syscalls"]
    assert "chroot" in {name for rule in rules(profile, ["CAP_SYS_CHROOT"])["syscalls"]
                        if rule["action"] == "SCMP_ACT_ALLOW" for name in rule["names"]}
    assert not any("includes" in rule or "excludes" in rule or "comment" in rule for rule in converted["syscalls"])


def seccomp_of(tmp_path: Path, **context: Any) -> Any:
    return make_spec(tmp_path, security(**context), default_profile=tmp_path / "default.json")["linux"].get("seccomp")


@pytest.fixture
def default_profile(tmp_path: Path) -> Path:
    path = tmp_path / "default.json"
    path.write_text(json.dumps(DOCKER_FORM))
    return path


RUNTIME_DEFAULT = api_pb2.SecurityProfile(profile_type=api_pb2.SecurityProfile.RuntimeDefault)
UNCONFINED = api_pb2.SecurityProfile(profile_type=api_pb2.SecurityProfile.Unconfined)


@pytest.mark.usefixtures("default_profile")
@pytest.mark.parametrize("context", [{"seccomp": RUNTIME_DEFAULT}, {"seccomp_profile_path": "runtime/default"},
                                     {"seccomp_profile_path": "docker/default"}])
def test_runtime_default_is_the_default_profile_for_the_final_capabilities(tmp_path: Path,
                                                                           context: dict[str, Any]) -> None:
    seccomp = seccomp_of(tmp_path, **context)
    assert {"names": ["mount", "unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1} in seccomp["syscalls"]
    assert {"names": ["chroot"], "action": "SCMP_ACT_ALLOW"} in seccomp["syscalls"]
    dropped = seccomp_of(tmp_path, capabilities=api_pb2.Capability(drop_capabilities=["SYS_CHROOT"]), **context)
    assert {"names": ["chroot"], "action": "SCMP_ACT_ALLOW"} not in dropped["syscalls"]


@pytest.mark.usefixtures("default_profile")
@pytest.mark.parametrize("context", [{}, {"seccomp": UNCONFINED}, {"seccomp_profile_path": "unconfined"}])
def test_unconfined_or_nothing_named_is_no_filter(tmp_path: Path, context: dict[str, Any]) -> None:
    assert seccomp_of(tmp_path, **context) is None


def test_the_seccomp_message_wins_over_the_deprecated_string(tmp_path: Path, default_profile: Path) -> None:
    assert seccomp_of(tmp_path, seccomp=UNCONFINED, seccomp_profile_path="runtime/default") is None


def test_localhost_profiles_in_either_form(tmp_path: Path, default_profile: Path) -> None:
    oci = tmp_path / "oci.json"
    oci.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW",
                               "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}))
    message = api_pb2.SecurityProfile(profile_type=api_pb2.SecurityProfile.Localhost, localhost_ref=str(oci))
    assert seccomp_of(tmp_path, seccomp=message)["syscalls"] == [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
    assert seccomp_of(tmp_path, seccomp_profile_path=f"localhost/{default_profile}")["architectures"][0] == \
        "SCMP_ARCH_X86_64"


@pytest.mark.parametrize(("context", "kind", "message"), [
    ({"seccomp_profile_path": "localhost//nonexistent/profile.json"}, ErrorKind.NOT_FOUND,
     "seccomp localhost profile: /nonexistent/profile.json does not exist"),
    ({"seccomp": api_pb2.SecurityProfile(profile_type=api_pb2.SecurityProfile.Localhost,
                                         localhost_ref="relative.json")},
     ErrorKind.INVALID_ARGUMENT, "seccomp localhost_ref 'relative.json' is not an absolute path"),
    ({"seccomp": api_pb2.SecurityProfile(profile_type=api_pb2.SecurityProfile.RuntimeDefault,
                                         localhost_ref="/x.json")},
     ErrorKind.INVALID_ARGUMENT, "localhost_ref is set but profile_type is not Localhost"),
    ({"seccomp_profile_path": "whatever"}, ErrorKind.INVALID_ARGUMENT,
     "seccomp_profile_path 'whatever': not runtime/default"),
    ({"seccomp_profile_path": "runtime/default"}, ErrorKind.NOT_FOUND,
     "seccomp RuntimeDefault .*default.json does not exist"),
])
def test_a_missing_or_bad_profile_is_named(tmp_path: Path, context: dict[str, Any], kind: ErrorKind,
                                           message: str) -> None:
    with pytest.raises(CrispecError, match=message) as caught:
        seccomp_of(tmp_path, **context)
    assert caught.value.kind is kind


def test_a_profile_that_is_not_json_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(CrispecError, match=f"{bad} is not JSON"):
        seccomp_of(tmp_path, seccomp_profile_path=f"localhost/{bad}")


def test_a_profile_that_is_a_fifo_is_refused_unopened_for_reading(tmp_path: Path) -> None:
    """Opening a FIFO to read would wait for a writer for ever."""
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(CrispecError, match=f"{fifo} is not a regular file"):
        seccomp_of(tmp_path, seccomp_profile_path=f"localhost/{fifo}")
