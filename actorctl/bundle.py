"""Build a small OCI bundle around a static busybox, for examples, tests and benchmarks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["BUSYBOX", "create_bundle"]

BUSYBOX = "/bin/busybox"


def create_bundle(directory: str | os.PathLike[str], args: list[str], *,
                  busybox: str = BUSYBOX, runtime: str = "runc", terminal: bool = False,
                  mutate: dict[str, Any] | None = None) -> Path:
    """Write `<directory>/rootfs` (busybox) and `<directory>/config.json` running `args`."""
    bundle = Path(directory).resolve()
    if not os.path.exists(busybox):
        raise RuntimeError(f"{busybox} is missing (try: apt-get install busybox-static)")
    rootfs = bundle / "rootfs"
    for sub in ("bin", "proc", "sys", "dev", "tmp", "etc", "root"):
        (rootfs / sub).mkdir(parents=True, exist_ok=True)
    target = rootfs / "bin" / "busybox"
    if not target.exists():
        shutil.copy2(busybox, target)
    applets = subprocess.run([busybox, "--list"], check=True, capture_output=True, text=True).stdout.split()
    for applet in applets:
        link = rootfs / "bin" / applet
        if not link.is_symlink() and not link.exists():
            link.symlink_to("busybox")
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (rootfs / "etc" / "group").write_text("root:x:0:\n")
    config_path = bundle / "config.json"
    config_path.unlink(missing_ok=True)
    subprocess.run([runtime, "spec", "--bundle", str(bundle)], check=True, capture_output=True)
    config = json.loads(config_path.read_text())
    config["process"]["args"] = args
    config["process"]["terminal"] = terminal
    config["root"]["readonly"] = False
    for key, value in (mutate or {}).items():
        config[key] = value
    config_path.write_text(json.dumps(config, indent=2))
    return bundle
