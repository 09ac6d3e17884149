"""What a shim needs to know, passed from the daemon as one JSON document."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from actors.outputlog import DEFAULT_LIMIT

__all__ = ["ShimConfig"]


@dataclass(frozen=True)
class ShimConfig:
    """Everything one shim needs; plain data so it can cross a socket as JSON.

    `mode` is "create" (a container's init), "exec" (a further process, from
    `<procdir>/process.json`) or "restore" (an init restored from `checkpoint`).
    `bundle` is the runtime bundle: the container's state dir, holding the copy
    of config.json taken at start.
    """

    container_id: str
    process_id: str
    token: str
    bundle: str
    procdir: str
    output_dir: str
    runtime: str
    runtime_root: str
    report_address: str
    control_path: str
    console_path: str
    mode: str = "create"
    tty: bool = False
    stdin: bool = False
    checkpoint: str = ""
    restore_args: list[str] = field(default_factory=list)
    log_limit: int = DEFAULT_LIMIT
    work_path: str = ""
    """For a restore: CRIU's work directory (in the state dir, removed afterwards)."""

    @property
    def is_init(self) -> bool:
        return self.mode != "exec"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> ShimConfig:
        return cls(**json.loads(text))
