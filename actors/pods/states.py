"""A pod sandbox's states and the only moves between them, in one place.

        RunPodSandbox                StopPodSandbox
    (none) ---------> READY ---------------------------> NOTREADY --+
                        |    (or its infra container ended)   ^  |    | StopPodSandbox again
                        |                                     |  +----+ (idempotent)
                        | RemovePodSandbox (stops first)      |
                        v                                     | RemovePodSandbox
                     (removed) <-------------------------------+

A pod is written to the store only once it is READY: a RunPodSandbox that fails undoes every
step and leaves no record, so no "creating" state is ever seen. Nothing goes back to READY: a
pod that stopped is removed and run again under a new id (the kubelet's "attempt").
"""

from __future__ import annotations

import enum

__all__ = ["IllegalTransition", "PodState", "check_transition"]


class PodState(enum.Enum):
    """The CRI's PodSandboxState, by the names the CRI gives them."""

    READY = "SANDBOX_READY"
    NOTREADY = "SANDBOX_NOTREADY"


class IllegalTransition(Exception):
    """A move the table below does not allow (a bug of the caller's, never a client's input)."""


REMOVED = None
"""The target of a removal: no state, no record."""

ALLOWED: frozenset[tuple[PodState | None, PodState | None]] = frozenset({
    (None, PodState.READY),                # run
    (PodState.READY, PodState.NOTREADY),   # stop, or the infra container ended
    (PodState.NOTREADY, PodState.NOTREADY),  # stop again
    (PodState.NOTREADY, REMOVED),          # remove (a READY pod is stopped first)
})


def check_transition(current: PodState | None, target: PodState | None) -> None:
    """Raise IllegalTransition unless `current` -> `target` is in ALLOWED (None: no pod)."""
    if (current, target) not in ALLOWED:
        before = "none" if current is None else current.name
        after = "removed" if target is None else target.name
        raise IllegalTransition(f"a pod cannot go from {before} to {after}")
