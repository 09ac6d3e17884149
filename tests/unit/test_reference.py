"""Image references against distribution/reference's grammar and docker's normalization: the
examples its documentation and tests give (valid and invalid), ports, IPv6 hosts, digests, case,
lengths, `localhost`, `docker.io/library/`, and familiar forms that read back the same."""

from __future__ import annotations

import pytest

from actors.images.reference import InvalidReference, Reference, parse_reference

SHA256 = "sha256:" + "f" * 64
SHA512 = "sha512:" + "f" * 128
LONG_PATH = "a/" * 127 + "a"
"""255 characters: the longest path there is."""


@pytest.mark.parametrize(("text", "domain", "path", "tag", "digest"), [
    ("test_com", "docker.io", "library/test_com", "latest", None),
    ("test.com:tag", "docker.io", "library/test.com", "tag", None),
    ("test.com:5000", "docker.io", "library/test.com", "5000", None),
    ("test.com/repo:tag", "test.com", "repo", "tag", None),
    ("test:5000/repo", "test:5000", "repo", "latest", None),
    ("test:5000/repo:tag", "test:5000", "repo", "tag", None),
    (f"test:5000/repo@{SHA256}", "test:5000", "repo", None, SHA256),
    (f"test:5000/repo:tag@{SHA256}", "test:5000", "repo", "tag", SHA256),
    ("lowercase:Uppercase", "docker.io", "library/lowercase", "Uppercase", None),
    (f"{LONG_PATH}:tag-puts-this-over-max", "docker.io", LONG_PATH, "tag-puts-this-over-max", None),
    ("sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com", "bar/baz/quux", "latest", None),
    ("sub-dom1.foo.com/bar/baz/quux:some-long-tag", "sub-dom1.foo.com", "bar/baz/quux", "some-long-tag", None),
    ("b.gcr.io/test.example.com/my-app:test.example.com", "b.gcr.io", "test.example.com/my-app",
     "test.example.com", None),
    ("xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com", "myimage", "xn--n3h.com", None),
    (f"xn--7o8h.com/myimage:xn--7o8h.com@{SHA512}", "xn--7o8h.com", "myimage", "xn--7o8h.com", SHA512),
    ("foo_bar.com:8080", "docker.io", "library/foo_bar.com", "8080", None),
    ("foo/foo_bar.com:8080", "docker.io", "foo/foo_bar.com", "8080", None),
    ("192.168.1.1", "docker.io", "library/192.168.1.1", "latest", None),
    ("192.168.1.1:5000", "docker.io", "library/192.168.1.1", "5000", None),
    ("192.168.1.1/repo", "192.168.1.1", "repo", "latest", None),
    ("192.168.1.1:5000/repo:5050", "192.168.1.1:5000", "repo", "5050", None),
    ("[2001:db8::1]/repo", "[2001:db8::1]", "repo", "latest", None),
    ("[2001:db8:1:2:3:4:5:6]/repo:tag", "[2001:db8:1:2:3:4:5:6]", "repo", "tag", None),
    (f"[2001:db8::1]:5000/repo:tag@{SHA256}", "[2001:db8::1]:5000", "repo", "tag", SHA256),
    ("[::1]:5000/repo", "[::1]:5000", "repo", "latest", None),
    ("localhost/repo", "localhost", "repo", "latest", None),
    ("localhost:5000/team/app:rc_1", "localhost:5000", "team/app", "rc_1", None),
    ("index.docker.io/debian", "docker.io", "library/debian", "latest", None),
    ("docker.io/debian", "docker.io", "library/debian", "latest", None),
    ("docker.io/library/foo/bar", "docker.io", "library/foo/bar", "latest", None),
    ("Docker/docker", "Docker", "docker", "latest", None),
    ("a.b-c/d__e---f.g", "a.b-c", "d__e---f.g", "latest", None),
])
def test_the_grammar_and_docker_s_normalization(text: str, domain: str, path: str, tag: str | None,
                                                 digest: str | None) -> None:
    assert parse_reference(text) == Reference(domain, path, tag, digest)


@pytest.mark.parametrize("text", [
    "docker/docker", "library/debian", "debian", "docker.io/docker/docker", "docker.io/library/debian",
    "index.docker.io/docker/docker", "127.0.0.1:5000/library/debian", "192.168.0.1:80", "192.168.0.1:8/debian",
    "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev", "[fc00::1]:5000/docker/docker",
    "[fc00:1:2:3:4:5:6:7]:5000/library/debian", "DOCKER/docker", "docker-rules/docker", "docker---rules/docker",
    "d/docker", "jess/t", "dock__er/docker",
    "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
])
def test_documented_valid_names(text: str) -> None:
    ref = parse_reference(text)
    assert parse_reference(str(ref)) == ref


