"""The daemon on a full disk, the event log's numbering and damage, and the shim's output pump."""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
import os
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import msgpack
import pytest
import zmq

from actorctl.client import DaemonError
from actorctl.client.events import attach
from actors.eventlog import EventLog
from actors.eventlog.publisher import EventPublisher
from actors.eventlog.store import EventStore
from actors.metrics import Metrics
from actors.outputlog import read_output
from actors.wire import messages as wire
from actors.wire.api import ok_reply
from actors.wire.events import EventRecord, decode, is_record
from shimproc.outputlog import OutputWriter
from tests.harness import Daemon, checked_daemon, mounts_under, pid_alive, wait_until

M = TypeVar("M", bound=wire.Message)

SHELL_LOOP = ("sh", "-c", 'trap "exit 0" TERM; while true; do sleep 0.2; done')
CHATTY = ("sh", "-c", "n=0; while true; do n=$((n+1)); echo $n; echo $n > /said; sleep 0.01; done")
"""Numbers its lines, and keeps the last one it said in its rootfs, where the test reads it."""
VICTIMS = 32
"""Execs killed one by one while the disk is full, until an exit event no longer fits in the
room left in the event log's last page (each event is about 200 bytes)."""
DROPPED = re.compile(rb"\[actord: \d+ bytes of output dropped: no space left on device\]\n")


@contextlib.contextmanager
def small_tmpfs(size: str) -> Iterator[Path]:
    """A tmpfs of `size` on a short new dir under /tmp; unmounted and removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="ad-", dir="/tmp"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=True)
        assert mounts_under(path) == [], f"{path} is still mounted"
        path.rmdir()


class Filler:
    """Takes every free byte of a filesystem; `keep` goes on taking whatever is freed, as a busy disk would."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "filler"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.take()
        assert os.statvfs(directory).f_bfree == 0

    def take(self) -> None:
        for size in (1 << 20, 4096, 1):
            try:
                while os.write(self._fd, b"\0" * size) == size:
                    pass
            except OSError as exc:
                assert exc.errno == errno.ENOSPC

    def keep(self) -> None:
        def run() -> None:
            while not self._stop.wait(0.002):
                self.take()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        os.close(self._fd)
        self.path.unlink()


def test_a_flooding_process_does_not_starve_its_shims_control(daemon: Daemon, bundles: Callable[..., Path]) -> None:
    daemon.start_container("top", bundles(*SHELL_LOOP))
    flood = "for n in 1 2 3 4; do yes & done; read a; read b; read c; kill $(jobs -p)"
    daemon.call("containers.exec", {"id": "top", "pid": "flood", "stdin": True, "args": ["sh", "-c", flood]})
    wait_until(lambda: daemon.call("containers.logs", {"id": "top", "pid": "flood", "max_bytes": 1})["records"],
               message="the flood's output")
    for line in (b"one\n", b"two\n", b"three\n"):
        assert daemon.call("containers.stdin", {"id": "top", "pid": "flood", "data": line}, timeout=5) == {}
    daemon.wait_events(lambda ev: any(e["type"] == "exit" and e["pid"] == "flood" for e in ev))
    page = daemon.call("containers.logs", {"id": "top", "pid": "flood", "max_bytes": 1024})
    assert page["records"][0][2].startswith(b"y\ny\n")


def test_a_logs_cursor_past_the_output_is_invalid(daemon: Daemon, bundles: Callable[..., Path]) -> None:
    daemon.start_container("talk", bundles("sh", "-c", "echo hello; sleep 100000"))
    page = wait_until(lambda: (p := daemon.call("containers.logs", {"id": "talk"}))["records"] and p,
                      message="the output")
    assert [r[2] for r in page["records"]] == [b"hello\n"]
    generation, offset = page["cursor"]
    assert daemon.call("containers.logs", {"id": "talk", "cursor": [generation, offset]})["records"] == []
    for cursor, complaint in (([generation + 1, 0], "past the newest output file"),
                              ([generation, offset + 1], "past the end of output file")):
        with pytest.raises(DaemonError) as refused:
            daemon.call("containers.logs", {"id": "talk", "cursor": cursor})
        assert refused.value.code == "invalid_params" and complaint in refused.value.message
    daemon.call("containers.signal", {"id": "talk", "signal": 9})
    daemon.wait_events(lambda ev: any(e["type"] == "exit" for e in ev))


