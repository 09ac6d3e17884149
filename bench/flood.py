"""Flood: how many fds and threads a connection flood costs actord, and whether it serves on.

    sudo .venv/bin/python bench/flood.py [--processes 1,4,16] [--connects 1000]

Starts a private actord with a CURVE control socket on 127.0.0.1 (`--listen tcp://...`) and a
metrics server, then, for each target and each count of attacking processes, has every
process open --connects connections at once that never send a byte (and hold them 3 s),
while it samples actord's fds and threads as fast as it can. Prints the baseline, the peak
and the peak over the baseline, whether actord then answers `version` over CURVE, and the
fds once the connections are closed. (A local attacker shares the CPUs with actord: a remote
one, with CPUs of its own, connects faster.)
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zmq.auth

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actorctl.client import Client

BIN = Path(sys.executable).parent
HOLD_SECONDS = 3.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def attack(port: int, connects: int, go: multiprocessing.synchronize.Barrier) -> None:
    """Open `connects` connections to `port` at once, never send a byte, hold them a while."""
    go.wait()
    held = []
    for _ in range(connects):
        connection = socket.socket()
        connection.setblocking(False)
        connection.connect_ex(("127.0.0.1", port))
        held.append(connection)
    time.sleep(HOLD_SECONDS)


def usage(pid: int) -> tuple[int, int]:
    """(fds, threads) of process `pid`."""
    return len(os.listdir(f"/proc/{pid}/fd")), len(os.listdir(f"/proc/{pid}/task"))


def flood(pid: int, port: int, processes: int, connects: int) -> tuple[int, int]:
    """Peak (fds, threads) of `pid` while `processes` attackers connect to `port`."""
    go = multiprocessing.Barrier(processes + 1)
    attackers = [multiprocessing.Process(target=attack, args=(port, connects, go)) for _ in range(processes)]
    for attacker in attackers:
        attacker.start()
    go.wait()
    peak_fds = peak_threads = 0
    end = time.monotonic() + HOLD_SECONDS
    while time.monotonic() < end:
        fds, threads = usage(pid)
        peak_fds, peak_threads = max(peak_fds, fds), max(peak_threads, threads)
    for attacker in attackers:
        attacker.join()
    return peak_fds, peak_threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", default="1,4,16", help="attacking processes, a comma-separated list")
    parser.add_argument("--connects", type=int, default=1000, help="connections per process")
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="adf-", dir="/tmp"))
    server_public, server_secret = zmq.auth.create_certificates(work, "server")
    client_public, client_secret = zmq.auth.create_certificates(work, "client")
    (work / "authorized").mkdir()
    shutil.copy(client_public, work / "authorized")
    control, metrics = free_port(), free_port()
    address = f"tcp://127.0.0.1:{control}"
    with open(work / "actord.log", "ab") as log:
        daemon = subprocess.Popen([str(BIN / "actord"), "start", "--config", "/dev/null", "--state-dir",
                                   str(work / "s"), "--root", str(work / "r"), "--listen", address,
                                   "--curve-secret-key", server_secret, "--curve-authorized-keys",
                                   str(work / "authorized"), "--metrics-address", f"127.0.0.1:{metrics}"],
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=log)

    def version() -> bool:
        try:
            with Client(address, 10, curve_server_key=server_public, curve_client_key=client_secret) as client:
                return bool(client.call("version"))
        except Exception:
            return False

    try:
        deadline = time.monotonic() + 20
        while not version():
            if time.monotonic() > deadline or daemon.poll() is not None:
                raise SystemExit(f"actord did not start; see {work / 'actord.log'}")
        for target, port in (("network control socket", control), ("metrics server", metrics)):
            for processes in (int(count) for count in options.processes.split(",")):
                base_fds, base_threads = usage(daemon.pid)
                peak_fds, peak_threads = flood(daemon.pid, port, processes, options.connects)
                answers = version()
                time.sleep(1)  # let actord see the closes before counting what is left
                after_fds, _ = usage(daemon.pid)
                print(f"{target}, {processes} x {options.connects} connects: fds {base_fds} -> peak {peak_fds} "
                      f"(+{peak_fds - base_fds}), threads {base_threads} -> peak {peak_threads} "
                      f"(+{peak_threads - base_threads}); version answered: {answers}; fds after: {after_fds}",
                      flush=True)
    finally:
        daemon.terminate()
        daemon.wait(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
