"""The rules of what an image archive may hold (actors.images.archive), on archives built in memory:
what `docker save` and OCI layout tarballs hold is accepted, every way out of the store is
refused with the member named."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest

from actors.images.archive import archive_kind, check_members, member_problem, read_archive
from actors.images.errors import ImageError

HEX = "ab" * 32
OTHER_HEX = "cd" * 32
INDEX = json.dumps({"schemaVersion": 2, "manifests": []}).encode()
MANIFEST = json.dumps([{"Config": f"{HEX}.json", "RepoTags": ["bb:1"], "Layers": [f"{OTHER_HEX}/layer.tar"]}]).encode()

def info(name: str, kind: bytes = tarfile.REGTYPE, content: bytes | str | None = b"") -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type = kind
    if isinstance(content, str):
        member.linkname = content
    elif isinstance(content, bytes) and kind in (tarfile.REGTYPE, tarfile.AREGTYPE):
        member.size = len(content)
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        member.devmajor, member.devminor = 1, 3
    return member


def oci_members(prefix: str = "") -> list[tuple[tarfile.TarInfo, bytes]]:
    return [(info(f"{prefix}blobs", tarfile.DIRTYPE, None), b""),
            (info(f"{prefix}blobs/sha256", tarfile.DIRTYPE, None), b""),
            (info(f"{prefix}blobs/sha256/{HEX}", content=b"{}"), b"{}"),
            (info(f"{prefix}index.json", content=INDEX), INDEX),
            (info(f"{prefix}oci-layout", content=b"{}"), b"{}")]


def docker_members() -> list[tuple[tarfile.TarInfo, bytes]]:
    return [(info(f"{HEX}.json", content=b"{}"), b"{}"),
            (info(OTHER_HEX, tarfile.DIRTYPE, None), b""),
            (info(f"{OTHER_HEX}/layer.tar", content=b"x"), b"x"),
            (info(f"{OTHER_HEX}/json", content=b"{}"), b"{}"),
            (info(f"{OTHER_HEX}/VERSION", content=b"1.0"), b"1.0"),
            (info("manifest.json", content=MANIFEST), MANIFEST),
            (info("repositories", content=b"{}"), b"{}")]


def archive(members: list[tuple[tarfile.TarInfo, bytes]], compress: bool = False) -> io.BytesIO:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member, data in members:
            tar.addfile(member, io.BytesIO(data) if member.isreg() else None)
    return io.BytesIO(gzip.compress(raw.getvalue()) if compress else raw.getvalue())


def test_archive_kinds() -> None:
    assert archive_kind(["oci-layout", "index.json", "blobs/sha256/ab"]) == "oci"
    assert archive_kind(["./oci-layout", "./index.json", "./blobs"]) == "oci"
    assert archive_kind(["manifest.json", "abc.json", "abc/layer.tar"]) == "docker"
    assert archive_kind(["manifest.json", "oci-layout", "index.json"]) == "oci", "docker 25's save is a layout"
    assert archive_kind(["index.json"]) is None
    assert archive_kind(["etc/passwd"]) is None


def test_what_image_archives_hold_is_accepted() -> None:
    assert read_archive(archive(oci_members()), "a.tar") == ("oci", json.loads(INDEX))
    dotted = [(info(".", tarfile.DIRTYPE, None), b""), *oci_members("./")]
    assert read_archive(archive(dotted), "a.tar") == ("oci", json.loads(INDEX)), "as `tar -C DIR .` writes it"
    assert read_archive(archive(docker_members()), "d.tar") == ("docker", json.loads(MANIFEST))
    assert read_archive(archive(docker_members(), compress=True), "d.tar.gz")[0] == "docker"
    docker25 = [*oci_members(), (info("manifest.json", content=MANIFEST), MANIFEST),
                (info("repositories", content=b"{}"), b"{}")]
    assert read_archive(archive(docker25), "d25.tar")[0] == "oci"
    sha512 = [*oci_members(), (info("blobs/sha512", tarfile.DIRTYPE, None), b""),
              (info("blobs/sha512/" + "ef" * 64, content=b""), b"")]
    assert read_archive(archive(sha512), "a.tar")[0] == "oci"


@pytest.mark.parametrize(("member", "complaint"), [
    (info("lnk", tarfile.SYMTYPE, "/etc"), "is a symbolic link (to '/etc')"),
    (info(f"blobs/sha256/{OTHER_HEX}", tarfile.SYMTYPE, f"{HEX}"), "is a symbolic link"),
    (info(f"blobs/sha256/{OTHER_HEX}", tarfile.LNKTYPE, "/etc/shadow"), "is a hard link (to '/etc/shadow')"),
    (info("index.json", tarfile.LNKTYPE, "oci-layout"), "is a hard link"),
    (info("blobs/sha256/null", tarfile.CHRTYPE, None), "is a character device"),
    (info("disk", tarfile.BLKTYPE, None), "is a block device"),
    (info("fifo", tarfile.FIFOTYPE, None), "is a FIFO"),
    (info(f"blobs/sha256/{OTHER_HEX}", tarfile.CONTTYPE), "is a contiguous file"),
    (info(f"blobs/sha256/{OTHER_HEX}", tarfile.GNUTYPE_SPARSE), "is a sparse file"),
    (info("/etc/cron.d/x"), "has an absolute name"),
    (info("/blobs", tarfile.DIRTYPE, None), "has an absolute name"),
    (info("../../../../etc/passwd"), "has a '..' in its name"),
    (info(f"blobs/sha256/../../../{HEX}"), "has a '..' in its name"),
    (info("..", tarfile.DIRTYPE, None), "has a '..' in its name"),
    (info("etc/passwd"), "is not a file of an OCI layout tarball"),
    (info(f"blobs/sha256/{HEX.upper()}"), "is not a file of an OCI layout tarball"),
    (info("blobs/sha256/abc"), "is not a file of an OCI layout tarball"),
    (info(f"blobs/md5/{HEX}"), "is not a file of an OCI layout tarball"),
    (info(f"{HEX}/layer.tar"), "is not a file of an OCI layout tarball"),
    (info("blobs/sha256/x", tarfile.DIRTYPE, None), "is not a directory of an OCI layout tarball"),
    (info("oci-layout/", tarfile.REGTYPE), "is not a file of an OCI layout tarball"),
])
def test_what_leaves_an_oci_archive_is_refused(member: tarfile.TarInfo, complaint: str) -> None:
    assert complaint in (member_problem(member, "oci") or "")
    members = [*oci_members(), (member, b"")]
    with pytest.raises(ImageError) as refused:
        read_archive(archive(members), "evil.tar")
    assert str(refused.value).startswith(f"evil.tar: member {member.name!r} {complaint}")


@pytest.mark.parametrize(("member", "complaint"), [
    (info("lnk", tarfile.SYMTYPE, "/usr/bin"), "is a symbolic link (to '/usr/bin')"),
    (info(f"{OTHER_HEX}/layer.tar", tarfile.SYMTYPE, f"../{HEX}/layer.tar"), "is a symbolic link"),
    (info(f"{HEX}/json", tarfile.LNKTYPE, "/etc/shadow"), "is a hard link"),
    (info("dev", tarfile.CHRTYPE, None), "is a character device"),
    (info("../victim"), "has a '..' in its name"),
    (info("/victim"), "has an absolute name"),
    (info(f"{HEX}/layer.tar/x"), "is not a file of a docker save archive"),
    (info(f"{HEX}/etc/passwd"), "is not a file of a docker save archive"),
    (info(f"{HEX}.json", tarfile.DIRTYPE, None), "is not a directory of a docker save archive"),
    (info("index.json/x"), "is not a file of a docker save archive"),
])
def test_what_leaves_a_docker_archive_is_refused(member: tarfile.TarInfo, complaint: str) -> None:
    assert complaint in (member_problem(member, "docker") or "")
    with pytest.raises(ImageError) as refused:
        read_archive(archive([*docker_members(), (member, b"")]), "evil.tar")
    assert str(refused.value).startswith(f"evil.tar: member {member.name!r} {complaint}")


def test_a_name_twice_is_refused() -> None:
    with pytest.raises(ImageError, match=r"member 'index\.json' appears twice"):
        check_members([info("index.json"), info("oci-layout"), info("index.json")], "oci")
    with pytest.raises(ImageError, match=r"member 'index\.json' appears twice"):
        check_members([info("./index.json"), info("index.json")], "oci")
    with pytest.raises(ImageError, match=r"member 'blobs' appears twice"):
        check_members([info("blobs", tarfile.DIRTYPE, None), info("blobs", tarfile.DIRTYPE, None)], "oci")
    check_members([info("index.json"), info("oci-layout"), info("blobs", tarfile.DIRTYPE, None)], "oci")


def test_what_is_not_an_image_archive() -> None:
    with pytest.raises(ImageError, match=r"x\.tar is neither an OCI layout tarball .* nor a docker save archive"):
        read_archive(archive([(info("hello.txt"), b"")]), "x.tar")
    with pytest.raises(ImageError, match=r"x\.tar is neither .* \(not a tar archive\)"):
        read_archive(io.BytesIO(b"not a tar at all\n" * 64), "x.tar")
    with pytest.raises(ImageError, match=r"x\.tar: manifest\.json is not JSON"):
        read_archive(archive([(info("manifest.json", content=b"{not json"), b"{not json")]), "x.tar")