@pytest.fixture
def full_disk_daemon(request: pytest.FixtureRequest) -> Iterator[Daemon]:
    """A running actord whose state dir is an 8 MiB tmpfs; afterwards, as with `daemon`: no
    container, shim or zombie left, the daemon stopped by pid, and nothing but the tmpfs mounted."""
    with small_tmpfs("8m") as state_dir, checked_daemon(Daemon(state_dir), request,
                                                        own_mounts=(str(state_dir),)) as instance:
        yield instance


class Subscriber:
    """A SUB on the daemon's event socket, attached (welcomed) before it is returned."""

    def __init__(self, daemon: Daemon) -> None:
        self.socket = attach(f"ipc://{daemon.state_dir}/events.sock")
        self.events: list[EventRecord] = []

    def wait_for(self, predicate: Callable[[EventRecord], bool], timeout: float = 10.0) -> EventRecord:
        deadline = time.monotonic() + timeout
        while self.socket.poll(max(1, int((deadline - time.monotonic()) * 1000))):
            message = decode(self.socket.recv_multipart())
            if is_record(message):
                self.events.append(message)
                if predicate(message):
                    return message
        raise AssertionError(f"no such event within {timeout}s; got {self.events[-5:]}")

    def wait_for_exit(self, pid: str, timeout: float = 10.0) -> EventRecord:
        return self.wait_for(lambda e: e["type"] == "exit" and e["pid"] == pid, timeout)

    def close(self) -> None:
        self.socket.close()


def all_output(daemon: Daemon, container_id: str) -> list[list[Any]]:
    records: list[list[Any]] = []
    cursor = None
    while True:
        page = daemon.call("containers.logs", {"id": container_id, "cursor": cursor})
        if not page["records"]:
            return records
        records += page["records"]
        cursor = page["cursor"]


def room_retaken(state: Path, removed: Path) -> Callable[[], bool]:
    """Whether `removed` is gone and the filler has taken the room it left."""
    return lambda: not removed.exists() and os.statvfs(state).f_bfree == 0


def said(bundle: Path) -> int:
    """The last line number a CHATTY container said (0 before its first, or mid-write)."""
    try:
        return int((bundle / "rootfs" / "said").read_text())
    except (FileNotFoundError, ValueError):
        return 0


def last_stored(daemon: Daemon, container_id: str) -> int:
    """The last line number of a CHATTY container's output on record."""
    return max((int(line) for record in all_output(daemon, container_id) for line in record[2].split()
                if line.isdigit()), default=0)


def degraded(daemon: Daemon) -> list[str]:
    reasons: list[str] = daemon.call("version")["degraded"]
    return reasons


