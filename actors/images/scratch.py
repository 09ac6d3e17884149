"""Scratch dirs (a layer being unpacked, a bundle being made) carry the pid of the process making
them, so that what a crash left behind can be told from what is being made right now."""

from __future__ import annotations

import os

from hostos.procinfo import start_time

__all__ = ["left_by_a_dead_process", "scratch_tag"]


def scratch_tag() -> str:
    """The end of a scratch dir's prefix: this process's pid and a dash (mkdtemp adds the rest)."""
    return f"{os.getpid()}-"


def left_by_a_dead_process(tag: str) -> bool:
    """Was the scratch dir whose name continues with `tag` (`<pid>-...`) made by a process now gone?"""
    pid = tag.partition("-")[0]
    return pid.isdigit() and int(pid) != os.getpid() and start_time(int(pid)) is None
