"""Build a small OCI bundle around a static busybox, for examples, tests and benchmarks.

A rootfs may have been a container's root: anything in it can be a symlink to a
host file planted by that container. So nothing is ever written into an
existing rootfs: a fresh one is built beside it and swapped in (only with
`force`), and config.json is replaced by a rename, which never follows a link.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from actors.images.runtime_spec import default_spec
from actors.treeremoval import remove_tree

__all__ = ["BUSYBOX", "create_bundle", "replace_file"]

BUSYBOX = "/bin/busybox"


def _fill_rootfs(rootfs: Path, busybox: str) -> None:
    """A minimal busybox root in the new, empty directory `rootfs`."""
    for sub in ("bin", "proc", "sys", "dev", "tmp", "etc", "root"):
        (rootfs / sub).mkdir()
    shutil.copy2(busybox, rootfs / "bin" / "busybox")
    applets = subprocess.run([busybox, "--list"], check=True, capture_output=True, text=True).stdout.split()
    for applet in applets:
        link = rootfs / "bin" / applet
        if applet != "busybox":
            link.symlink_to("busybox")
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (rootfs / "etc" / "group").write_text("root:x:0:\n")
    rootfs.chmod(0o755)


def replace_file(path: Path, text: str) -> None:
    """Write `path` through a new file renamed over it: a symlink there is replaced, not followed."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def create_bundle(directory: str | os.PathLike[str], args: list[str], *,
                  busybox: str = BUSYBOX, runtime: str = "runc", terminal: bool = False,
                  mutate: dict[str, Any] | None = None, force: bool = False) -> Path:
    """Write `<directory>/rootfs` (busybox) and `<directory>/config.json` running `args`.

    An existing rootfs is refused unless `force`, which replaces it with a fresh one.
    """
    bundle = Path(directory).resolve()
    if not os.path.exists(busybox):
        raise RuntimeError(f"{busybox} is missing (try: apt-get install busybox-static)")
    rootfs = bundle / "rootfs"
    if os.path.lexists(rootfs) and not force:
        raise FileExistsError(f"{rootfs} already exists; --force replaces it with a fresh one")
    config = default_spec(runtime)
    config["process"]["args"] = args
    config["process"]["terminal"] = terminal
    config["root"]["readonly"] = False
    for key, value in (mutate or {}).items():
        config[key] = value
    bundle.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=".rootfs-new-", dir=bundle))
    try:
        _fill_rootfs(fresh, busybox)
        if os.path.lexists(rootfs):
            old = Path(tempfile.mkdtemp(prefix=".rootfs-old-", dir=bundle))
            os.rename(rootfs, old / "rootfs")  # a symlinked rootfs moves as the link itself
            os.rename(fresh, rootfs)
            remove_tree(old)  # a container's: any depth, symlinks not followed, mounts left and named
        else:
            os.rename(fresh, rootfs)
    except BaseException:
        with contextlib.suppress(OSError):
            remove_tree(fresh, missing_ok=True)
        raise
    replace_file(bundle / "config.json", json.dumps(config, indent=2))
    return bundle
