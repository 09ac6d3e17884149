"""Benchmark actord against bare runc, measured in the same run on the same bundle.

    sudo .venv/bin/python bench/bench.py [--runs 20] [--concurrent 50]

Prints medians and ratios:
  * start latency: bare `runc create` + `runc start`  vs  `actorctl containers start`
    (a new CLI process each time) and the client library's `containers.start`;
  * 50 concurrent starts: containers per second, bare runc vs actord;
  * exit -> event: from the kernel's pidfd notice of the container's exit to the
    `exit` event arriving on the PUB socket;
  * memory: PSS per shim with 50 containers running;
  * exec latency: bare `runc exec -d` vs actord's `containers.exec` (client library).
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
from typing import Any, Callable

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actorctl.bundle import create_bundle  # noqa: E402
from actorctl.client import Client  # noqa: E402
from actors.fdwait import readable  # noqa: E402

BIN = Path(sys.executable).parent


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


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


def timed(action: Callable[[], Any]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def concurrent(count: int, action: Callable[[int], Any]) -> float:
    """Run `action(n)` for n in range(count) in as many threads; return containers per second."""
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            action(n)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise errors[0]
    return count / elapsed


def wait_for_exit_events(client: Client, ids: set[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = {e["id"] for e in client.call("events.replay", {"after": 0})["events"] if e["type"] == "exit"}
        if ids <= seen:
            return
        time.sleep(0.05)
    raise RuntimeError("exit events did not arrive")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="sequential starts per method")
    parser.add_argument("--concurrent", type=int, default=50, help="containers started at once")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="adbench-", dir="/tmp"))
    bundle = create_bundle(work / "bundle", ["sleep", "100000"])
    bare = BareRunc(work / "runc", bundle)
    state = work / "s"
    daemon = subprocess.Popen([str(BIN / "actord"), "start", "--state-dir", str(state)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(work / "actord.log", "wb"))
    address = f"ipc://{state}/actord.sock"
    client = Client(address, timeout=60)
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
        print(f"actord {info['version']}, {info['runtime']}, {os.cpu_count()} cpus, {args.runs} runs\n")

        # 1. sequential start latency
        bare_times, cli_times, lib_times = [], [], []
        env = dict(os.environ, ACTORD_ADDRESS=address)
        for n in range(args.runs):
            cid = f"bare{n}"
            bare_times.append(timed(lambda: bare.start(cid)))
            bare.remove(cid)
            cid = f"cli{n}"
            cli_times.append(timed(lambda: subprocess.run(
                [str(BIN / "actorctl"), "containers", "start", cid, str(bundle)],
                env=env, check=True, stdout=subprocess.DEVNULL)))
            client.call("containers.signal", {"id": cid, "signal": 9})
            cid = f"lib{n}"
            lib_times.append(timed(lambda: client.call("containers.start", {"id": cid, "bundle": str(bundle)})))
            client.call("containers.signal", {"id": cid, "signal": 9})
        base = statistics.median(bare_times)
        print("start latency (median)")
        print(f"  bare runc create+start        {ms(base)}   1.00x")
        for label, values in (("actorctl containers start", cli_times), ("client library start", lib_times)):
            med = statistics.median(values)
            print(f"  {label:<29} {ms(med)}   {med / base:4.2f}x")

        # 2. concurrent starts
        count = args.concurrent
        bare_rate = concurrent(count, lambda n: bare.start(f"cb{n}"))
        for n in range(count):
            bare.remove(f"cb{n}")

        def start_one(n: int) -> None:
            with Client(address, timeout=120) as own:
                own.call("containers.start", {"id": f"cc{n}", "bundle": str(bundle)})

        ours_rate = concurrent(count, start_one)
        listed = client.call("containers.list")
        shim_pids = [c["processes"][0]["shim_pid"] for c in listed if c["id"].startswith("cc")]
        print(f"\n{count} concurrent starts")
        print(f"  bare runc                     {bare_rate:7.1f} /s   1.00x")
        print(f"  actord                        {ours_rate:7.1f} /s   {ours_rate / bare_rate:4.2f}x")

        # 3. memory per shim with `count` running
        shim_pss = [pss_kib(pid) for pid in shim_pids]
        spawner = [int(p) for p in os.listdir("/proc") if p.isdigit() and
                   Path(f"/proc/{p}/cmdline").read_bytes().startswith(b"actor-shim-spawner " + str(state).encode())]
        print(f"\nmemory with {len(shim_pids)} running")
        print(f"  PSS per shim (median)         {statistics.median(shim_pss) / 1024:7.2f} MiB")
        print(f"  PSS of all shims + spawner    {(sum(shim_pss) + sum(pss_kib(p) for p in spawner)) / 1024:7.1f} MiB")
        print(f"  PSS of actord                 {pss_kib(daemon.pid) / 1024:7.1f} MiB")
        for n in range(count):
            client.call("containers.signal", {"id": f"cc{n}", "signal": 9})
        wait_for_exit_events(client, {f"cc{n}" for n in range(count)})

        # 4. exit -> event latency
        context = zmq.Context.instance()
        sub = context.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"container/")
        sub.connect(info["events_address"])
        time.sleep(0.3)
        latencies = []
        for n in range(args.runs):
            cid = f"lat{n}"
            started = client.call("containers.start", {"id": cid, "bundle": str(bundle)})
            pid = started["processes"][0]["system_pid"]
            pidfd = os.pidfd_open(pid)
            while sub.poll(0):
                sub.recv_multipart()
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            readable([pidfd], None)
            exited = time.perf_counter()
            os.close(pidfd)
            while True:
                topic, body = sub.recv_multipart()
                if topic == f"container/{cid}/exit".encode():
                    latencies.append(time.perf_counter() - exited)
                    break
        sub.close()
        print("\nexit -> event on the PUB socket")
        print(f"  median                        {ms(statistics.median(latencies))}")
        print(f"  max                           {ms(max(latencies))}")

        # 5. exec latency into a running container
        bare.start("execbare")
        client.call("containers.start", {"id": "execours", "bundle": str(bundle)})
        bare_exec, ours_exec = [], []
        for n in range(args.runs):
            bare_exec.append(timed(lambda: bare.run("exec", "-d", "execbare", "sleep", "1000")))
            ours_exec.append(timed(lambda: client.call(
                "containers.exec", {"id": "execours", "pid": f"e{n}", "args": ["sleep", "1000"]})))
        base = statistics.median(bare_exec)
        print("\nexec latency (median)")
        print(f"  bare runc exec -d             {ms(base)}   1.00x")
        print(f"  client library exec           {ms(statistics.median(ours_exec))}   "
              f"{statistics.median(ours_exec) / base:4.2f}x")
    finally:
        client.close()
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
