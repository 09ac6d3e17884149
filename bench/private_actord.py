"""The command line of the actord a bench starts: private to the bench's work dir."""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["actord_command"]


def actord_command(state: Path) -> list[str]:
    """actord on `state`, with its root beside it (removed with the bench's work dir), no
    config file, and no CRI: the containerd it is measured against runs without its CRI plugin
    (a CRI costs actord ~14 MB and 7 threads)."""
    return [str(Path(sys.executable).parent / "actord"), "start", "--config", "/dev/null", "--cri-address", "none",
            "--state-dir", str(state), "--root", f"{state}.root"]
