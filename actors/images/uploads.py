"""Archives uploaded through the API for `images.import`: a client anywhere (ipc, or tcp with
CURVE) streams the file in chunks, each well under the 1 MiB frame limit, into a private file
of the store (`<images>/import-*/archive`, the dir 0700), at most `MAX_UPLOAD` bytes in all.

An upload not finished within `IDLE_SECONDS` of its last chunk (a client that disconnected) is
removed, as is one cancelled or imported (whether or not the import succeeds), and every one a
previous daemon left.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from actors.images.errors import ImageError
from actors.treeremoval import remove_tree

__all__ = ["CHUNK_MAX", "MAX_UPLOAD", "Upload", "Uploads"]

CHUNK_MAX = 512 * 1024
"""The most bytes of one `images.import_chunk`."""
MAX_UPLOAD = 16 << 30
"""The most bytes of one uploaded archive."""
IDLE_SECONDS = 300.0
"""An upload with no chunk for this long is given up."""
UPLOADS_MAX = 16
"""Uploads open at once."""
PREFIX = "import-"


@dataclass
class Upload:
    directory: Path
    size: int = 0
    touched: float = field(default_factory=time.monotonic)

    @property
    def archive(self) -> Path:
        return self.directory / "archive"


class Uploads:
    """The uploads under way, by token (a random name the client gets from `begin`)."""

    def __init__(self, images_dir: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.directory = images_dir
        self.clock = clock
        self.open: dict[str, Upload] = {}

    def sweep_leftovers(self) -> None:
        """Remove what a previous daemon left (uploads and import copies)."""
        for path in self.directory.glob(f"{PREFIX}*"):
            remove_tree(path, missing_ok=True)

    def expire(self) -> None:
        now = self.clock()
        for token in [t for t, upload in self.open.items() if now - upload.touched > IDLE_SECONDS]:
            self.cancel(token)

    def begin(self) -> str:
        self.expire()
        if len(self.open) >= UPLOADS_MAX:
            raise ImageError(f"{UPLOADS_MAX} uploads are open already: finish or cancel one")
        directory = Path(tempfile.mkdtemp(prefix=PREFIX, dir=self.directory))
        token = secrets.token_hex(16)
        self.open[token] = Upload(directory, touched=self.clock())
        return token

    def find(self, token: str) -> Upload:
        upload = self.open.get(token)
        if upload is None:
            raise KeyError(token)
        return upload

    def append(self, token: str, offset: int, data: bytes) -> int:
        """Write `data` at `offset`, which must be the size so far; the new size."""
        upload = self.find(token)
        if offset != upload.size:
            raise ImageError(f"upload {token}: a chunk at offset {offset}, but {upload.size} bytes came so far")
        if upload.size + len(data) > MAX_UPLOAD:
            self.cancel(token)
            raise ImageError(f"an archive of more than {MAX_UPLOAD >> 30} GiB is refused")
        fd = os.open(upload.archive, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        upload.size += len(data)
        upload.touched = self.clock()
        return upload.size

    def take(self, token: str) -> Upload:
        """The finished upload, no longer open: the caller imports it and removes its dir."""
        upload = self.find(token)
        del self.open[token]
        if not upload.archive.exists():
            upload.archive.touch(0o600)
        return upload

    def remove(self, directory: Path) -> None:
        """Remove an import's dir once it is done with (taken uploads, copies of paths)."""
        remove_tree(directory, missing_ok=True)

    def cancel(self, token: str) -> None:
        upload = self.open.pop(token, None)
        if upload is not None:
            remove_tree(upload.directory, missing_ok=True)