def test_a_full_disk_delays_records_and_drops_output_but_stops_nothing(
        full_disk_daemon: Daemon, bundles: Callable[..., Path]) -> None:
    daemon, state = full_disk_daemon, full_disk_daemon.state_dir
    chatty_bundle = bundles(*CHATTY)
    chatty = daemon.start_container("chatty", chatty_bundle)["processes"][0]
    daemon.start_container("host", bundles(*SHELL_LOOP))
    victims = [f"victim-{n:02d}-".ljust(64, "x") for n in range(VICTIMS)]
    for name in victims:
        daemon.known_shims.add(daemon.call("containers.exec", {"id": "host", "pid": name,
                                                               "args": ["sleep", "100000"]})["shim_pid"])
    subscriber = Subscriber(daemon)
    filler = Filler(state)
    filler.keep()
    try:
        reasons = wait_until(lambda: degraded(daemon), 5, 0.1, "version to show the full disk")
        assert reasons == [f"storage full: no space left on the state dir's filesystem ({state})"]
        shown = daemon.ctl("version")
        assert shown.returncode == 1 and f"degraded: {reasons[0]}" in shown.stdout
        for method, params in (("containers.start", {"id": "newbie", "bundle": str(bundles(*SHELL_LOOP))}),
                               ("containers.exec", {"id": "host", "args": ["true"]})):
            with pytest.raises(DaemonError) as refused:
                daemon.call(method, params, timeout=5)
            assert refused.value.code == "storage_full" and reasons[0] in refused.value.message
        killed = []
        for name in victims:  # until an exit does not fit in the event log's last page
            daemon.call("containers.signal", {"id": "host", "pid": name, "signal": 9})
            killed.append(name)
            subscriber.wait_for_exit(name)
            if any("not yet written" in reason for reason in degraded(daemon)):
                break
            wait_until(room_retaken(state, state / "containers" / "host" / name),
                       message="the filler to take the room the recorded exit's state left")
        else:
            raise AssertionError("every exit was written: the disk was never full for the event log")
        for name in victims[len(killed):len(killed) + 2]:
            daemon.call("containers.signal", {"id": "host", "pid": name, "signal": 9})
            killed.append(name)
            subscriber.wait_for_exit(name)
        assert [c["id"] for c in daemon.call("containers.list")] == ["chatty", "host"]
        assert pid_alive(chatty["system_pid"]) and pid_alive(chatty["shim_pid"])
        replayed = [(e["pid"], e["status"]) for e in daemon.events() if e["type"] == "exit"]
        assert replayed == [(name, 137) for name in killed], "replay serves exits not yet on disk"
        assert (state / "containers" / "host" / killed[-1]).is_dir(), "state stays until the exit is on record"
        wait_until(lambda: said(chatty_bundle) > last_stored(daemon, "chatty") + 10,
                   message="chatty's output to be dropped on the full disk, not blocked")
    finally:
        filler.release()
    wait_until(lambda: not degraded(daemon), 5, 0.1, "the pending events to be written")
    wait_until(lambda: not any((state / "containers" / "host" / name).exists() for name in killed),
               message="the state of the recorded exits to go")
    wait_until(lambda: any(r[0] == 2 and DROPPED.fullmatch(r[2]) for r in all_output(daemon, "chatty")),
               message="a marker for the dropped output")
    assert pid_alive(chatty["system_pid"]) and pid_alive(chatty["shim_pid"])
    daemon.start_container("later", bundles("true"))
    for container_id in ("chatty", "host"):
        daemon.call("containers.signal", {"id": container_id, "signal": 9})
    daemon.wait_events(lambda ev: sum(e["type"] == "exit" and e["pid"] == "init" for e in ev) == 3)
    live = {(e["id"], e["pid"]): e["seq"] for e in subscriber.events if e["type"] == "exit"}
    subscriber.close()
    spawner = daemon.spawner_pid()
    assert daemon.stop() == 0
    if spawner:
        wait_until(lambda: not pid_alive(spawner), message="the old spawner to exit")
    daemon.start()
    events = daemon.events()
    numbers = [e["seq"] for e in events]
    assert numbers == sorted(set(numbers))
    exits = collections.Counter((e["id"], e["pid"]) for e in events if e["type"] == "exit")
    assert set(exits.values()) == {1}
    assert set(exits) == {("host", name) for name in victims} | {(c, "init") for c in ("chatty", "host", "later")}
    stored = {(e["id"], e["pid"]): e["seq"] for e in events if e["type"] == "exit"}
    assert {key: seq for key, seq in stored.items() if key in live} == live


# --- the event store and the output writer on their own (no daemon) ---


@pytest.fixture
def tiny_fs() -> Iterator[Path]:
    with small_tmpfs("64k") as path:
        yield path


def new_store(directory: Path, retain: int = 100) -> EventStore:
    return EventStore(directory / "events.log", retain, directory / "events.seq")