@pytest.mark.parametrize(("text", "complaint"), [
    ("", "repository name must have at least one component"),
    (":justtag", "invalid reference format"),
    (f"@{SHA256}", "invalid reference format"),
    ("repo@sha256:" + "f" * 34, "invalid checksum digest length: sha256 takes 64 hex digits, not 34"),
    ("validname@invaliddigest:" + "f" * 64, "unsupported digest algorithm (invaliddigest)"),
    ("repo@sha256:" + "F" * 64, "invalid checksum digest format"),
    ("name@sha256:short", "invalid digest format (sha256:short)"),
    ("Uppercase:tag", "repository name (Uppercase) must be lowercase"),
    ("test:5000/Uppercase/lowercase:tag", "repository name (Uppercase/lowercase) must be lowercase"),
    ("docker.io/docker/Docker", "repository name (docker/Docker) must be lowercase"),
    ("a/" * 128 + "a:tag", "repository name must not be more than 255 characters"),
    ("a" * 300, "repository name must not be more than 255 characters"),
    ("aa/asdf$$^/aa", "invalid reference format"),
    ("a//b", "invalid reference format"),
    ("docker///docker", "invalid reference format"),
    ("x:tag with space", "invalid tag format (tag with space)"),
    ("bb:.hidden", "invalid tag format"),
    ("bb:", "invalid tag format"),
    ("bb:" + "t" * 129, "invalid tag format"),
    ("https://github.com/docker/docker", "invalid reference format"),
    ("-docker", "invalid reference format"),
    ("docker-/docker", "invalid reference format"),
    ("____/____", "invalid reference format"),
    ("dock..er/docker", "invalid reference format"),
    ("dock-.er/docker", "invalid reference format"),
    ("docker/", "invalid reference format"),
    ("[2001:db8::1]", "invalid reference format"),
    ("[2001:db8::1]:5000", "invalid reference format"),
    ("[2001:db8::1]:tag", "invalid reference format"),
    ("[fe80::1%eth0]:5000/repo", "invalid reference format"),
    ("fc00::1:5000/debian", "invalid reference format"),
    ("[2001:db8:3:4::192.0.2.33]:5000/debian", "invalid reference format"),
    ("a_b.c/x", "invalid reference format"),
    ("1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a", "an image id, not a name"),
])
def test_documented_invalid_references(text: str, complaint: str) -> None:
    with pytest.raises(InvalidReference) as refused:
        parse_reference(text)
    assert isinstance(refused.value, ValueError)
    assert str(refused.value).startswith(f"{text!r}: "), "the message names the text"
    assert complaint in str(refused.value)


def test_the_longest_path_is_255_characters() -> None:
    assert parse_reference("x/" + "a" * 253).path == "x/" + "a" * 253
    with pytest.raises(InvalidReference, match="more than 255"):
        parse_reference("x/" + "a" * 254)
    assert parse_reference("a" * 247).path == "library/" + "a" * 247, "library/ counts"
    with pytest.raises(InvalidReference, match="more than 255"):
        parse_reference("a" * 248)


@pytest.mark.parametrize(("path", "familiar", "full", "others"), [
    ("fooo/bar", "fooo/bar", "docker.io/fooo/bar", ["index.docker.io/fooo/bar"]),
    ("library/ubuntu", "ubuntu", "docker.io/library/ubuntu", ["library/ubuntu", "docker.io/ubuntu"]),
    ("other/library", "other/library", "docker.io/other/library", []),
    ("private/moonbase", "127.0.0.1:8000/private/moonbase", "127.0.0.1:8000/private/moonbase", []),
    ("privatebase", "example.com:8000/privatebase", "example.com:8000/privatebase", []),
    ("library/ubuntu-12.04-base", "ubuntu-12.04-base", "docker.io/library/ubuntu-12.04-base",
     ["index.docker.io/library/ubuntu-12.04-base"]),
    ("library/foo/bar", "library/foo/bar", "docker.io/library/foo/bar", []),
    ("store/foo/bar", "store/foo/bar", "docker.io/store/foo/bar", []),
    ("bar", "Foo/bar", "Foo/bar", []),
    ("x", "localhost:5000/x", "localhost:5000/x", []),
    ("localhost/x", "docker.io/localhost/x", "docker.io/localhost/x", []),
    ("example.com/x", "docker.io/example.com/x", "docker.io/example.com/x", []),
])
def test_familiar_and_full_names_are_one_image(path: str, familiar: str, full: str, others: list[str]) -> None:
    for text in (familiar, full, *others):
        ref = parse_reference(text)
        assert (ref.path, ref.familiar_name, ref.name) == (path, familiar, full), text


@pytest.mark.parametrize(("text", "full", "familiar"), [
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("myorg/app:v1", "docker.io/myorg/app:v1", "myorg/app:v1"),
    ("localhost:5000/x:y", "localhost:5000/x:y", "localhost:5000/x:y"),
    ("docker.io/library/dimg:v1", "docker.io/library/dimg:v1", "dimg:v1"),
    (f"busybox:latest@{SHA256}", f"docker.io/library/busybox:latest@{SHA256}", f"busybox:latest@{SHA256}"),
    (f"redis@{SHA256}", f"docker.io/library/redis@{SHA256}", f"redis@{SHA256}"),
    ("[::1]:5000/repo:tag", "[::1]:5000/repo:tag", "[::1]:5000/repo:tag"),
])
def test_full_and_familiar_forms_read_back_the_same(text: str, full: str, familiar: str) -> None:
    ref = parse_reference(text)
    assert (str(ref), ref.familiar()) == (full, familiar)
    assert parse_reference(str(ref)) == ref == parse_reference(ref.familiar())


def test_a_name_alone() -> None:
    assert parse_reference("web", name_only=True) == Reference("docker.io", "library/web", "latest")
    for text in ("web:v1", f"web@{SHA256}"):
        with pytest.raises(InvalidReference, match="without :TAG or @DIGEST"):
            parse_reference(text, name_only=True)
