"""The C library, loaded once for every module that calls into it through ctypes (mount,
umount2, inotify, prctl, malloc_trim).

`dlopen(NULL)`: the process's own symbols, glibc's among them. errno is kept per call, so a
failed call's `ctypes.get_errno()` is its own.
"""

from __future__ import annotations

import ctypes

__all__ = ["LIBC"]

LIBC = ctypes.CDLL(None, use_errno=True)