def add(store: EventStore, count: int = 1) -> list[dict[str, Any]]:
    """Append `count` events the way the EventLog does: numbered last_seq + 1."""
    return [event for _ in range(count)
            for event in store.append({"seq": store.last_seq + 1, "type": "exit", "id": "c1", "pid": "init",
                                       "status": 0, "timestamp": time.time(), "token": "t" * 32})]


def seqs(store: EventStore) -> list[int]:
    return [event["seq"] for event in store.events]


def test_a_torn_tail_is_cut_and_numbering_goes_on(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    add(store, 3)
    store.close()
    good = (tmp_path / "events.log").stat().st_size
    with open(tmp_path / "events.log", "ab") as log:
        log.write(msgpack.packb({"seq": 4, "type": "exit", "id": "c1"})[:-3])
    store = new_store(tmp_path)
    assert seqs(store) == [1, 2, 3] and (tmp_path / "events.log").stat().st_size == good
    add(store)
    assert seqs(store) == [1, 2, 3, 4]
    store.close()
    assert seqs(new_store(tmp_path)) == [1, 2, 3, 4]


def test_damage_in_the_middle_keeps_the_records_after_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = new_store(tmp_path)
    add(store, 6)
    store.close()
    log = tmp_path / "events.log"
    data = bytearray(log.read_bytes())
    record = len(data) // 6
    data[2 * record + 1:3 * record + 5] = b"\xc1" * (record + 4)  # the third record and the fourth's head
    log.write_bytes(data)
    with caplog.at_level(logging.ERROR):
        store = new_store(tmp_path)
    assert seqs(store) == [1, 2, 5, 6] and store.last_seq == 6
    assert "damaged and were skipped" in caplog.text
    assert (tmp_path / "events.log.damaged").read_bytes() == data
    add(store)
    store.close()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert seqs(new_store(tmp_path)) == [1, 2, 5, 6, 7]
    assert caplog.text == "", "the log was rewritten without the damage"


def test_numbers_stay_above_a_lost_log_and_a_torn_high_water_slot(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    add(store, 5)
    store.close()
    (tmp_path / "events.log").write_bytes(b"")
    store = new_store(tmp_path)
    assert seqs(store) == [] and store.last_seq == 5
    add(store)
    assert seqs(store) == [6]
    store.close()
    mark = tmp_path / "events.seq"
    slots = bytearray(mark.read_bytes())
    slots[0:4] = b"\xff\xff\xff\xff"  # slot 0 holds 6, the newest: torn
    mark.write_bytes(slots)
    (tmp_path / "events.log").write_bytes(b"")
    store = new_store(tmp_path)
    assert store.last_seq == 5, "the other slot's number, one below"
    store.close()


def test_events_that_cannot_be_written_wait_in_memory_in_order(tiny_fs: Path) -> None:
    store = new_store(tiny_fs)
    add(store, 2)
    filler = Filler(tiny_fs)
    written = []
    while not store.unwritten:  # the log's last page may still have room for a few
        written += add(store)
        assert len(written) < 100
    add(store, 3)
    assert len(store.unwritten) == 4
    assert store.trouble() == (f"storage full: 4 event(s) not yet written to {tiny_fs / 'events.log'}: "
                               "no space left on device")
    assert seqs(store)[-4:] == [e["seq"] for e in store.after(seqs(store)[-5])], "replay serves them"
    on_disk = new_store(tiny_fs)
    assert seqs(on_disk) == seqs(store)[:-4], "no torn record in the file"
    on_disk.close()
    filler.release()
    assert [e["seq"] for e in store.flush()] == seqs(store)[-4:]
    assert store.trouble() is None and not store.unwritten
    store.close()
    reloaded = new_store(tiny_fs)
    assert seqs(reloaded) == list(range(1, len(seqs(store)) + 1))
    reloaded.close()


def test_compaction_on_a_full_disk_is_put_off(tiny_fs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = new_store(tiny_fs, retain=2)
    add(store, 4)
    filler = Filler(tiny_fs)
    add(store)  # 5 records, more than twice the 2 kept: compaction needs a new page and fails
    assert not store.unwritten and store.trouble() == (
        f"storage full: no space left on the state dir's filesystem ({tiny_fs})")
    assert sorted(p.name for p in tiny_fs.iterdir()) == ["events.log", "events.seq", "filler"]
    filler.release()
    monkeypatch.setattr("actors.eventlog.store.COMPACT_RETRY", 0.0)
    store._compact_after = 0.0
    add(store)
    store.close()
    assert seqs(new_store(tiny_fs)) == [5, 6], "compacted once there was room"


def test_output_that_cannot_be_stored_is_counted_and_a_marker_says_so(tiny_fs: Path) -> None:
    writer = OutputWriter(tiny_fs, limit=1 << 20)
    writer.write(1, b"first\n")
    filler = Filler(tiny_fs)
    lost = 0
    while not writer.dropped:  # the file's last page may still have room for a few
        writer.write(1, b"x" * 100)
        lost = 100
        assert writer.size < 8192
    for _ in range(3):
        writer.write(2, b"y" * 100)
        lost += 100
    assert writer.dropped == lost
    page = read_output(tiny_fs, None, 1 << 20)
    assert page["cursor"] == [0, writer.size] == [0, (tiny_fs / "output.0.log").stat().st_size], "no torn record"
    filler.release()
    writer.write(1, b"back\n")
    records = read_output(tiny_fs, page["cursor"], 1 << 20)["records"]
    assert [(r[0], r[2]) for r in records] == [
        (2, f"[actord: {lost} bytes of output dropped: no space left on device]\n".encode()), (1, b"back\n")]
    writer.close()


class RecordingPublisher(EventPublisher):
    """Keeps what the EventLog publishes, with no socket: the test below is about the log's logic."""

    def __init__(self) -> None:
        self.subscribers = 0
        self.published: list[tuple[str, dict[str, Any]]] = []

    def publish(self, topic: str, event: dict[str, Any]) -> None:
        self.published.append((topic, event))

    def close(self) -> None:
        pass


def test_the_event_log_answers_at_once_and_records_exits_late_on_a_full_disk(tiny_fs: Path) -> None:
    store = new_store(tiny_fs)
    publisher = RecordingPublisher()
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    log = EventLog(context, store, "boot", Metrics(), publisher)
    sent: list[wire.Message] = []
    log.send = lambda destination, message: sent.append(message)  # type: ignore[method-assign]

    def of(kind: type[M]) -> list[M]:
        return [message for message in sent if isinstance(message, kind)]

    filler = Filler(tiny_fs)
    tokens: list[str] = []
    while not store.unwritten:  # until an exit no longer fits in the log's last page
        tokens.append(f"{len(tokens):032d}")
        log.on_emit(wire.Emit(event="exit", container_id="c1", process=f"p{len(tokens)}", status=0, token=tokens[-1]))
    assert [m.token for m in of(wire.Recorded)] == tokens[:-1], "the last exit is not on record yet"
    log.on_emit(wire.Emit(event="start-container", container_id="c2", route=b"client",
                          reply=ok_reply("r1", {"id": "c2"})))
    [reply] = of(wire.ClientReply)
    assert reply.body["error"] == {"code": "storage_full", "message": (
        "container c2 started, but its event could not be recorded: no space left on device; "
        "it is kept in memory and written when space returns")}
    assert publisher.published[-1][1]["id"] == "c2", "published all the same"
    assert of(wire.Storage)[-1] == wire.Storage(degraded=True, reason=(
        f"storage full: 2 event(s) not yet written to {tiny_fs / 'events.log'}: no space left on device"))
    sent.clear()
    filler.release()
    log.on_tick(wire.Tick())
    assert [m.token for m in of(wire.Recorded)] == tokens[-1:]
    assert of(wire.Storage) == [wire.Storage(degraded=False, reason=None)]
    log.on_stop()  # its direct inbox socket: the context's term waits for it
    context.term()
    store.close()
