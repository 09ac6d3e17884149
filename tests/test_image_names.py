"""Docker's image names in the store (real actord, runc, skopeo and umoci): images are stored
under their normalized names and found by any of docker's spellings of them, or by digest;
`images list` shows docker's columns; bad references are refused naming them."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from actorctl.client import ImageFailure
from tests.harness import Daemon, wait_until
from tests.oci_images import IMAGE_CONFIG, docker_archive, oci_layout, tar_directory
from tests.test_images import said

AGE = re.compile(r"(\d+d \d+h|\d+h \d\dm|\d+m \d\ds|\d+s) ago")
"""How `images list` prints a creation time: format_duration's, then `ago`."""



def imported(daemon: Daemon, archive: Path, *args: str) -> list[str]:
    done = daemon.ctl("images", "import", "--json", *args, str(archive))
    assert done.returncode == 0, done.stderr
    names: list[str] = json.loads(done.stdout)["imported"]
    return names


def listed(daemon: Daemon) -> list[dict[str, Any]]:
    done = daemon.ctl("images", "list", "--json")
    assert done.returncode == 0, done.stderr
    images: list[dict[str, Any]] = json.loads(done.stdout)
    return images


def runs(daemon: Daemon, container_id: str, image: str) -> None:
    """A container started by `--image image` runs the image's command to a clean exit; then it goes."""
    done = daemon.ctl("containers", "start", "--image", image, container_id)
    assert done.returncode == 0, (image, done.stderr)
    assert said(daemon, container_id)["status"] == 0
    wait_until(lambda: not (daemon.root_dir / "images" / "containers" / container_id).exists())


@pytest.mark.slow
def test_any_spelling_of_a_docker_name_finds_the_image(daemon: Daemon, work: Path, layer: bytes) -> None:
    full = docker_archive(work / "full.tar", "docker.io/library/dimg:v1", IMAGE_CONFIG, [layer])
    short = docker_archive(work / "short.tar", "dimg:v2", IMAGE_CONFIG, [layer])
    assert imported(daemon, full) == ["docker.io/library/dimg:v1"]
    done = daemon.ctl("images", "import", str(short))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "imported dimg:v2\n", "people are shown the familiar name"
    assert [(i["name"], i["tag"]) for i in listed(daemon)] == [("docker.io/library/dimg", "v1"),
                                                             ("docker.io/library/dimg", "v2")]

    for container_id, image in (("short", "dimg:v1"), ("full", "docker.io/library/dimg:v1"),
                                ("library", "library/dimg:v1"), ("v2", "docker.io/library/dimg:v2")):
        runs(daemon, container_id, image)
    with daemon.client() as client:
        client.start("lib", image="index.docker.io/library/dimg:v2")
        assert client.wait("lib", timeout=30).status == 0
    wait_until(lambda: not (daemon.root_dir / "images" / "containers" / "lib").exists())

    done = daemon.ctl("images", "rm", "dimg:v1")
    assert done.returncode == 0, done.stderr
    assert [(i["name"], i["tag"]) for i in listed(daemon)] == [("docker.io/library/dimg", "v2")]
    done = daemon.ctl("containers", "start", "--image", "docker.io/library/dimg:v1", "gone")
    assert done.returncode == 1 and "no image dimg:v1 in the store" in done.stderr
    assert not (daemon.root_dir / "images" / "containers" / "gone").exists()


def test_a_digest_finds_the_image_of_that_manifest(daemon: Daemon, work: Path, layer: bytes) -> None:
    imported(daemon, docker_archive(work / "d.tar", "docker.io/library/dimg:v1", IMAGE_CONFIG, [layer]))
    digest = listed(daemon)[0]["digest"]
    runs(daemon, "bydigest", f"dimg@{digest}")
    runs(daemon, "bytagdigest", f"docker.io/library/dimg:v1@{digest}")

    wrong = "sha256:" + "0" * 64
    for image in (f"dimg@{wrong}", f"dimg:v2@{digest}", f"other@{digest}"):
        done = daemon.ctl("containers", "start", "--image", image, "c1")
        assert done.returncode == 1, done.stdout
        assert f"no image {image} in the store" in done.stderr
    assert not (daemon.root_dir / "images" / "containers" / "c1").exists()

    done = daemon.ctl("images", "rm", f"dimg@{digest}")
    assert done.returncode == 0, done.stderr
    assert listed(daemon) == []


