"""Containers of images: start latency and disk used for the 1st and the Nth container of a 2 MB
and a 200 MB image, actord beside containerd's `ctr run` on its overlayfs snapshotter, in the
same run.

    sudo .venv/bin/python bench/images.py [--containers 50] [--json]

The bench builds both images in its work dir (busybox-static and its applets; the large one has
a second layer of 50 files of random bytes, 198 MB that no compression shrinks), writes each as
an OCI layout tarball and imports it into a private actord (the client library's
`import_image`) and a private containerd (`ctr images import --no-unpack`): neither has the
image unpacked before its first container, so each 1st start includes the unpack.

Then, for each image, containers 1..N (each the image's `sleep 1000`) start one after another,
an actord one and a containerd one in turn (a load that comes and goes weighs on both alike):
  * start latency: actord, the library's `start(id, image=...)` until it returns (the init
    runs); containerd, the wall time of `ctr run -d --snapshotter overlayfs IMAGE ID` (a new
    ctr process each time: snapshot prepare, create, start);
  * disk: what the runtime's dirs grew by from just before the 1st start to just after the 1st
    and the Nth (diskuse.py: allocated blocks, each inode once, no mount crossed): actord, its
    root and state dir; containerd, its root, state dir and runc root. That is the unpacked
    layers, the containers' own dirs (overlay upper and work dirs, bundles, runc state) and the
    runtimes' records of them. The content stores (actord's `images/oci`, containerd's
    `io.containerd.content.v1.content`: the compressed blobs as imported) are left out of it and
    shown apart, as what the import added ("content MB");
  * per container: (disk after the Nth - disk after the 1st) / (N - 1).
Then the figures, and actord's over containerd's. Every container is removed after its image's
round (and any left at the end), both runtimes stopped by pid, and the work dir removed; the
bench fails if a shim, a runc container or a mount under the work dir is left.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actorctl.client import ActordError, Client
from tests.harness import Daemon, mounts_under, wait_until
from tests.oci_images import busybox_layer, layer_of, oci_layout, tar_directory

from containerd_baseline import CONTENT_DIR, ContainerdError, PrivateContainerd
from diskuse import disk_bytes
from imagefigures import MB, Row, as_json, table

SLEEP_CONFIG = {"Env": ["PATH=/bin"], "Cmd": ["sleep", "1000"]}
"""Both runtimes run the image's own command: no args given to either."""
RANDOM_FILES = 50
RANDOM_BYTES = 198 * MB
"""The large image's second layer: RANDOM_FILES files of random bytes, this many in all."""
COUNTED = {
    "disk": "growth from just before the 1st start: actord's root and state dir, containerd's root, state dir "
            "and runc root, less the content stores; allocated blocks, hard links once, no mount crossed",
    "content": "what the import added to the content store (actord images/oci, containerd "
               "io.containerd.content.v1.content): the compressed blobs",
}


@dataclass(frozen=True)
class BenchImage:
    """An image the bench built: its label in the table, the name both runtimes store it under
    (NAME:latest) and its OCI layout tarball."""

    label: str
    name: str
    archive: Path


