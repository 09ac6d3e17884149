"""What a shim needs to know, passed from the daemon as one JSON document."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

__all__ = ["ShimConfig"]


@dataclass(frozen=True)
class ShimConfig:
    """Everything one shim needs; plain data so it can cross a socket as JSON."""

    container_id: str
    process_id: str
    token: str
    bundle: str
    procdir: str
    runtime: str
    runtime_root: str
    report_address: str

    @property
    def is_init(self) -> bool:
        return self.process_id == "init"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> ShimConfig:
        return cls(**json.loads(text))