def test_names_a_store_kept_before_normalizing_are_found(daemon: Daemon, work: Path, layer: bytes) -> None:
    archive = docker_archive(work / "d.tar", "dimg:v1", IMAGE_CONFIG, [layer])
    imported(daemon, archive)
    layout = daemon.root_dir / "images" / "oci"
    subprocess.run(["skopeo", "copy", "--quiet", f"docker-archive:{archive}", f"oci:{layout}:old/app:v1"],
                   check=True, capture_output=True)  # as actorctl named it before
    assert [(i["name"], i["tag"]) for i in listed(daemon)] == [("docker.io/library/dimg", "v1"),
                                                             ("docker.io/old/app", "v1")]
    runs(daemon, "old", "docker.io/old/app:v1")
    done = daemon.ctl("images", "rm", "old/app:v1")
    assert done.returncode == 0, done.stderr
    assert [i["name"] for i in listed(daemon)] == ["docker.io/library/dimg"]


def test_images_list_shows_docker_s_columns(daemon: Daemon, work: Path, layer: bytes) -> None:
    created = "2024-01-02T03:04:05.123456789Z"
    imported(daemon, docker_archive(work / "d.tar", "dimg:v1", IMAGE_CONFIG, [layer], created=created))
    imported(daemon, docker_archive(work / "r.tar", "localhost:5000/team/app:rc1", IMAGE_CONFIG, [layer]))
    oci = tar_directory(oci_layout(work / "layout", IMAGE_CONFIG, [layer], tags=("v1",)), work / "web.tar")
    assert imported(daemon, oci) == ["docker.io/library/web:v1"], "a tag alone takes the file's name, normalized"

    images = listed(daemon)
    assert [(i["name"], i["tag"], i["created"]) for i in images] == [
        ("docker.io/library/dimg", "v1", created), ("docker.io/library/web", "v1", None),
        ("localhost:5000/team/app", "rc1", None)]
    blobs = daemon.root_dir / "images" / "oci" / "blobs" / "sha256"
    for image in images:
        manifest = json.loads((blobs / image["digest"].removeprefix("sha256:")).read_bytes())
        assert image["id"] == manifest["config"]["digest"]
        assert image["size"] == manifest["config"]["size"] + sum(part["size"] for part in manifest["layers"])

    done = daemon.ctl("images", "list")
    assert done.returncode == 0, done.stderr
    table = [re.split(r"\s{2,}", line.strip()) for line in done.stdout.splitlines()]
    assert table[0] == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    assert [row[:3] for row in table[1:]] == [[familiar, image["tag"], image["id"].removeprefix("sha256:")[:12]]
                                              for familiar, image in zip(("dimg", "web", "localhost:5000/team/app"),
                                                                         images, strict=True)]
    assert AGE.fullmatch(table[1][3]) and table[2][3] == table[3][3] == "N/A"
    assert all(re.fullmatch(r"\d+(\.\d+)?(B|kB|MB)", row[4]) for row in table[1:]), table
    runs(daemon, "web", "web:v1")


def test_bad_references_are_refused_naming_them(daemon: Daemon, work: Path, layer: bytes) -> None:
    archive = docker_archive(work / "d.tar", "dimg:v1", IMAGE_CONFIG, [layer])
    refused = {
        "UPPER:tag": "invalid reference format: repository name (UPPER) must be lowercase",
        "a//b": "invalid reference format",
        "x:tag with space": "invalid tag format (tag with space)",
        "a" * 300: "repository name must not be more than 255 characters",
        "name@sha256:short": "invalid digest format (sha256:short)",
    }
    for text, complaint in refused.items():
        for args in (("containers", "start", "--image", text, "c1"), ("images", "rm", text),
                     ("images", "import", "--name", text, str(archive))):
            done = daemon.ctl(*args)
            assert done.returncode == 1, (args, done.stdout, done.stderr)
            assert f"{text!r}: {complaint}" in done.stderr, (args, done.stderr)
        with daemon.client() as client, pytest.raises(ImageFailure, match=re.escape(complaint)):
            client.start("c1", image=text)
    done = daemon.ctl("images", "import", "--name", "web:v1", str(archive))
    assert done.returncode == 1 and "'web:v1': an image name is wanted here, without :TAG or @DIGEST" in done.stderr
    ipv6 = docker_archive(work / "v6.tar", "[::1]:5000/x:v1", IMAGE_CONFIG, [layer])
    done = daemon.ctl("images", "import", str(ipv6))
    assert done.returncode == 1 and "an OCI layout cannot name an image whose registry is an IPv6" in done.stderr

    assert listed(daemon) == [] and not (daemon.root_dir / "images" / "containers" / "c1").exists()
    assert imported(daemon, archive) == ["docker.io/library/dimg:v1"], "actord and the store still serve"
