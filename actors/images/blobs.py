"""Blobs of an OCI image layout, reached only by a digest that is checked: a name in a
manifest is the image author's, so it never becomes a path unless it is `sha256:<64 hex>`,
and a JSON blob is verified against it before it is believed."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from actors.images.errors import ImageError

__all__ = ["DIGEST", "blob_path", "read_json_blob"]

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def blob_path(layout: Path, digest: object, what: str) -> Path:
    """Where the blob `digest` lies in `layout` (a name that is not a digest is refused)."""
    if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
        raise ImageError(f"{layout}: the {what}'s digest {digest!r} is not sha256:<64 hex digits>")
    return layout / "blobs" / "sha256" / digest.removeprefix("sha256:")


def read_json_blob(layout: Path, digest: object, what: str) -> dict[str, Any]:
    """A JSON object blob of the layout, its digest checked."""
    path = blob_path(layout, digest, what)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"{layout}: cannot read the {what} {digest}: {exc.strerror}") from None
    if f"sha256:{hashlib.sha256(data).hexdigest()}" != digest:
        raise ImageError(f"{layout}: the {what} blob {digest} does not match its digest")
    try:
        value: object = json.loads(data)
    except ValueError:
        raise ImageError(f"{layout}: the {what} {digest} is not JSON") from None
    if not isinstance(value, dict):
        raise ImageError(f"{layout}: the {what} {digest} is not a JSON object")
    return value
