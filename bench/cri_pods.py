"""Pod start through the CRI: actord against containerd's CRI plugin, measured in the same run.

    sudo .venv/bin/python bench/cri_pods.py [--pods 30] [--burst 30] [--parallel 10]

Starts a private actord (its CRI on its own socket) and a private containerd with its CRI
plugin (own root, state, socket, runc root), each with its pods on a private CNI bridge
network (own conf dir, bridge, subnet, host-local data dir), both pulling from the CRI kit's
local registry as a mirror of registry.k8s.io (/work/shared/cri/registry.sh start, run here).
Both are driven by the same gRPC client (cri_api.v1 stubs; bench/cri_driver.py). A pod is
RunPodSandbox + CreateContainer (busybox's `sleep 3600`) + StartContainer, timed end to end:
  * --pods pods one at a time, actord's and containerd's in turn: p50 and p99;
  * --burst pods --parallel at a time, twice per runtime (actord first, then containerd
    first), so a load that comes and goes weighs on both: pods per second;
  * memory: the PSS of all each runtime runs for its pods (actord: the daemon, spawner,
    shims, infra containers; containerd: the daemon, shims, pause containers; not the
    pods' `sleep`) with --burst pods running, less the same with none, per pod.
When a runtime does not serve CreateContainer (UNIMPLEMENTED), its pods are sandboxes only:
the end-to-end rows say so and the burst runs sandboxes only on both.
Everything made is removed at the end, also when a round fails, and then checked.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.harness import Daemon, mounts_under, remove_state_dir
from tests.podnet_host import BIN_DIRS, PrivateNetwork, remove_idle_shared_chains, shared_chains
from tests.registry import registries_conf

from cri_driver import BUSYBOX, WORKLOAD, CriDriver, PodTimes
from pod_hosts import IP_FORWARD, free_subnets, leftovers, new_network, set_ip_forward
from pod_memory import runtime_pss_kib
from podfigures import mib, ms, per_pod_kib, percentile, row, section
from private_cri_containerd import PAUSE_IMAGE, CriContainerd

REGISTRY_SCRIPT = Path("/work/shared/cri/registry.sh")
REGISTRY = "127.0.0.1:5000"


def timed_burst(count: int, parallel: int, start: Callable[[int], object]) -> float:
    """Run `start(n)` for n in range(count), `parallel` at a time: the seconds it took (the
    first failure is raised)."""
    with ThreadPoolExecutor(parallel) as pool:
        began = time.perf_counter()
        list(pool.map(start, range(count)))
        return time.perf_counter() - began


def start_named(driver: CriDriver, prefix: str, number: int) -> PodTimes:
    return driver.start_pod(f"{prefix}{number}")


def ratio(ours: float | None, theirs: float | None) -> float | None:
    return None if ours is None or theirs is None or theirs == 0 else ours / theirs


class Bench:
    """The two runtimes, their networks and drivers, and what has to be undone."""

    def __init__(self, work: Path) -> None:
        self.work = work
        subnets = free_subnets(2)
        self.networks: list[PrivateNetwork] = [new_network(work / "neta", "a", subnets[0]),
                                               new_network(work / "netc", "c", subnets[1])]
        conf = registries_conf(work / "registries.conf", insecure=(REGISTRY,),
                               mirrors={"registry.k8s.io": REGISTRY, "gcr.io": REGISTRY})
        bin_dirs = ":".join(map(str, BIN_DIRS))
        self.actord = Daemon(work / "a", extra_args=["--cni-conf-dir", str(self.networks[0].conf_dir),
                                                     "--cni-bin-dir", bin_dirs, "--registries-conf", str(conf)])
        self.containerd = CriContainerd(work / "c", self.networks[1].conf_dir, BIN_DIRS[0], REGISTRY)
        self.drivers: list[CriDriver] = []

    def start(self) -> tuple[CriDriver, CriDriver]:
        self.actord.start()
        ours = CriDriver("actord", str(self.actord.state_dir / "cri.sock"))
        self.drivers.append(ours)
        self.containerd.start()
        theirs = CriDriver("containerd", str(self.containerd.socket))
        self.drivers.append(theirs)
        return ours, theirs

    def roots(self, driver: CriDriver) -> list[int]:
        """The processes whose trees are the runtime's (bench/pod_memory.py)."""
        if driver.name == "actord":
            assert self.actord.process is not None
            return [self.actord.process.pid]
        return [self.containerd.pid, *self.containerd.shim_pids()]

    def remove_pods(self) -> None:
        errors = [error for driver in self.drivers for error in driver.remove_pods()]
        if errors:
            raise RuntimeError("; ".join(errors))

    def stop(self) -> list[str]:
        """Remove every pod, stop both daemons by pid and remove all they and the bench made;
        the problems met (each step is tried whatever the last one did)."""
        problems = []
        for driver in self.drivers:
            try:
                problems += driver.remove_pods()
            except grpc.RpcError as exc:
                problems.append(f"{driver.name}: ListPodSandbox: {exc.details()}")
            driver.close()
        if self.actord.process is not None:
            shims = self.actord.live_shims()
            self.actord.stop()
            for container in self.actord.runc_containers():
                problems.append(f"actord: runc container {container['id']} left, deleted")
                subprocess.run(["runc", "--root", str(self.actord.runtime_root), "delete", "--force",
                                container["id"]], capture_output=True)
            for pid in shims:
                try:
                    os.kill(pid, 9)
                    problems.append(f"actord: shim {pid} left, killed")
                except ProcessLookupError:
                    pass
        self.containerd.stop()
        for point in sorted(mounts_under(self.work), reverse=True):
            subprocess.run(["umount", "-l", point], check=False)
        remove_state_dir(self.actord.state_dir)
        for network in self.networks:
            network.cleanup()
        shutil.rmtree(self.work, ignore_errors=True)
        return problems


