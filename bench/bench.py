"""Benchmark actord against bare runc and containerd, measured in the same run on the same bundle.

    sudo .venv/bin/python bench/bench.py [--runs 20] [--concurrent 50] [--parallel 10]

Prints medians and ratios to bare runc and, when containerd, ctr and containerd-shim-runc-v2
are installed, to a private containerd the bench starts for the run (image-less:
`ctr run --rootfs` of the bundle's rootfs, with its args and env):
  * start latency: bare `runc create` + `runc start`, `ctr run -d`, `actorctl containers
    start` (a new CLI process each time, like ctr) and the client library's `containers.start`;
  * the CLI: `actorctl version` (a new process each time) and what `actorctl containers
    start` costs over the library, called in the bench's process and in a new Python one;
  * 50 starts, 10 at a time: containers per second;
  * memory: PSS per shim with 50 containers running (actord's shims; containerd-shim-runc-v2);
  * exit -> event: from the kernel's pidfd notice of the container's exit to its exit event
    arriving (actord: on the PUB socket; containerd: a `ctr events` line);
  * exec latency: bare `runc exec -d`, `ctr task exec -d`, actord's `containers.exec` (client library).
The load average is printed with the figures: on a busy machine they mean little.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ParamSpec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actorctl.bundle import create_bundle
from actorctl.client import Client
from actorctl.client.events import attach
from actors.wire.events import CONTAINER_PREFIX, container_topic
from hostos.fdwait import readable

from containerd_baseline import ContainerdError, PrivateContainerd
from private_actord import actord_command

BIN = Path(sys.executable).parent

LIBRARY_START = """
import sys
from actorctl.client import Client
Client(sys.argv[1]).call("containers.start", {"id": sys.argv[2], "bundle": sys.argv[3]})
"""
"""The client library's start in a new interpreter: what any Python client process pays, so
that what the CLI adds on top of it shows."""


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def mib(kib: float) -> str:
    return f"{kib / 1024:.2f} MiB"


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Table:
    """Rows of one table: a figure, then its ratio to each baseline (bare runc, and containerd
    when it runs); a blank where a row has no such baseline."""

    def __init__(self, baselines: list[str]) -> None:
        self.baselines = baselines

    def section(self, title: str, ratios: bool = True) -> None:
        columns = "".join(f"{'/' + name:>13}" for name in self.baselines) if ratios else ""
        print(f"\n{title:<48}{columns}".rstrip())

    def row(self, label: str, figure: str, *ratios: float | None) -> None:
        cells = "".join(" " * 13 if ratio is None else f"{ratio:12.2f}x" for ratio in ratios[:len(self.baselines)])
        print(f"  {label:<34}{figure:>12}{cells}".rstrip())


def cmdline(pid: int) -> bytes:
    """A process's command line; empty once it has exited."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def ratio(value: float, base: float | None) -> float | None:
    return None if base is None else value / base


class BareRunc:
    """runc itself, with its own root, as the baseline."""

    def __init__(self, root: Path, bundle: Path) -> None:
        self.root, self.bundle = root, bundle

    def run(self, *args: str) -> None:
        subprocess.run(["runc", "--root", str(self.root), *args], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self, container_id: str) -> None:
        self.run("create", "--bundle", str(self.bundle), container_id)
        self.run("start", container_id)

    def remove(self, container_id: str) -> None:
        self.run("delete", "--force", container_id)


P = ParamSpec("P")


def timed(action: Callable[P, object], *args: P.args, **kwargs: P.kwargs) -> float:
    """Seconds `action(*args, **kwargs)` takes."""
    began = time.perf_counter()
    action(*args, **kwargs)
    return time.perf_counter() - began


def per_second(count: int, parallel: int, action: Callable[[int], Any]) -> float:
    """Run `action(n)` for n in range(count), `parallel` at a time; how many per second."""
    with ThreadPoolExecutor(parallel) as pool:
        began = time.perf_counter()
        list(pool.map(action, range(count)))  # raises the first failure
        return count / (time.perf_counter() - began)


