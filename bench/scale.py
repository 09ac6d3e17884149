"""Scale: grow the number of running containers in steps and measure actord at each step.

    sudo .venv/bin/python bench/scale.py [--steps 100,500,1000,2000] [--threads 8] [--cycles 0]

At each step (containers running): start rate and p50/p99 start latency of the
starts that reached it (client library, --threads clients at once), exit -> event
p50/p99 (a probe container killed at a time: from its pidfd turning readable to
the `exit` event on a SUB socket), the daemon's RSS, PSS and fd count, the median
PSS of a shim, and `containers.list` latency (all pages of 1000, and the first
page). Then every container is SIGKILLed at once: the time until every exit is
recorded, whether each was recorded exactly once, and what is left (containers,
shims, the daemon's fds and RSS against their baseline). `--cycles N` then runs N
start/exit cycles of a `true` container and prints the daemon's RSS growth after
the first 10%.
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
import threading
import time
from pathlib import Path
from typing import Any

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actorctl.bundle import create_bundle
from actorctl.client import Client
from actorctl.client.events import attach
from actors.wire import WireError
from actors.wire.events import CONTAINER_PREFIX, EventRecord, decode, is_record
from hostos.fdwait import readable

from private_actord import actord_command


def status_kib(pid: int, field: str, name: str = "status") -> int:
    """A `Field:  N kB` line of /proc/<pid>/status (or smaps_rollup)."""
    try:
        for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run_threads(pool: list[threading.Thread]) -> float:
    """Start every thread, wait for all; the seconds it took."""
    began = time.perf_counter()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return time.perf_counter() - began


class Node:
    """A private actord and the containers the bench has running on it."""

    def __init__(self, work: Path) -> None:
        self.state = work / "s"
        self.address = f"ipc://{self.state}/actord.sock"
        with open(work / "actord.log", "ab") as log:
            self.daemon = subprocess.Popen(actord_command(self.state),
                                           stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        while True:
            try:
                with Client(self.address, 1) as client:
                    client.call("version")
                break
            except Exception:
                if time.monotonic() > deadline or self.daemon.poll() is not None:
                    raise RuntimeError(f"actord did not start; see {work / 'actord.log'}") from None
                time.sleep(0.1)
        self.running: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.serial = 0

    def start_many(self, count: int, threads: int, bundle: Path) -> tuple[float, list[float]]:
        """Start `count` containers from `threads` clients; (containers per second, latencies)."""
        latencies: list[float] = []
        errors: list[BaseException] = []

        def worker(share: int) -> None:
            with Client(self.address, 60) as client:
                for _ in range(share):
                    with self.lock:
                        self.serial += 1
                        name = f"s{self.serial}"
                    began = time.perf_counter()
                    try:
                        result = client.call("containers.start", {"id": name, "bundle": str(bundle)})
                    except BaseException as exc:
                        errors.append(exc)
                        return
                    elapsed = time.perf_counter() - began
                    with self.lock:
                        latencies.append(elapsed)
                        self.running[name] = result["processes"][0]

        shares = [count // threads + (1 if n < count % threads else 0) for n in range(threads)]
        elapsed = run_threads([threading.Thread(target=worker, args=(share,)) for share in shares if share])
        if errors:
            raise RuntimeError(f"{len(errors)} start(s) failed, the first: {errors[0]}")
        return count / elapsed, latencies

    def stop(self) -> None:
        self.daemon.send_signal(signal.SIGTERM)
        self.daemon.wait(30)


class Events:
    """A SUB socket on the daemon's event stream (container events), attached."""

    def __init__(self, state: Path) -> None:
        self.context = zmq.Context()
        self.socket = attach(f"ipc://{state}/events.sock", [CONTAINER_PREFIX], context=self.context, rcvhwm=0)

    def next_event(self, timeout: float) -> EventRecord | None:
        """The next container event, or None if nothing arrived within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.socket.poll(max(0, int((deadline - time.monotonic()) * 1000))):
            try:
                message = decode(self.socket.recv_multipart())
            except WireError:
                continue
            if is_record(message):
                return message
        return None

    def exit_of(self, container_id: str, timeout: float = 10) -> float:
        """Wait for the init `exit` of `container_id`; when it arrived (time.monotonic())."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            event = self.next_event(0.1)
            if event and event["type"] == "exit" and event["id"] == container_id and event["pid"] == "init":
                return time.monotonic()
        raise RuntimeError(f"no exit event for {container_id}")

    def close(self) -> None:
        self.socket.close(0)
        self.context.term()