@dataclass
class Figures:
    """What the rounds measured, per runtime name."""

    sequential: dict[str, list[PodTimes]]
    burst_seconds: dict[str, float]
    idle: dict[str, tuple[int, int]]
    """PSS (KiB) and processes counted with no pod."""
    loaded: dict[str, tuple[int, int]]
    """The same with the first burst round's pods running."""
    whole_pods: bool
    """False when a runtime does not serve containers: then every pod was a sandbox only."""


def measure(bench: Bench, ours: CriDriver, theirs: CriDriver, pods: int, burst: int, parallel: int) -> Figures:
    """The rounds: `pods` one at a time, actord's and containerd's in turn; then two rounds of
    `burst` per runtime, `parallel` at a time, actord first, then containerd first; memory with
    none, and with the first round's pods running."""
    drivers = (ours, theirs)
    idle = {driver.name: runtime_pss_kib(bench.roots(driver), WORKLOAD) for driver in drivers}
    sequential: dict[str, list[PodTimes]] = {driver.name: [] for driver in drivers}
    for n in range(pods):
        for driver in drivers if n % 2 == 0 else drivers[::-1]:
            sequential[driver.name].append(driver.start_pod(f"seq-{n}"))
    bench.remove_pods()
    whole_pods = all(driver.serves_containers for driver in drivers)
    for driver in drivers:
        driver.serves_containers = whole_pods
    burst_seconds = {driver.name: 0.0 for driver in drivers}
    loaded: dict[str, tuple[int, int]] = {}
    for round_number, order in enumerate((drivers, drivers[::-1])):
        for driver in order:
            burst_seconds[driver.name] += timed_burst(burst, parallel,
                                                      partial(start_named, driver, f"burst{round_number}-"))
        if round_number == 0:
            loaded = {driver.name: runtime_pss_kib(bench.roots(driver), WORKLOAD) for driver in drivers}
        bench.remove_pods()
    return Figures(sequential, burst_seconds, idle, loaded, whole_pods)


