"""Exit -> event: from the kernel's notice of a container's exit to its `exit` event on a SUB socket.

    sudo .venv/bin/python bench/exit_path.py [--running 100] [--samples 100] [--hops] [--dir /dev/shm]

Starts --running `sleep` containers that stay up (the load) and --samples more, then kills
those one at a time with SIGKILL through a pidfd. t0 is when that pidfd turns readable (the
kernel's notice of the exit), t1 when the init's `exit` event arrives on a SUB socket on
events.sock (both CLOCK_MONOTONIC). The next one is killed once the daemon has cleaned up
after the last one (its shim, with `runc delete`, gone; its state dir removed), so no
clean-up overlaps a measurement. Prints p50/p90/p99/max of t1 - t0.

The state dir is made in --dir, a tmpfs by default as /run is where actord keeps it: on a
disk filesystem the event log's appends wait behind the journal commits of `runc delete`.

--hops runs actord with ACTORD_TRACE_EXIT set, so the shim, the bus, the Monitor and the
EventLog stamp each hop of the report (actors/wire/trace.py), and prints for each hop the median
time since t0 and since the hop before. A stamp costs a write, so take the total from a run
without --hops.
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
from pathlib import Path

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actorctl.bundle import create_bundle
from actorctl.client import Client, ClientError
from actorctl.client.events import attach
from actors.wire import WireError
from actors.wire.events import CONTAINER_PREFIX, decode
from actors.wire.trace import TRACE_VARIABLE
from hostos.fdwait import readable

from private_actord import actord_command


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def start_daemon(state: Path, log: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Client]:
    with open(log, "ab") as output:
        daemon = subprocess.Popen(actord_command(state),
                                  stdin=subprocess.DEVNULL, stdout=output, stderr=output, env=env)
    client = Client(f"ipc://{state}/actord.sock", timeout=60)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.call("version", timeout=1)
            return daemon, client
        except ClientError:
            if time.monotonic() > deadline or daemon.poll() is not None:
                raise RuntimeError(f"actord did not start; see {log}") from None
            time.sleep(0.1)


def measure_one(client: Client, sub: zmq.Socket[bytes], state: Path, container_id: str) -> tuple[int, int, str]:
    """Kill the container's init; (t0, t1, token) in monotonic ns. Returns once the daemon has
    cleaned up after it (its shim gone, its state dir removed), so nothing overlaps the next."""
    process = client.call("containers.state", {"id": container_id})["processes"][0]
    pidfd = os.pidfd_open(process["system_pid"])
    shimfd = os.pidfd_open(process["shim_pid"])
    try:
        while sub.poll(0):
            sub.recv_multipart()
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        readable([pidfd], None)
        noticed = time.monotonic_ns()
        while True:
            frames = sub.recv_multipart()
            arrived = time.monotonic_ns()
            try:
                event = decode(frames)
            except WireError:
                continue
            if event["type"] == "exit" and event["id"] == container_id and event["pid"] == "init":
                token = event.get("token", "")
                break
        if not readable([shimfd], 30):
            raise RuntimeError(f"the shim of {container_id} did not exit")
        deadline = time.monotonic() + 30
        while (state / "containers" / container_id).exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the state of {container_id} was not removed")
            time.sleep(0.001)
    finally:
        os.close(pidfd)
        os.close(shimfd)
    return noticed, arrived, token


def hop_table(trace: Path, samples: list[tuple[int, int, str]]) -> list[tuple[str, float, float]]:
    """(hop, median ms since t0, median ms since the hop before) in the order of the path.
    Each line of `trace` is `<token> <hop> <ns>`; a hop's name may hold spaces."""
    stamps: dict[str, dict[str, int]] = {}
    for line in trace.read_text().splitlines():
        stamp_token, rest = line.split(" ", 1)
        stamp_hop, stamp_ns = rest.rsplit(" ", 1)
        stamps.setdefault(stamp_token, {}).setdefault(stamp_hop, int(stamp_ns))
    since_t0: dict[str, list[float]] = {}
    since_prev: dict[str, list[float]] = {}
    for noticed, arrived, token in samples:
        path = [(hop, ns) for hop, ns in stamps.get(token, {}).items() if noticed <= ns <= arrived]
        previous = noticed
        for hop, ns in sorted([*path, ("SUB received", arrived)], key=lambda item: item[1]):
            since_t0.setdefault(hop, []).append((ns - noticed) / 1e6)
            since_prev.setdefault(hop, []).append((ns - previous) / 1e6)
            previous = ns
    rows = [(hop, statistics.median(values), statistics.median(since_prev[hop])) for hop, values in since_t0.items()]
    return sorted(rows, key=lambda row: row[1])


def cleanup(work: Path, client: Client, daemon: subprocess.Popen[bytes]) -> None:
    """Delete every container, wait for the daemon to clear them, stop it, remove `work`."""
    runc_root = str(work / "s" / "runc")
    listed = subprocess.run(["runc", "--root", runc_root, "list", "-q"], capture_output=True, text=True, check=False)
    for container in listed.stdout.split():
        subprocess.run(["runc", "--root", runc_root, "delete", "--force", container], capture_output=True, check=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and daemon.poll() is None:
        try:
            if not client.call("containers.list", timeout=5):
                break
        except ClientError:
            break
        time.sleep(0.2)
    client.close()
    daemon.send_signal(signal.SIGTERM)
    daemon.wait(30)
    for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
        point = line.split()[4]
        if point.startswith(f"{work}/"):
            subprocess.run(["umount", "-l", point], check=False)
    shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--running", type=int, default=100, help="containers kept running meanwhile")
    parser.add_argument("--samples", type=int, default=100, help="containers killed one at a time")
    parser.add_argument("--hops", action="store_true", help="stamp each hop (ACTORD_TRACE_EXIT) and print them")
    parser.add_argument("--dir", default="/dev/shm", help="where to make the state dir (default: /dev/shm, a tmpfs)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="adx-", dir=args.dir))
    trace = work / "trace"
    env = dict(os.environ)
    if args.hops:
        env[TRACE_VARIABLE] = str(trace)
    state = work / "s"
    bundle = create_bundle(work / "bundle", ["sleep", "100000"])
    daemon, client = start_daemon(state, work / "actord.log", env)
    context = zmq.Context()
    try:
        for n in range(args.running):
            client.call("containers.start", {"id": f"load{n}", "bundle": str(bundle)})
        for n in range(args.samples):
            client.call("containers.start", {"id": f"probe{n}", "bundle": str(bundle)})
        sub = attach(f"ipc://{state}/events.sock", [CONTAINER_PREFIX], context=context, rcvhwm=0)
        samples = [measure_one(client, sub, state, f"probe{n}") for n in range(args.samples)]
        sub.close(0)
        delays = [(arrived - noticed) / 1e6 for noticed, arrived, _ in samples]
        print(f"exit -> event with {args.running} running, {args.samples} exits, {os.cpu_count()} cpus, "
              f"state in {args.dir}{' (hops stamped)' if args.hops else ''}")
        print(f"  p50 {percentile(delays, 0.5):.3f} ms   p90 {percentile(delays, 0.9):.3f} ms   "
              f"p99 {percentile(delays, 0.99):.3f} ms   max {max(delays):.3f} ms")
        if args.hops:
            print(f"\n  {'hop (median)':<34} {'since t0':>9} {'step':>9}")
            for hop, since_t0, step in hop_table(trace, samples):
                print(f"  {hop:<34} {since_t0:7.3f} ms {step:7.3f} ms")
    finally:
        context.term()
        cleanup(work, client, daemon)


if __name__ == "__main__":
    main()
