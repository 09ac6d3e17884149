"""Image references as docker reads them, `[DOMAIN/]PATH[:TAG][@DIGEST]`, normalized as docker does.

The grammar is that of github.com/distribution/reference, which docker, containerd and skopeo
parse, written here from its documented form:

    reference        := name [":" tag] ["@" digest]
    name             := [domain "/"] path
    domain           := host [":" port]           host: domain-name | "[" IPv6 address "]"
    domain-name      := domain-component ["." domain-component]*
    domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
    path             := path-component ["/" path-component]*      (at most 255 characters)
    path-component   := [a-z0-9]+ [separator [a-z0-9]+]*           separator: . _ __ or one or more -
    tag              := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest           := algorithm ":" hex                          sha256: 64 lowercase hex digits
                                                                   (sha384: 96, sha512: 128)

Normalizing makes `busybox`, `library/busybox`, `docker.io/busybox` and
`docker.io/library/busybox:latest` one and the same image, as they are to docker: the first
component is the domain only if it holds a `.` or a `:`, is `localhost`, or has uppercase
letters (which no path has); otherwise the domain is `docker.io`, where a path of one
component goes under `library/`. `index.docker.io` is `docker.io`. A reference with neither a
tag nor a digest gets `:latest`; one with both keeps both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["DEFAULT_DOMAIN", "DEFAULT_TAG", "TAG", "InvalidReference", "Reference", "names_registry", "parse_reference"]

DEFAULT_DOMAIN = "docker.io"
"""Docker Hub: the domain of every name that names none."""
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_NAMESPACE = "library/"
"""Where Docker Hub keeps its one-component names (`busybox` is `library/busybox`)."""
LOCALHOST = "localhost"
DEFAULT_TAG = "latest"
PATH_MAX = 255
"""The most characters of a path (the name without its domain), as distribution checks it."""
DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
"""The digest algorithms an image can be named by, and the hex digits each takes."""

_ALPHANUMERIC = "[a-z0-9]+"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:(?:[._]|__|-+){_ALPHANUMERIC})*"
_DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
DOMAIN = re.compile(rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?")
PATH = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
IMAGE_ID = re.compile(r"[a-f0-9]{64}")
"""What docker takes for an image id, never for a name."""

_NAME_RULE = ("a name is lowercase letters and digits separated by '.', '_', '__' or dashes, "
              "in '/'-separated parts, after an optional registry HOST[:PORT]/")


class InvalidReference(ValueError):
    """Text that is no image reference; the message names the text and says why, as docker words it."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"{text!r}: {reason}")
        self.text = text
        self.reason = reason


@dataclass(frozen=True)
class Reference:
    """An image reference, normalized: `domain/path`, and a tag or a digest or both."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None
    """`algorithm:hex`, e.g. `sha256:` and 64 hex digits."""

    @property
    def name(self) -> str:
        """The repository's full name: `docker.io/library/busybox`."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The name as docker shows it: `busybox`, `myorg/app`, `localhost:5000/x` (only what a
        parse would read back the same way: `docker.io/localhost/x` keeps its domain)."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        short = self.path.removeprefix(OFFICIAL_NAMESPACE)
        path = short if "/" not in short else self.path
        return self.name if "/" in path and _is_domain(path.partition("/")[0]) else path

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag is not None else "") + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        """The full normalized form: `docker.io/library/busybox:latest`."""
        return self.name + self._suffix()

    def familiar(self) -> str:
        """Docker's short form: `busybox:latest`, `myorg/app:v1`, `localhost:5000/x:y`."""
        return self.familiar_name + self._suffix()


def _is_domain(component: str) -> bool:
    """Whether docker reads the first of several components as a registry rather than a path."""
    return component == LOCALHOST or "." in component or ":" in component or component.lower() != component


def _split_name(name: str) -> tuple[str, str, str]:
    """Domain and path of a name, as docker splits them; and the path as typed (for messages)."""
    first, slash, rest = name.partition("/")
    if slash and _is_domain(first):
        domain, path = (DEFAULT_DOMAIN if first == LEGACY_DOMAIN else first), rest
    else:
        domain, path = DEFAULT_DOMAIN, name
    typed = path
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_NAMESPACE + path
    return domain, path, typed


def names_registry(text: str) -> bool:
    """Whether the reference `text` names its registry (`localhost:5000/x`, `docker.io/x`) rather
    than leaving it to docker's default or a search list (`busybox`, `team/app`)."""
    first, slash, _ = text.partition("/")
    return bool(slash) and _is_domain(first)


def _check_digest(text: str, digest: str) -> None:
    if not DIGEST.fullmatch(digest):
        raise InvalidReference(text, f"invalid digest format ({digest}): a digest is ALGORITHM:HEX, "
                                     f"such as sha256: and 64 hex digits")
    algorithm, _, hex_digits = digest.partition(":")
    length = DIGEST_HEX_LENGTHS.get(algorithm)
    if length is None:
        raise InvalidReference(text, f"unsupported digest algorithm ({algorithm}): "
                                     f"one of {', '.join(DIGEST_HEX_LENGTHS)}")
    if len(hex_digits) != length:
        raise InvalidReference(text, f"invalid checksum digest length: {algorithm} takes {length} hex digits, "
                                     f"not {len(hex_digits)}")
    if hex_digits.lower() != hex_digits:
        raise InvalidReference(text, "invalid checksum digest format: the hex digits are lowercase")


def parse_reference(text: str, *, name_only: bool = False) -> Reference:
    """`text` parsed and normalized (`busybox` is `docker.io/library/busybox:latest`).

    `name_only`: `text` must be a name alone, no tag nor digest (the reference gets `:latest`).
    InvalidReference says what is wrong with it."""
    if not text:
        raise InvalidReference(text, "invalid reference format: repository name must have at least one component")
    if IMAGE_ID.fullmatch(text):
        raise InvalidReference(text, "invalid repository name: 64 hexadecimal digits are an image id, not a name")
    rest, at, digest = text.partition("@")
    head, colon, tail = rest.rpartition(":")
    name, tag = (head, tail) if colon and "/" not in tail else (rest, None)
    domain, path, typed = _split_name(name)
    if path.lower() != path:
        raise InvalidReference(text, f"invalid reference format: repository name ({typed}) must be lowercase")
    if not DOMAIN.fullmatch(domain) or not PATH.fullmatch(path):
        raise InvalidReference(text, f"invalid reference format: {_NAME_RULE}")
    if len(path) > PATH_MAX:
        raise InvalidReference(text, f"repository name must not be more than {PATH_MAX} characters")
    if tag is not None and not TAG.fullmatch(tag):
        raise InvalidReference(text, f"invalid tag format ({tag}): a tag is 1 to 128 of A-Z a-z 0-9 _ . -, "
                                     f"not starting with . or -")
    if at:
        _check_digest(text, digest)
    if name_only and (tag is not None or at):
        raise InvalidReference(text, "an image name is wanted here, without :TAG or @DIGEST")
    if tag is None and not at:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest if at else None)
