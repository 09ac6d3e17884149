"""A real registry for the pull tests: Debian's `docker-registry` (distribution v2) on a free
127.0.0.1 port with its own config and data in a temp dir, images pushed to it with skopeo,
its access log kept to count what clients fetched; and two stand-ins a test can put in its
way: a registry that answers nonsense, and a proxy that holds blob downloads until released."""

from __future__ import annotations

import http.client
import http.server
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

from tests.harness import free_port, wait_until

__all__ = ["BlobGate", "GarbageRegistry", "Registry", "registries_conf"]


def registries_conf(path: Path, *, insecure: tuple[str, ...], search: tuple[str, ...] = (),
                    mirrors: dict[str, str] | None = None) -> Path:
    """A containers-registries.conf(5): plain-HTTP registries, a search list, mirrors (prefix -> mirror)."""
    lines = [f"unqualified-search-registries = [{', '.join(f'{chr(34)}{s}{chr(34)}' for s in search)}]"]
    for location in insecure:
        lines += ["[[registry]]", f'location = "{location}"', "insecure = true"]
    for prefix, mirror in (mirrors or {}).items():
        lines += ["[[registry]]", f'prefix = "{prefix}"', f'location = "{prefix}"', "[[registry.mirror]]",
                  f'location = "{mirror}"', "insecure = true"]
    path.write_text("\n".join(lines) + "\n")
    return path


class Registry:
    """docker-registry on 127.0.0.1:<port>, started here and stopped by its pid; with `user`
    (name, password) it admits only that user (htpasswd, bcrypt)."""

    def __init__(self, user: tuple[str, str] | None = None) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="adr-", dir="/tmp"))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = self.directory / "access.log"
        self.user = user
        auth = ""
        if user is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                import crypt  # bcrypt, as docker-registry's htpasswd wants; Python 3.11 still has it

                hashed = crypt.crypt(user[1], crypt.mksalt(crypt.METHOD_BLOWFISH))
            (self.directory / "htpasswd").write_text(f"{user[0]}:{hashed}\n")
            auth = f"auth:\n  htpasswd:\n    realm: tests\n    path: {self.directory / 'htpasswd'}\n"
        (self.directory / "config.yml").write_text(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.directory / 'data'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.address}\n{auth}")
        (self.directory / "policy.json").write_text('{"default":[{"type":"insecureAcceptAnything"}]}\n')
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(["docker-registry", "serve", str(self.directory / "config.yml")],
                                            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        wait_until(self._answers, 15, 0.05, "docker-registry to answer")

    def _answers(self) -> bool:
        assert self.process.poll() is None, self.log.read_text()
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
            connection.request("GET", "/v2/")
            return connection.getresponse().status in (200, 401)
        except OSError:
            return False

    def push(self, layout: Path, tag: str, repository: str, *, every_platform: bool = False) -> str:
        """Push image `tag` of the OCI layout as `repository` (path:tag); its manifest's digest
        (`every_platform`: a multi-platform index whole, and the index's digest)."""
        digest_file = self.directory / "digest"
        creds = ["--dest-creds", f"{self.user[0]}:{self.user[1]}"] if self.user else []
        whole = ["--all"] if every_platform else []
        subprocess.run(["skopeo", "--policy", str(self.directory / "policy.json"), "copy", "--quiet",
                        "--dest-tls-verify=false", *creds, *whole, "--digestfile", str(digest_file),
                        f"oci:{layout}:{tag}", f"docker://{self.address}/{repository}"], check=True,
                       capture_output=True)
        return digest_file.read_text().strip()

    def fetches(self, pattern: str) -> int:
        """How many GETs of paths matching `pattern` the access log shows."""
        wanted = re.compile(rf'"GET {pattern} HTTP')
        return sum(1 for line in self.log.read_text(errors="replace").splitlines() if wanted.search(line))

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.directory)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    owner: Any


class GarbageRegistry:
    """An HTTP server on 127.0.0.1 that answers every request with 200 and nonsense."""

    def __init__(self) -> None:
        class Nonsense(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = b"\x00\xffthis is not a registry\n" * 4
                self.send_response(200)
                self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_HEAD = do_GET

            def log_message(self, *_: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Nonsense)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class BlobGate:
    """A plain-HTTP proxy to `registry` that holds every blob download until `release()`,
    counting the manifest and blob GETs it forwards."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.released = threading.Event()
        self.blob_asked = threading.Event()
        self.gets: list[str] = []
        self.lock = threading.Lock()
        gate = self

        class Forward(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                if "/blobs/" in self.path:
                    gate.blob_asked.set()
                    gate.released.wait(60)
                if self.command == "GET":
                    with gate.lock:
                        gate.gets.append(self.path)
                upstream = http.client.HTTPConnection("127.0.0.1", registry.port, timeout=30)
                upstream.putrequest(self.command, self.path, skip_accept_encoding=True)
                for key, value in self.headers.items():  # each Accept of several: they name manifest types
                    if key.lower() not in ("host", "connection"):
                        upstream.putheader(key, value)
                upstream.endheaders()
                answer = upstream.getresponse()
                body = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value.replace(registry.address, gate.address))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                upstream.close()

            do_GET = _forward
            do_HEAD = _forward

            def log_message(self, *_: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Forward)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def count(self, part: str) -> int:
        with self.lock:
            return sum(1 for path in self.gets if part in path)

    def release(self) -> None:
        self.released.set()

    def stop(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()

