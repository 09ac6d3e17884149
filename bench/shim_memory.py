"""Shim memory with and without a CRI log: what writing the kubelet's log format costs a shim.

    sudo .venv/bin/python bench/shim_memory.py [--shims 20] [--rounds 5]

Each round starts `--shims` containers that write 200 lines (stdout and stderr) and then
sleep, half of them with a CRI log (`cri_log`), the two kinds started in turn; once every line
is in the logs it reads each shim's private memory (Private_Clean + Private_Dirty of
/proc/<pid>/smaps_rollup: the pages it does not share with the spawner) and PSS, and kills
them. Prints the median per shim of each kind, per round and over all rounds.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actorctl.bundle import create_bundle
from actorctl.client import Client

from private_actord import actord_command

SCRIPT = "i=0; while [ $i -lt 100 ]; do echo out $i; echo err $i >&2; i=$((i+1)); done; exec sleep 100000"
LINES = 200


def rollup_kib(pid: int) -> dict[str, int]:
    """The kB figures of /proc/<pid>/smaps_rollup."""
    figures = {}
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            name, _, rest = line.partition(":")
            if rest.strip().endswith("kB"):
                figures[name] = int(rest.split()[0])
    return figures


def wait_for(predicate: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.05)


def one_round(client: Client, bundle: Path, logs: Path, shims: int, round_no: int) -> dict[bool, list[dict[str, int]]]:
    started: dict[str, tuple[bool, int]] = {}
    for n in range(shims):
        cri = n % 2 == 1
        name = f"m{round_no}-{n}"
        params = {"id": name, "bundle": str(bundle)}
        if cri:
            params["cri_log"] = str(logs / f"{name}.log")
        state = client.call("containers.start", params)
        started[name] = (cri, state["processes"][0]["shim_pid"])

    def written() -> bool:
        for name, (cri, _) in started.items():
            records = client.call("containers.logs", {"id": name, "max_bytes": 1 << 18})["records"]
            if sum(r[2].count(b"\n") for r in records) < LINES:
                return False
            if cri and (logs / f"{name}.log").read_bytes().count(b"\n") < LINES:
                return False
        return True

    wait_for(written)
    figures: dict[bool, list[dict[str, int]]] = {False: [], True: []}
    for cri, pid in started.values():
        figures[cri].append(rollup_kib(pid))
    kill_all(client)
    return figures


def kill_all(client: Client) -> None:
    """Kill every container and wait until each is gone (actord's stop would leave them running)."""
    for container in client.call("containers.list"):
        client.call("containers.signal", {"id": container["id"], "signal": int(signal.SIGKILL)})
    wait_for(lambda: not client.call("containers.list"))


def answers(address: str) -> bool:
    try:
        with Client(address, 1) as client:
            client.call("version")
    except Exception:
        return False
    return True


def private(figure: dict[str, int]) -> int:
    return figure["Private_Clean"] + figure["Private_Dirty"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shims", type=int, default=20, help="containers per round, half with a CRI log")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="abm-", dir="/tmp"))
    state = work / "s"
    address = f"ipc://{state}/actord.sock"
    daemon = subprocess.Popen(actord_command(state), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        bundle = create_bundle(work / "bundle", ["sh", "-c", SCRIPT])
        wait_for(lambda: answers(address))
        totals: dict[bool, list[dict[str, int]]] = {False: [], True: []}
        with Client(address, 60) as client:
            for round_no in range(args.rounds):
                figures = one_round(client, bundle, work / "logs", args.shims, round_no)
                for cri in (False, True):
                    totals[cri] += figures[cri]
                print(f"round {round_no}: private kB per shim (median): "
                      f"without {statistics.median(map(private, figures[False]))}, "
                      f"with a CRI log {statistics.median(map(private, figures[True]))}")
        for cri in (False, True):
            kind = "with a CRI log" if cri else "without"
            print(f"all rounds, {kind}: private {statistics.median(map(private, totals[cri]))} kB, "
                  f"PSS {statistics.median(f['Pss'] for f in totals[cri])} kB (median of {len(totals[cri])} shims)")
    finally:
        if answers(address):
            with Client(address, 60) as client:
                kill_all(client)
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(f"{state}.root", ignore_errors=True)


if __name__ == "__main__":
    main()