def build_images(work: Path) -> list[BenchImage]:
    """The ~2 MB busybox image and the ~200 MB one (the same layer, then the random files)."""
    busybox = busybox_layer()
    files = [("file", f"data/random-{n:02}", os.urandom(RANDOM_BYTES // RANDOM_FILES)) for n in range(RANDOM_FILES)]
    random_layer = layer_of([("dir", "data", None), *files])
    images = []
    for label, name, layers in (("2 MB", "bench-small", [busybox]), ("200 MB", "bench-large", [busybox, random_layer])):
        layout = oci_layout(work / name, SLEEP_CONFIG, layers)
        archive = tar_directory(layout, work / f"{name}.tar")
        shutil.rmtree(layout)
        images.append(BenchImage(label, f"docker.io/library/{name}", archive))
    return images


class Runtime(Protocol):
    """What the bench does with each runtime."""

    name: str

    def import_image(self, image: BenchImage) -> str:
        """Import the image's archive; the reference to run it by."""
        ...

    def run(self, container_id: str, ref: str) -> None:
        """Start a container of `ref`; return once it runs."""
        ...

    def remove(self, container_id: str) -> None:
        """Kill the container and delete it and its root filesystem."""
        ...

    def settled(self) -> bool:
        """No removed container's root filesystem is left."""
        ...

    def disk(self) -> int:
        """Bytes allocated to the runtime's dirs, less its content store."""
        ...

    def content(self) -> int:
        """Bytes allocated to its content store."""
        ...

    def leftovers(self) -> list[str]:
        """Shims or runc containers still there: none once every container is removed."""
        ...


class Actord:
    """A private actord (its state dir and root in the work dir), driven by the client library."""

    name = "actord"

    def __init__(self, work: Path) -> None:
        self.daemon = Daemon(work / "s")
        try:
            self.daemon.start()
        except BaseException:
            if self.daemon.process is not None:
                self.daemon.stop()
            raise
        self.client = Client(self.daemon.address, timeout=300)
        self.images = self.daemon.root_dir / "images"

    def import_image(self, image: BenchImage) -> str:
        return self.client.import_image(image.archive, name=image.name)[0]

    def run(self, container_id: str, ref: str) -> None:
        self.client.start(container_id, image=ref)

    def remove(self, container_id: str) -> None:
        self.client.remove(container_id, force=True)

    def settled(self) -> bool:
        return not any((self.images / "containers").iterdir())

    def disk(self) -> int:
        return disk_bytes([self.daemon.root_dir, self.daemon.state_dir], exclude=[self.images / "oci"])

    def content(self) -> int:
        return disk_bytes([self.images / "oci"])

    def leftovers(self) -> list[str]:
        return ([f"actord shim {pid}" for pid in self.daemon.live_shims()] +
                [f"actord runc container {item['id']}" for item in self.daemon.runc_containers()])

    def stop(self) -> None:
        self.client.close()
        self.daemon.stop(timeout=30)


class Containerd:
    """The private containerd of containerd_baseline.py, driven by `ctr`."""

    name = "containerd"

    def __init__(self, work: Path) -> None:
        self.containerd = PrivateContainerd(work)
        try:
            self.version = self.containerd.start()
        except BaseException:
            self.containerd.stop()
            raise

    def import_image(self, image: BenchImage) -> str:
        return self.containerd.import_image(image.archive, image.name)

    def run(self, container_id: str, ref: str) -> None:
        self.containerd.run_image(container_id, ref)

    def remove(self, container_id: str) -> None:
        self.containerd.remove(container_id)

    def settled(self) -> bool:
        return not self.containerd.active_snapshots()

    def disk(self) -> int:
        own = self.containerd
        return disk_bytes([own.root, own.state, own.runc_root], exclude=[own.root / CONTENT_DIR])

    def content(self) -> int:
        return disk_bytes([self.containerd.root / CONTENT_DIR])

    def leftovers(self) -> list[str]:
        return ([f"containerd shim {pid}" for pid in self.containerd.shim_pids()] +
                [f"containerd runc container {name}" for name in self.containerd.runc_containers()])

    def stop(self) -> None:
        self.containerd.stop()


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def measure(image: BenchImage, runtimes: Sequence[Runtime], count: int, started: dict[str, list[str]]) -> list[Row]:
    """One image's round: import it into each runtime, start `count` containers of it on each (in
    turn), measure, then remove them all. `started` gets each container id as it is asked for."""
    refs, content = {}, {}
    for runtime in runtimes:
        before = runtime.content()
        began = time.perf_counter()
        refs[runtime.name] = runtime.import_image(image)
        content[runtime.name] = runtime.content() - before
        say(f"{image.label}: imported into {runtime.name} in {time.perf_counter() - began:.1f}s")
    base = {runtime.name: runtime.disk() for runtime in runtimes}
    first: dict[str, tuple[float, int]] = {}
    last: dict[str, tuple[float, int]] = {}
    for n in range(1, count + 1):
        for runtime in runtimes:
            # ids differ between the runtimes: runc names each container's cgroup after its id
            container_id = f"{runtime.name}-{image.name.rsplit('/', 1)[-1]}-{n}"
            started[runtime.name].append(container_id)
            began = time.perf_counter()
            runtime.run(container_id, refs[runtime.name])
            elapsed = time.perf_counter() - began
            if n in (1, count):
                figures = (elapsed, runtime.disk() - base[runtime.name])
                first.setdefault(runtime.name, figures)
                last[runtime.name] = figures
    say(f"{image.label}: {count} containers started on each; removing them")
    for runtime in runtimes:
        remove_all(runtime, started[runtime.name])
    return [Row(image.label, runtime.name, count, first[runtime.name][0], last[runtime.name][0],
                first[runtime.name][1], last[runtime.name][1], content[runtime.name]) for runtime in runtimes]


def remove_all(runtime: Runtime, container_ids: list[str]) -> None:
    """Remove these containers (each id leaves the list once removed) and wait until their root
    filesystems are gone."""
    while container_ids:
        runtime.remove(container_ids[-1])
        container_ids.pop()
    wait_until(runtime.settled, 60, 0.05, f"{runtime.name}'s removed containers to go")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--containers", type=int, default=50, help="containers started per image and runtime")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON document")
    args = parser.parse_args()
    if args.containers < 1:
        parser.error(f"--containers must be at least 1, not {args.containers}")
    missing = PrivateContainerd.missing()
    if missing:
        say(f"images.py compares with containerd: {missing}")
        return 1

    work = Path(tempfile.mkdtemp(prefix="adimg-", dir="/tmp"))
    runtimes: list[Actord | Containerd] = []
    started: dict[str, list[str]] = {"actord": [], "containerd": []}
    left: list[str] = []
    try:
        say(f"building the images in {work}")
        images = build_images(work)
        actord = Actord(work)
        runtimes.append(actord)
        containerd = Containerd(work / "containerd")
        runtimes.append(containerd)
        versions = {"actord": actord.client.version().version, "containerd": containerd.version}
        load = os.getloadavg()[0]
        rows = [row for image in images for row in measure(image, runtimes, args.containers, started)]
        if args.json:
            print(json.dumps(as_json(rows, versions=versions, load=[load, os.getloadavg()[0]], cpus=os.cpu_count(),
                                     counted=COUNTED), indent=2))
        else:
            print(f"actord {versions['actord']}, containerd {versions['containerd']}; {args.containers} containers "
                  f"per image and runtime, one after another; {os.cpu_count()} cpus, load {load:.2f} at the start, "
                  f"{os.getloadavg()[0]:.2f} at the end")
            print(f"disk: {COUNTED['disk']}; content: {COUNTED['content']}; MB = 10^6 bytes, KB = 10^3\n")
            print(table(rows))
    except (ContainerdError, ActordError, AssertionError, OSError) as exc:
        say(f"images.py: {exc}")
        return 1
    finally:
        left = clean_up(work, runtimes, started)
    if left:
        say("left behind: " + ", ".join(left))
        return 1
    return 0


def nothing_left(runtime: Runtime) -> bool:
    return not runtime.leftovers()


def clean_up(work: Path, runtimes: list[Actord | Containerd], started: dict[str, list[str]]) -> list[str]:
    """Remove every container still there, stop both runtimes, remove the work dir; what was left
    behind (shims, runc containers, mounts under the work dir) before the work dir went."""
    left = []
    for runtime in runtimes:
        for container_id in started[runtime.name]:
            try:
                runtime.remove(container_id)
            except Exception as exc:  # one whose start failed may not exist: what is left shows below
                say(f"clean-up: {runtime.name} {container_id}: {exc}")
        try:
            wait_until(runtime.settled, 60, 0.05, f"{runtime.name}'s removed containers to go")
            wait_until(partial(nothing_left, runtime), 30, 0.05, f"{runtime.name}'s shims to exit")
        except Exception as exc:
            left += [f"{runtime.name}: {exc}", *runtime.leftovers()]
        runtime.stop()
    left += [f"mount {point}" for point in mounts_under(work)]
    for point in sorted(mounts_under(work), reverse=True):
        subprocess.run(["umount", "-l", point], check=False)
    shutil.rmtree(work, ignore_errors=True)
    return left


if __name__ == "__main__":
    sys.exit(main())
