"""`actor-shim`: run one shim directly, without the spawner (for debugging and fallback)."""

from __future__ import annotations

import argparse
import sys

from actors.wire.shim import ShimConfig
from shimproc.shim import run_shim

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="actor-shim",
        description="Run one container process through the OCI runtime and report its exit. "
        "actord normally forks shims from its spawner; this entry point runs one by hand.",
    )
    parser.add_argument("config", help="the shim configuration as a JSON document")
    parser.add_argument("--ready-fd", type=int, default=-1, help="fd to write the create result to")
    args = parser.parse_args(argv)
    try:
        config = ShimConfig.from_json(args.config)
    except (ValueError, TypeError) as exc:
        parser.error(f"bad configuration: {exc}")
    return run_shim(config, args.ready_fd)


if __name__ == "__main__":
    sys.exit(main())
