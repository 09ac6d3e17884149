"""Pulls from registries speaking the OCI distribution API, through Debian's `skopeo`.

skopeo (containers/image) honours containers-registries.conf(5) for `docker://` sources: it is
given `--registries-conf` (actord's `--registries-conf`, else /etc/containers/registries.conf)
and so uses its mirrors (`[[registry.mirror]]`), its plain-HTTP `insecure` registries and its
blocked ones; credentials come from a containers-auth.json file (`--authfile`): the daemon's
`--auth-file`, or, for a pull given credentials of its own, a memfd (credentials.py). What skopeo
leaves to its callers is short-name search: a name typed without a registry is tried against
each of the conf's `unqualified-search-registries` in order (none configured: docker.io, as
docker does), and the image is stored under the name that succeeded. A multi-platform index
is resolved to this machine's platform (skopeo's default), and the digest of the manifest
written is recorded (`--digestfile`).

skopeo's lines on stdout ("Copying blob sha256:...", "Copying config ...", "Writing manifest")
become progress reports.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from actors.images.credentials import Credentials, auth_file_fd
from actors.images.errors import ImageError
from actors.images.reference import Reference, names_registry, parse_reference
from actors.images.store import ImageStore, tool_message

__all__ = ["DEFAULT_REGISTRIES_CONF", "Progress", "PullSettings", "Puller", "search_candidates"]

logger = logging.getLogger(__name__)

DEFAULT_REGISTRIES_CONF = Path("/etc/containers/registries.conf")
PULL_TIMEOUT = 3600.0
"""Seconds one skopeo copy may take before it is killed."""

Progress = Callable[[dict[str, object]], None]
"""Called with each progress report of a pull: `{"stage", "item", "count"}`."""


@dataclass(frozen=True)
class PullSettings:
    """actord's `--registries-conf` and `--auth-file`."""

    registries_conf: Path | None = None
    """None: /etc/containers/registries.conf if it exists, else skopeo's own defaults."""
    auth_file: Path | None = None

    def conf(self) -> Path | None:
        if self.registries_conf is not None:
            return self.registries_conf
        return DEFAULT_REGISTRIES_CONF if DEFAULT_REGISTRIES_CONF.is_file() else None


