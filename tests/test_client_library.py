"""The client library (`actorctl.client`) as a program uses it: from a fresh interpreter in which
click and pykka cannot be imported, against a real actord and real runc containers."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from actors.wire.errors import ErrorCode
from tests.harness import Daemon

REPO = Path(__file__).resolve().parent.parent

BLOCKER = """
import sys
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("click", "pykka"):
            raise ImportError(f"{name} is blocked in this test")
        return None
sys.meta_path.insert(0, Blocker())
sys.path.insert(0, sys.argv[1])
"""
"""Run first in the child: click and pykka unimportable, the source tree on the path."""

PROGRAM = """
import json, signal, sys, threading, time
import actorctl.client as lib
from actorctl.client import Client, NotFound, AlreadyExists, InvalidParams, DaemonError, ActordError

address, talker, sleeper, count = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
out = {"modules_after_import": sorted(m for m in ("click", "pykka", "zmq", "msgpack") if m in sys.modules)}
try:
    import click
    out["click_importable"] = True
except ImportError:
    out["click_importable"] = False

client = Client(address, timeout=20)
out["version"] = client.version().version
started = client.start("talker", talker, labels={"role": "test"})
out["started"] = [started.id, started.status, started.process("init").system_pid is not None, dict(started.labels)]
process = client.exec("talker", ["sh", "-c", "echo from-exec; echo oops >&2; exit 3"], name="job")
out["exec_name"] = process.name
job_exit = client.wait("talker", "job", timeout=30)
out["job_exit"] = [job_exit.status, job_exit.event.type, job_exit.event.process]
out["job_logs"] = [[r.stream, r.data.decode()] for r in client.logs("talker", "job")]
out["job_logs_tail"] = [r.data.decode() for r in client.logs("talker", "job", tail=1)]
follow = client.logs("talker", follow=True)
first = next(follow)
out["init_first_line"] = first.data.decode()
out["since_future"] = list(client.logs("talker", "job", since=time.time() + 3600))
client.signal("talker", signal.SIGKILL)
out["talker_rest"] = [r.data.decode() for r in follow]
out["talker_status"] = follow.status
out["talker_wait"] = client.wait("talker", timeout=30).status   # already exited: from the event log

errors = {}
for code, action in (
    ("not_found", lambda: client.container("nobody")),
    ("already_exists", lambda: [client.start("dup", sleeper), client.start("dup", sleeper)]),
    ("invalid_params", lambda: client.start("bad id!", sleeper)),
    ("not_found_wait", lambda: client.wait("never-was")),
):
    try:
        action()
    except DaemonError as exc:
        errors[code] = [type(exc).__name__, exc.code, isinstance(exc, ActordError)]
client.kill("dup")
client.wait("dup", timeout=30)
out["errors"] = errors

# a burst while a consumer iterates: every event of it exactly once, in order
last_seq = client.call("events.replay", {"after": 2 ** 62})["last_seq"]
seen, ready, burst_done = [], threading.Event(), threading.Event()

def consume():
    reader = client.clone()
    for event in reader.events(after=last_seq, deadline=time.monotonic() + 120):
        seen.append([event.seq, event.type, event.container_id])
        if len(seen) == 1:
            ready.set()
            burst_done.wait(120)   # fall behind on purpose: the socket queues (or drops) the rest
        if sum(1 for s in seen if s[1] == "exit") == count:
            break
    reader.close()

thread = threading.Thread(target=consume)
thread.start()
client.start("burst0", sleeper)
ready.wait(60)
for n in range(1, count):
    client.start(f"burst{n}", sleeper)
for n in range(count):
    client.kill(f"burst{n}")
burst_done.set()
thread.join(180)
out["burst"] = seen
only_exits = list(client.events(after=last_seq, types=["exit"], container_id="burst7", follow=False))
out["filtered"] = [[e.type, e.container_id] for e in only_exits]
client.close()
print(json.dumps(out))
"""


def test_library_without_click_or_pykka(daemon: Daemon, bundles: Callable[..., Path], sleeper: Path) -> None:
    talker = bundles("sh", "-c", "echo hello-init; sleep 100000")
    count = 50
    done = subprocess.run([sys.executable, "-I", "-c", BLOCKER + PROGRAM, str(REPO), daemon.address, str(talker),
                           str(sleeper), str(count)], capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["modules_after_import"] == [] and out["click_importable"] is False
    assert out["started"] == ["talker", "running", True, {"role": "test"}]
    assert out["exec_name"] == "job"
    assert out["job_exit"] == [3, "exit", "job"]
    assert sorted(out["job_logs"]) == [[1, "from-exec\n"], [2, "oops\n"]]
    assert len(out["job_logs_tail"]) == 1
    assert out["init_first_line"] == "hello-init\n"
    assert out["since_future"] == []
    assert out["talker_rest"] == [] and out["talker_status"] == 137 and out["talker_wait"] == 137
    assert out["errors"] == {
        "not_found": ["NotFound", ErrorCode.NOT_FOUND, True],
        "already_exists": ["AlreadyExists", ErrorCode.ALREADY_EXISTS, True],
        "invalid_params": ["InvalidParams", ErrorCode.INVALID_PARAMS, True],
        "not_found_wait": ["NotFound", ErrorCode.NOT_FOUND, True],
    }
    seqs = [seq for seq, _, _ in out["burst"]]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a sequence number was missed or repeated"
    for n in range(count):
        kinds = [kind for _, kind, container in out["burst"] if container == f"burst{n}"]
        assert kinds == ["start-container", "exit"], (n, kinds)
    assert out["filtered"] == [["exit", "burst7"]]


def test_every_error_code_has_its_class() -> None:
    from actorctl import client

    codes = {value for name, value in vars(ErrorCode).items() if name.isupper()}
    classes = {cls.CODE: cls for cls in client.DaemonError.__subclasses__() if cls.CODE is not None}
    assert set(classes) == codes
    for code, cls in classes.items():
        error = client.errors.daemon_error(code, "why")
        assert type(error) is cls and error.code == code and error.message == "why"
        assert isinstance(error, client.ActordError) and cls.__name__ in client.__all__
    assert type(client.errors.daemon_error("new_code", "x")) is client.InternalError
    assert client.CallTimeout is client.Timeout and client.ClientError is client.ActordError


def test_the_guide_example_runs(daemon: Daemon, sleeper: Path) -> None:
    guide = (REPO / "docs" / "client.md").read_text()
    example = guide.split("```python\n", 1)[1].split("```", 1)[0]
    done = subprocess.run([sys.executable, "-I", "-c", BLOCKER + example, str(REPO)], capture_output=True,
                          text=True, timeout=120, env={"ACTORD_ADDRESS": daemon.address, "BUNDLE": str(sleeper)})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "job exited with 3" in lines and "init exited with 137" in lines, done.stdout
    assert "stdout hello" in lines and "stderr oops" in lines and "gone: not_found" in lines
    kinds = [line.split()[1:] for line in lines if line.split()[0].isdigit()]
    assert kinds == [["start-container", "None", "None"], ["start-process", "job", "None"], ["exit", "job", "3"],
                     ["exit", "init", "137"]], done.stdout