def kill_noticed(pid: int) -> float:
    """SIGKILL `pid` through a pidfd; when the kernel reports its exit (the pidfd turns readable)."""
    pidfd = os.pidfd_open(pid)
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        readable([pidfd], None)
        return time.perf_counter()
    finally:
        os.close(pidfd)


def wait_for_exit_events(client: Client, ids: set[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = {e["id"] for e in client.call("events.replay", {"after": 0})["events"] if e["type"] == "exit"}
        if ids <= seen:
            return
        time.sleep(0.05)
    raise RuntimeError("exit events did not arrive")


def start_containerd(work: Path) -> tuple[PrivateContainerd | None, str]:
    """A private containerd and its version, or None and why there is none."""
    missing = PrivateContainerd.missing()
    if missing:
        return None, missing
    containerd = PrivateContainerd(work)
    try:
        return containerd, containerd.start()
    except (ContainerdError, OSError) as exc:
        containerd.stop()
        return None, f"could not start it: {exc}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="sequential starts (and CLI runs) per method")
    parser.add_argument("--concurrent", type=int, default=50, help="containers started in the concurrency test")
    parser.add_argument("--parallel", type=int, default=10, help="of those, how many at a time")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="adbench-", dir="/tmp"))
    bundle = create_bundle(work / "bundle", ["sleep", "100000"])
    bare = BareRunc(work / "runc", bundle)
    state = work / "s"
    with open(work / "actord.log", "wb") as log:
        daemon = subprocess.Popen(actord_command(state),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
    address = f"ipc://{state}/actord.sock"
    client = Client(address, timeout=60)
    env = dict(os.environ, ACTORD_ADDRESS=address)
    containerd: PrivateContainerd | None = None

    def actorctl(*argv: str) -> None:
        subprocess.run([str(BIN / "actorctl"), *argv], env=env, check=True, stdout=subprocess.DEVNULL)

    def kill_and_wait(*ids: str) -> None:
        """SIGKILL these containers and wait for their exits, so that teardown is not timed with the next start."""
        for cid in ids:
            client.call("containers.signal", {"id": cid, "signal": 9})
        wait_for_exit_events(client, set(ids))

    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                info = client.call("version", timeout=0.5)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        containerd, about = start_containerd(work / "containerd")
        print(f"actord {info['version']}, {info['runtime']}, {os.cpu_count()} cpus, {args.runs} runs, "
              f"load {os.getloadavg()[0]:.2f}")
        print(f"containerd {about}, private to this run" if containerd else f"containerd: not measured ({about})")
        table = Table(["runc", "containerd"] if containerd else ["runc"])

        # 1. sequential start latency, and the CLI
        bare_times, ctr_times, cli_times, lib_times, fresh_times, version_times = [], [], [], [], [], []
        for n in range(args.runs):
            cid = f"bare{n}"
            bare_times.append(timed(bare.start, cid))
            bare.remove(cid)
            if containerd:
                cid = f"ctr{n}"
                ctr_times.append(timed(containerd.start_container, cid, bundle))
                containerd.remove(cid)
            cid = f"cli{n}"
            cli_times.append(timed(actorctl, "containers", "start", cid, str(bundle)))
            kill_and_wait(cid)
            cid = f"lib{n}"
            lib_times.append(timed(client.call, "containers.start", {"id": cid, "bundle": str(bundle)}))
            kill_and_wait(cid)
            cid = f"py{n}"
            fresh_times.append(timed(subprocess.run, [sys.executable, "-c", LIBRARY_START, address, cid, str(bundle)],
                                     check=True))
            kill_and_wait(cid)
            version_times.append(timed(actorctl, "version"))
        base = statistics.median(bare_times)
        ctr_base = statistics.median(ctr_times) if containerd else None
        table.section("start latency (median)")
        table.row("bare runc create+start", ms(base), 1.0)
        if ctr_base is not None:
            table.row("containerd: ctr run -d", ms(ctr_base), ctr_base / base, 1.0)
        cli_med, lib_med = statistics.median(cli_times), statistics.median(lib_times)
        for label, med in (("actorctl containers start", cli_med), ("client library start", lib_med)):
            table.row(label, ms(med), med / base, ratio(med, ctr_base))
        table.section("actorctl: a new process each run (median)", ratios=False)
        fresh_med = statistics.median(fresh_times)
        table.row("actorctl version", ms(statistics.median(version_times)))
        table.row("library start, new python process", ms(fresh_med))
        table.row("containers start over the library", "+" + ms(cli_med - lib_med))
        table.row("  over the library in a new process", "+" + ms(cli_med - fresh_med))

        # 2. concurrent starts
        count, parallel = args.concurrent, args.parallel
        bare_rate = per_second(count, parallel, lambda n: bare.start(f"cb{n}"))
        for n in range(count):
            bare.remove(f"cb{n}")
        ctr_rate = ctr_shim_pss = ctr_pss = None
        if containerd:
            ctr_rate = per_second(count, parallel, lambda n: containerd.start_container(f"ctrc{n}", bundle))
            ctr_shim_pss = [pss_kib(pid) for pid in containerd.shim_pids()]
            ctr_pss = pss_kib(containerd.pid)
            for n in range(count):
                containerd.remove(f"ctrc{n}")
        cli_rate = per_second(count, parallel, lambda n: actorctl("containers", "start", f"pc{n}", str(bundle)))
        kill_and_wait(*(f"pc{n}" for n in range(count)))

        def start_one(n: int) -> None:
            with Client(address, timeout=120) as own:
                own.call("containers.start", {"id": f"cc{n}", "bundle": str(bundle)})

        ours_rate = per_second(count, parallel, start_one)
        listed = client.call("containers.list")
        shim_pids = [c["processes"][0]["shim_pid"] for c in listed if c["id"].startswith("cc")]
        table.section(f"{count} starts, {parallel} at a time")
        table.row("bare runc", f"{bare_rate:.1f} /s", 1.0)
        if ctr_rate is not None:
            table.row("containerd: ctr run -d", f"{ctr_rate:.1f} /s", ctr_rate / bare_rate, 1.0)
        for label, rate in (("actord: actorctl", cli_rate), ("actord: client library", ours_rate)):
            table.row(label, f"{rate:.1f} /s", rate / bare_rate, ratio(rate, ctr_rate))

        # 3. memory per shim with `count` running
        shim_pss = [pss_kib(pid) for pid in shim_pids]
        spawner = [int(p) for p in os.listdir("/proc") if p.isdigit() and
                   cmdline(int(p)).startswith(b"actor-shim-spawner " + str(state).encode())]
        ours_all = sum(shim_pss) + sum(pss_kib(p) for p in spawner)
        table.section(f"memory (PSS) with {len(shim_pids)} running")
        per_shim, daemon_pss = statistics.median(shim_pss), pss_kib(daemon.pid)
        ctr_per_shim = statistics.median(ctr_shim_pss) if ctr_shim_pss else None
        ctr_all = sum(ctr_shim_pss) if ctr_shim_pss else None
        table.row("actord: per shim (median)", mib(per_shim), None, ratio(per_shim, ctr_per_shim))
        table.row("actord: all shims + spawner", mib(ours_all), None, ratio(ours_all, ctr_all))
        table.row("actord: the daemon", mib(daemon_pss), None, ratio(daemon_pss, ctr_pss))
        if ctr_per_shim is not None and ctr_all is not None and ctr_pss is not None:
            table.row("containerd: per shim (median)", mib(ctr_per_shim), None, 1.0)
            table.row(f"containerd: all {len(ctr_shim_pss or [])} shims", mib(ctr_all), None, 1.0)
            table.row("containerd: the daemon", mib(ctr_pss), None, 1.0)
        kill_and_wait(*(f"cc{n}" for n in range(count)))

        # 4. exit -> event latency, actord's and containerd's samples taken in turn (a load that
        # comes and goes during the run weighs on both alike)
        sub = attach(info["events_address"], [CONTAINER_PREFIX])
        events = containerd.events() if containerd else None
        latencies: list[float] = []
        ctr_latencies: list[float] = []
        try:
            time.sleep(0.3)
            for n in range(args.runs):
                cid = f"lat{n}"
                started = client.call("containers.start", {"id": cid, "bundle": str(bundle)})
                while sub.poll(0):
                    sub.recv_multipart()
                exited = kill_noticed(started["processes"][0]["system_pid"])
                while True:
                    topic, _ = sub.recv_multipart()
                    if topic == container_topic(cid, "exit").encode():
                        latencies.append(time.perf_counter() - exited)
                        break
                # the next kill waits for this container's clean-up (`runc delete`, its state dir),
                # as containerd's waits for `ctr task delete`: no overlap in either
                deadline = time.monotonic() + 30
                while (state / "containers" / cid).exists() and time.monotonic() < deadline:
                    time.sleep(0.005)
                if containerd and events:
                    cid = f"ctrlat{n}"
                    containerd.start_container(cid, bundle)
                    events.discard()
                    exited = kill_noticed(containerd.pid_of(cid))
                    events.wait_exit(cid)
                    ctr_latencies.append(time.perf_counter() - exited)
                    containerd.remove(cid)
        finally:
            sub.close()
            if events:
                events.close()
        ctr_med = statistics.median(ctr_latencies) if ctr_latencies else None
        table.section("exit -> event")
        table.row("actord: median (PUB socket)", ms(statistics.median(latencies)), None,
                  ratio(statistics.median(latencies), ctr_med))
        table.row("actord: max", ms(max(latencies)))
        if ctr_med is not None:
            table.row("containerd: median (ctr events)", ms(ctr_med), None, 1.0)
            table.row("containerd: max", ms(max(ctr_latencies)))

        # 5. exec latency into a running container
        bare.start("execbare")
        client.call("containers.start", {"id": "execours", "bundle": str(bundle)})
        if containerd:
            containerd.start_container("ctrexec", bundle)
        bare_exec, ctr_exec, ours_exec = [], [], []
        for n in range(args.runs):
            bare_exec.append(timed(bare.run, "exec", "-d", "execbare", "sleep", "1000"))
            if containerd:
                ctr_exec.append(timed(containerd.exec, "ctrexec", f"e{n}", ["sleep", "1000"]))
            ours_exec.append(timed(client.call, "containers.exec",
                                   {"id": "execours", "pid": f"e{n}", "args": ["sleep", "1000"]}))
        base = statistics.median(bare_exec)
        ctr_base = statistics.median(ctr_exec) if ctr_exec else None
        table.section("exec latency (median)")
        table.row("bare runc exec -d", ms(base), 1.0)
        if ctr_base is not None:
            table.row("containerd: ctr task exec -d", ms(ctr_base), ctr_base / base, 1.0)
        ours = statistics.median(ours_exec)
        table.row("client library exec", ms(ours), ours / base, ratio(ours, ctr_base))
        print(f"\nload {os.getloadavg()[0]:.2f} at the end")
    finally:
        client.close()
        if containerd:
            containerd.stop()
        for entry in subprocess.run(["runc", "--root", str(state / "runc"), "list", "-q"],
                                    capture_output=True, text=True).stdout.split():
            subprocess.run(["runc", "--root", str(state / "runc"), "delete", "--force", entry], capture_output=True)
        for entry in subprocess.run(["runc", "--root", str(work / "runc"), "list", "-q"],
                                    capture_output=True, text=True).stdout.split():
            bare.remove(entry)
        time.sleep(1)
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(15)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