def search_registries(conf: Path | None) -> list[str]:
    """The conf's `unqualified-search-registries` (ImageError if the file cannot be read as TOML)."""
    if conf is None:
        return []
    try:
        table = tomllib.loads(conf.read_text())
    except OSError as exc:
        raise ImageError(f"cannot read the registries conf {conf}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ImageError(f"the registries conf {conf} is not TOML: {exc}") from None
    found = table.get("unqualified-search-registries") or []
    if not isinstance(found, list) or not all(isinstance(item, str) for item in found):
        raise ImageError(f"{conf}: unqualified-search-registries is not a list of strings")
    return found


def search_candidates(text: str, registries: list[str]) -> list[Reference]:
    """What a reference typed as `text` may name, in the order to try: itself when it names a
    registry; else `REGISTRY/text` for each search registry (docker.io puts one-component names
    under `library/`), or docker.io alone when none is configured."""
    ref = parse_reference(text)
    if names_registry(text) or not registries:
        return [ref]
    found: list[Reference] = []
    for registry in registries:
        candidate = parse_reference(f"{registry}/{text}")
        if candidate not in found:
            found.append(candidate)
    return found


def stored_name(ref: Reference) -> str:
    """The ref name an image pulled as `ref` gets in the layout: NAME:TAG, or NAME@DIGEST when
    pulled by digest alone."""
    return f"{ref.name}:{ref.tag}" if ref.tag else f"{ref.name}@{ref.digest}"


class Puller:
    """Runs `skopeo copy docker://REF oci:<staging>:<name>`, then stores what it fetched."""

    def __init__(self, store: ImageStore, settings: PullSettings) -> None:
        self.store = store
        self.settings = settings
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[str]] = set()
        """The skopeo processes of the pulls under way (killed by `stop`)."""
        self._stopping = False

    def stop(self) -> None:
        """Kill every pull under way, and refuse new ones: the daemon is stopping, and a pull
        thread must not keep its process alive for as long as a registry makes skopeo wait."""
        with self._lock:
            self._stopping = True
            running = list(self._running)
        for tool in running:
            tool.kill()

    def candidates(self, text: str) -> list[Reference]:
        return search_candidates(text, search_registries(self.settings.conf()))

    def pull(self, text: str, progress: Progress, credentials: Credentials | None = None) -> Reference:
        """Pull the image `text` names (trying each search registry for a short name), with
        `credentials` for its registry if given; the reference it is stored under. ImageError
        says what each registry answered."""
        failures = []
        for ref in self.candidates(text):
            try:
                self._copy(ref, progress, credentials)
                return ref
            except ImageError as exc:
                failures.append(str(exc))
        raise ImageError("; ".join(failures))

    def _command(self, ref: Reference, digest_file: Path, staging: Path, auth_fd: int | None) -> list[str]:
        command = ["skopeo"]
        conf = self.settings.conf()
        if conf is not None:
            command += ["--registries-conf", str(conf)]
        command += ["copy", "--digestfile", str(digest_file)]
        if auth_fd is not None:
            command += ["--authfile", f"/proc/self/fd/{auth_fd}"]
        elif self.settings.auth_file is not None:
            command += ["--authfile", str(self.settings.auth_file)]
        # with a tag and a digest, the digest is what is pulled (as docker does)
        source = ref.name + (f"@{ref.digest}" if ref.digest else f":{ref.tag}")
        return [*command, f"docker://{source}", f"oci:{staging}:{stored_name(ref)}"]

    def _copy(self, ref: Reference, progress: Progress, credentials: Credentials | None) -> str:
        """One skopeo copy; the digest of the manifest it wrote."""
        progress({"stage": "resolving", "item": str(ref), "count": 0})
        auth_fd = None if credentials is None else auth_file_fd(credentials, ref.domain, self.settings.auth_file)
        try:
            return self._copy_with(ref, progress, auth_fd)
        finally:
            if auth_fd is not None:
                os.close(auth_fd)

    def _spawn(self, command: list[str], stderr: IO[str], auth_fd: int | None) -> subprocess.Popen[str]:
        with self._lock:
            if self._stopping:
                raise ImageError("actord is stopping")
            try:
                tool = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL,
                                        text=True, pass_fds=() if auth_fd is None else (auth_fd,))
            except FileNotFoundError:
                raise ImageError("skopeo is missing (apt-get install skopeo)") from None
            self._running.add(tool)
            return tool

    def _copy_with(self, ref: Reference, progress: Progress, auth_fd: int | None) -> str:
        with self.store.staged(stored_name(ref)) as staging:
            scratch = staging.parent
            digest_file = Path(scratch) / "digest"
            command = self._command(ref, digest_file, staging, auth_fd)
            logger.info("pulling %s%s", ref, "" if auth_fd is None else " with the credentials given")
            stderr_path = Path(scratch) / "stderr"
            with open(stderr_path, "w+") as stderr:
                tool = self._spawn(command, stderr, auth_fd)
                timed_out = threading.Event()

                def expire() -> None:
                    timed_out.set()
                    tool.kill()

                deadline = threading.Timer(PULL_TIMEOUT, expire)  # skopeo may wait on a registry forever
                deadline.daemon = True
                deadline.start()
                try:
                    count = 0
                    assert tool.stdout is not None
                    for line in tool.stdout:  # "Copying blob sha256:...", "Writing manifest to image destination"
                        words = line.split()
                        if words[:1] in (["Copying"], ["Writing"]):
                            count += 1
                            item = words[2] if len(words) > 2 and words[2].startswith("sha256:") else ""
                            progress({"stage": " ".join(words[:2]).lower(), "item": item, "count": count})
                    status = tool.wait()
                finally:
                    deadline.cancel()
                    with self._lock:
                        self._running.discard(tool)
                if self._stopping:
                    raise ImageError(f"pulling {ref.familiar()} was stopped: actord is stopping")
                if timed_out.is_set():
                    raise ImageError(f"pulling {ref.familiar()} took over {PULL_TIMEOUT:g}s")
                stderr.seek(0)
                said = tool_message(stderr.read())
            if status != 0:
                raise ImageError(f"cannot pull {ref.familiar()}: {said or f'skopeo exit {status}'}")
            digest = digest_file.read_text().strip()
        if ref.digest is not None and ref.digest != digest:
            # a multi-platform index was pulled by its digest: the manifest stored is this platform's
            logger.info("%s resolved to the manifest %s for %s", ref, digest, os.uname().machine)
        return digest