def report(figures: Figures, pods: int, burst: int, parallel: int, partial_runtimes: list[str]) -> None:
    """Print the table: each figure of actord and containerd, and their ratio."""

    def quantile(name: str, part: Callable[[PodTimes], float | None], share: float) -> float | None:
        values = [part(times) for times in figures.sequential[name]]
        return None if None in values else percentile([value for value in values if value is not None], share)

    print(section(f"{pods} pods one at a time"))
    for label, part in (("RunPodSandbox", lambda times: times.sandbox),
                        ("pod (+Create+StartContainer)", lambda times: times.total)):
        for name, share in (("p50", 0.5), ("p99", 0.99)):
            a, c = quantile("actord", part, share), quantile("containerd", part, share)
            print(row(f"{label} {name}", ms(a) if a is not None else "unavailable",
                      ms(c) if c is not None else "unavailable", ratio(a, c)))
    what = "pods" if figures.whole_pods else "sandboxes"
    print(section(f"2 x {burst} {what}, {parallel} at a time"))
    rates = {name: 2 * burst / seconds for name, seconds in figures.burst_seconds.items()}
    print(row("per second", f"{rates['actord']:.1f} /s", f"{rates['containerd']:.1f} /s",
              ratio(rates["actord"], rates["containerd"])))
    print(section(f"memory (PSS), {burst} {what} running"))
    idle, loaded = figures.idle, figures.loaded
    memory = {name: (float(idle[name][0]), float(loaded[name][0]), per_pod_kib(loaded[name][0], idle[name][0], burst))
              for name in idle}
    for index, label in enumerate(("0 pods: all", f"{burst} pods: all", "per pod")):
        a, c = memory["actord"][index], memory["containerd"][index]
        print(row(label, mib(a), mib(c), ratio(a, c)))
    print(row("processes counted (0 / loaded)", f"{idle['actord'][1]} / {loaded['actord'][1]}",
              f"{idle['containerd'][1]} / {loaded['containerd'][1]}", None))
    for name in partial_runtimes:
        print(f"\n{name} does not serve CreateContainer (UNIMPLEMENTED): its pods are sandboxes only, "
              "and the burst ran sandboxes only on both")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=30,
                        help="pods started one at a time, per runtime (default %(default)s)")
    parser.add_argument("--burst", type=int, default=30,
                        help="pods started at once, per runtime and round (default %(default)s)")
    parser.add_argument("--parallel", type=int, default=10,
                        help="of those, how many at a time (default %(default)s)")
    args = parser.parse_args()
    if min(args.pods, args.burst, args.parallel) < 1:
        parser.error("--pods, --burst and --parallel must be at least 1")
    if os.geteuid() != 0:
        parser.error("run as root (pods need network namespaces, bridges, runc)")
    missing = CriContainerd.missing()
    if missing:
        parser.error(f"containerd cannot be measured: {missing}")
    subprocess.run([str(REGISTRY_SCRIPT), "start"], check=True, stdout=subprocess.DEVNULL)

    existing_chains, ip_forward = shared_chains(), IP_FORWARD.read_text().strip()
    work = Path(tempfile.mkdtemp(prefix="cpb-", dir="/tmp"))
    try:
        bench = Bench(work)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    problems: list[str] = []
    failure: str | None = None
    try:
        with ExitStack() as undo:
            undo.callback(lambda: problems.extend(bench.stop()))
            ours, theirs = bench.start()
            about = [driver.wait_ready() for driver in (ours, theirs)]
            for driver in (ours, theirs):
                driver.pull(BUSYBOX)
            theirs.pull(PAUSE_IMAGE)
            print(f"{about[0]} and {about[1]}, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f} at start")
            figures = measure(bench, ours, theirs, args.pods, args.burst, args.parallel)
            partial_runtimes = [] if figures.whole_pods else \
                [name for name, times in figures.sequential.items() if times[0].total is None]
            report(figures, args.pods, args.burst, args.parallel, partial_runtimes)
            print(f"\nload {os.getloadavg()[0]:.2f} at the end")
    except (grpc.RpcError, OSError, RuntimeError) as exc:
        failure = exc.details() if isinstance(exc, grpc.RpcError) else str(exc)
        print(f"cri_pods: the bench failed: {failure}", file=sys.stderr)
    finally:
        remove_idle_shared_chains(existing_chains)
        if IP_FORWARD.read_text().strip() != ip_forward:
            set_ip_forward(ip_forward)
        problems += leftovers(work, bench.networks)
        for problem in problems:
            print(f"clean-up: {problem}", file=sys.stderr)
        print("clean-up: nothing left" if not problems else f"clean-up: {len(problems)} problems")
    return 1 if problems or failure else 0


if __name__ == "__main__":
    sys.exit(main())
