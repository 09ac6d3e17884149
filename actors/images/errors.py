"""The one error of images: what cannot be used, and why, in words for whoever asked."""

from __future__ import annotations

__all__ = ["ImageError"]


class ImageError(Exception):
    """An image, layout, layer, archive or rootfs that cannot be used; the message says why."""