def probe_exits(node: Node, events: Events, bundle: Path, count: int) -> list[float]:
    """Start `count` extra containers and kill them one at a time: exit -> event delays."""
    delays = []
    with Client(node.address, 30) as client:
        for n in range(count):
            name = f"probe{len(node.running)}-{n}"
            pid = client.call("containers.start", {"id": name, "bundle": str(bundle)})["processes"][0]["system_pid"]
            pidfd = os.pidfd_open(pid)
            try:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                readable([pidfd], None)
                noticed = time.monotonic()
            finally:
                os.close(pidfd)
            delays.append(events.exit_of(name) - noticed)
    return delays


def shim_pss_median(node: Node, sample: int = 20) -> float:
    shims = [info["shim_pid"] for info in list(node.running.values())[:sample]]
    return statistics.median(status_kib(pid, "Pss", "smaps_rollup") for pid in shims) / 1024


def list_latency(node: Node) -> tuple[float, float]:
    """(all pages of 1000, the first page) of containers.list, in seconds."""
    with Client(node.address, 30) as client:
        began = time.perf_counter()
        client.call("containers.list", {"limit": 1000})
        first = time.perf_counter() - began
        began = time.perf_counter()
        after = None
        while True:
            page = client.call("containers.list", {"limit": 1000, **({"after": after} if after else {})})
            if not page:
                break
            after = page[-1]["id"]
        return time.perf_counter() - began, first


def kill_all(node: Node, events: Events) -> tuple[float, bool]:
    """SIGKILL every container at once; (seconds until every exit arrived on the event stream,
    each exactly once)."""
    began = time.monotonic()
    for info in node.running.values():
        try:
            os.kill(info["system_pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass
    wanted = set(node.running)
    counts: dict[str, int] = {}
    elapsed = last_event = float("inf")
    while time.monotonic() - began < 120:
        event = events.next_event(0.1)
        now = time.monotonic()
        if event is None:
            if elapsed < float("inf") and now - last_event > 2:
                break  # all arrived, and 2 s without a duplicate
            continue
        last_event = now
        if event["type"] == "exit" and event["pid"] == "init":
            counts[event["id"]] = counts.get(event["id"], 0) + 1
            if elapsed == float("inf") and wanted <= set(counts):
                elapsed = now - began
    node.running.clear()
    return elapsed, wanted <= set(counts) and all(counts[name] == 1 for name in wanted)


def wait_empty(node: Node, timeout: float = 60) -> bool:
    """Wait until no container, shim (each holds a socket in shims/) or container state is left."""
    deadline = time.monotonic() + timeout
    with Client(node.address, 30) as client:
        while time.monotonic() < deadline:
            if not client.call("containers.list", {"limit": 1}) and not any((node.state / "shims").iterdir()) \
                    and not any((node.state / "containers").iterdir()):
                return True
            time.sleep(0.2)
    return False


def bare_runc_rate(bundle: Path, root: Path, count: int, threads: int) -> float:
    """`count` create+start of bare runc (`threads` at once, in a root of their own) among the
    containers already running; containers per second. They are deleted afterwards."""
    runc = ["runc", "--root", str(root)]
    names = [f"bare{n}" for n in range(count)]

    def quiet(*args: str, check: bool = False) -> None:
        subprocess.run([*runc, *args], check=check, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    def worker(share: list[str]) -> None:
        for name in share:
            quiet("create", "--bundle", str(bundle), name, check=True)
            quiet("start", name, check=True)

    elapsed = run_threads([threading.Thread(target=worker, args=(names[n::threads],)) for n in range(threads)])
    for name in names:
        quiet("delete", "--force", name)
    return count / elapsed


def cycles(node: Node, bundle: Path, count: int, threads: int) -> tuple[float, float]:
    """`count` start/exit cycles of a quick container; daemon RSS (MiB) after 10% and at the end."""
    pid = node.daemon.pid
    first_tenth = 0.0
    done = 0
    while done < count:
        batch = min(count // 10 or 1, count - done)
        node.start_many(batch, threads, bundle)
        node.running.clear()
        done += batch
        if not first_tenth:
            wait_empty(node)
            first_tenth = status_kib(pid, "VmRSS") / 1024
    wait_empty(node)
    return first_tenth, status_kib(pid, "VmRSS") / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="100,500,1000,2000", help="running containers at each step")
    parser.add_argument("--threads", type=int, default=8, help="client threads starting containers")
    parser.add_argument("--probe", type=int, default=20, help="containers killed one by one per step")
    parser.add_argument("--runc", type=int, default=40, help="bare runc create+start per step (0: none)")
    parser.add_argument("--cycles", type=int, default=0, help="start/exit cycles afterwards (e.g. 5000)")
    args = parser.parse_args()
    steps = [int(step) for step in args.steps.split(",")]

    work = Path(tempfile.mkdtemp(prefix="ads-", dir="/tmp"))
    bundle = create_bundle(work / "sleep", ["sleep", "100000"])
    node = Node(work)
    events = Events(node.state)
    try:
        pid = node.daemon.pid
        probe_exits(node, events, bundle, 1)  # warm up: the first start and exit load what they need
        wait_empty(node)
        base_fds, base_rss = fd_count(pid), status_kib(pid, "VmRSS") / 1024
        print(f"actord pid {pid}: {base_fds} fds, {base_rss:.1f} MiB RSS after one start and exit")
        print(f"{'running':>8} {'starts/s':>9} {'p50':>8} {'p99':>8} {'exit p50':>9} {'exit p99':>9} "
              f"{'RSS MiB':>8} {'PSS MiB':>8} {'fds':>6} {'shim PSS':>9} {'list all':>9} {'list 1st':>9} "
              f"{'runc/s':>7}")
        first_rate = first_runc = runc_rate = 0.0
        for step in steps:
            rate, latencies = node.start_many(step - len(node.running), args.threads, bundle)
            first_rate = first_rate or rate
            delays = probe_exits(node, events, bundle, args.probe)
            listed, first_page = list_latency(node)
            if args.runc:
                runc_rate = bare_runc_rate(bundle, work / "bare", args.runc, args.threads)
                first_runc = first_runc or runc_rate
            print(f"{len(node.running):>8} {rate:>9.1f} {percentile(latencies, 0.5) * 1000:>6.0f}ms "
                  f"{percentile(latencies, 0.99) * 1000:>6.0f}ms {percentile(delays, 0.5) * 1000:>7.2f}ms "
                  f"{percentile(delays, 0.99) * 1000:>7.2f}ms {status_kib(pid, 'VmRSS') / 1024:>8.1f} "
                  f"{status_kib(pid, 'Pss', 'smaps_rollup') / 1024:>8.1f} {fd_count(pid):>6} "
                  f"{shim_pss_median(node):>7.2f}Mi {listed * 1000:>7.1f}ms {first_page * 1000:>7.1f}ms "
                  f"{runc_rate:>7.1f}", flush=True)
        runc_note = (f"; bare runc's rate at {steps[-1]} vs {steps[0]}: {runc_rate / first_runc:.2f}x"
                     if first_runc else "")
        print(f"start rate at {steps[-1]} vs {steps[0]}: {rate / first_rate:.2f}x; "
              f"p99/p50 at {steps[-1]}: {percentile(latencies, 0.99) / percentile(latencies, 0.5):.1f}{runc_note}")
        killed = len(node.running)
        elapsed, once = kill_all(node, events)
        print(f"SIGKILL to {killed}: every exit recorded in {elapsed:.1f} s; each exactly once: {once}")
        empty = wait_empty(node)
        time.sleep(1)
        print(f"afterwards: containers and shims gone: {empty}; daemon fds {fd_count(pid)} "
              f"(baseline {base_fds}), RSS {status_kib(pid, 'VmRSS') / 1024:.1f} MiB (baseline {base_rss:.1f})")
        if args.cycles:
            quick = create_bundle(work / "true", ["true"])
            tenth, end = cycles(node, quick, args.cycles, args.threads)
            print(f"{args.cycles} start/exit cycles: RSS {tenth:.1f} MiB after {args.cycles // 10}, "
                  f"{end:.1f} MiB at the end (+{end - tenth:.1f} MiB)")
    finally:
        events.close()
        for root in (node.state / "runc", work / "bare"):
            runc = ["runc", "--root", str(root)]
            for line in subprocess.run([*runc, "list", "-q"], capture_output=True, text=True).stdout.split():
                subprocess.run([*runc, "delete", "--force", line], capture_output=True)
        wait_empty(node, 30)
        node.stop()
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4]
            if point.startswith(f"{node.state}/"):  # a rootfs mount: never delete through it
                subprocess.run(["umount", "-l", point], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
