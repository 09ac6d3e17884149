"""The Supervisor's containers.start handler never looks at the requester's bundle.

The bundle is whoever sent the request's: anything read from it here would be a second read
(after or before the worker's), of a file its owner may change in between. The handler only
checks the parameters and hands the path to a worker, which reads the bundle once.
"""

from __future__ import annotations

import builtins
import os
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

import pytest

from actors.images.bundles import PREPARED_MARK
from actors.memory import HeapReturn
from actors.supervisor.deferred import DEFERRED
from actors.supervisor.effects import Effect, SaveDefinition, Submit
from actors.supervisor.lifecycle import Lifecycle
from actors.supervisor.start import bundle_made, prepare_request
from actors.supervisor.start import request as start_request
from actors.wire import ApiError
from actors.wire.messages import ImageBundleDone, ImageBundleTask, Message, Request, StartTask

if TYPE_CHECKING:
    from actors.supervisor.actor import Supervisor


class StubSupervisor:
    """What the start handler uses of the Supervisor: its lifecycle, effects and heap."""

    def __init__(self) -> None:
        self.life = Lifecycle(stored_config=lambda container_id: f"/root/{container_id}/config.json")
        self.heap = HeapReturn()
        self.effects: list[Effect] = []
        self.preparing: set[str] = set()
        self.image_containers: set[str] = set()
        self.prepared: set[str] = set()
        self.root = SimpleNamespace(image_bundles=Path("/root/images/containers"))
        self.sent: list[tuple[str, Message]] = []
        self.replies: list[tuple[Any, Any, ApiError | None]] = []
        self.released: list[str] = []

    def carry_out(self, effects: list[Effect]) -> None:
        self.effects += effects

    def send(self, destination: str, message: Message) -> None:
        self.sent.append((destination, message))

    def reply(self, client: Any, result: Any = None, error: ApiError | None = None) -> None:
        self.replies.append((client, result, error))

    def release_if_gone(self, container_id: str) -> None:
        self.released.append(container_id)


@pytest.fixture
def touched(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every path the code under test stats, opens or lists (through os, io or pathlib)."""
    paths: list[str] = []

    def recording(original: Any) -> Any:
        def call(path: Any, *args: Any, **kwargs: Any) -> Any:
            paths.append(os.fsdecode(path) if isinstance(path, str | bytes | os.PathLike) else repr(path))
            return original(path, *args, **kwargs)
        return call

    for name in ("stat", "lstat", "open", "access", "listdir", "scandir", "readlink"):
        monkeypatch.setattr(os, name, recording(getattr(os, name)))
    monkeypatch.setattr(builtins, "open", recording(builtins.open))
    return paths


def start(sup: StubSupervisor, params: dict[str, Any]) -> object:
    return start_request(cast("Supervisor", sup), Request(route=b"r", request_id="1", method="containers.start",
                                                         params=params))


@pytest.mark.parametrize("restart", ["no", "always"])
def test_a_start_hands_the_bundle_path_on_without_touching_it(restart: str, touched: list[str],
                                                              tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text("{}")
    sup = StubSupervisor()
    assert start(sup, {"id": "c1", "bundle": str(bundle), "restart": restart}) is DEFERRED
    assert [path for path in touched if path.startswith(str(bundle))] == []
    (submit,) = [effect for effect in sup.effects if isinstance(effect, Submit)]
    assert isinstance(submit.task, StartTask) and submit.task.bundle == str(bundle)
    assert submit.task.keep_config is (restart == "always")  # its worker keeps the bytes it reads
    assert any(isinstance(effect, SaveDefinition) for effect in sup.effects) is (restart == "always")


def test_a_missing_bundle_is_the_workers_to_find(touched: list[str]) -> None:
    sup = StubSupervisor()
    assert start(sup, {"id": "c1", "bundle": "/no/such/bundle"}) is DEFERRED
    assert touched == []
    with pytest.raises(ApiError, match="must be absolute"):  # the parameters are still checked here
        start(StubSupervisor(), {"id": "c2", "bundle": "relative/bundle"})


def test_an_image_start_has_its_bundle_made_first_and_holds_its_id_meanwhile() -> None:
    sup = StubSupervisor()
    params = {"id": "c1", "image": "busybox", "args": ["echo", "hi"], "restart": "always"}
    assert start(sup, params) is DEFERRED
    [(destination, task)] = sup.sent
    assert destination == "images" and isinstance(task, ImageBundleTask)
    assert (task.container_id, task.image, task.args, task.params) == ("c1", "busybox", ["echo", "hi"], params)
    assert sup.effects == [], "nothing starts before the bundle is made"
    for again in ({"id": "c1", "image": "busybox"}, {"id": "c1", "bundle": "/srv/b"}):
        with pytest.raises(ApiError, match="already exists"):
            start(sup, again)
    with pytest.raises(ApiError, match="not both"):
        start(sup, {"id": "c2", "image": "busybox", "bundle": "/srv/b"})
    with pytest.raises(ApiError, match="'args' must be a list of strings"):
        start(sup, {"id": "c3", "image": "busybox", "args": "echo hi"})

    bundle_made(cast("Supervisor", sup), ImageBundleDone(container_id="c1", bundle="/root/images/containers/c1",
                                                         route=b"r", request_id="1", params=params))
    (submit,) = [effect for effect in sup.effects if isinstance(effect, Submit)]
    assert isinstance(submit.task, StartTask) and submit.task.bundle == "/root/images/containers/c1"
    assert submit.task.keep_config and sup.preparing == set() and sup.image_containers == {"c1"}


def test_an_image_start_whose_bundle_cannot_be_made_is_answered_with_why() -> None:
    sup = StubSupervisor()
    start(sup, {"id": "c1", "image": "nosuch"})
    bundle_made(cast("Supervisor", sup), ImageBundleDone(
        container_id="c1", error={"code": "not_found", "message": "no image nosuch:latest in the store"},
        route=b"r", request_id="1", params={"id": "c1", "image": "nosuch"}))
    [(_, _, error)] = sup.replies
    assert error is not None and (error.code, error.message) == ("not_found", "no image nosuch:latest in the store")
    assert sup.effects == [] and sup.preparing == set(), "the id is free again"


def test_a_cri_log_goes_to_the_worker_and_into_every_life_without_being_touched(touched: list[str],
                                                                               tmp_path: Path) -> None:
    log = str(tmp_path / "pods" / "uid" / "c" / "0.log")
    sup = StubSupervisor()
    assert start(sup, {"id": "c1", "bundle": "/srv/b", "restart": "always", "cri_log": log}) is DEFERRED
    assert [path for path in touched if path.startswith(str(tmp_path))] == [], "the shim opens it, not the Supervisor"
    (submit,) = [effect for effect in sup.effects if isinstance(effect, Submit)]
    assert isinstance(submit.task, StartTask) and submit.task.cri_log == log
    (save,) = [effect for effect in sup.effects if isinstance(effect, SaveDefinition)]
    assert save.definition.get("cri_log") == log
    container = sup.life.containers["c1"]
    assert container.successor().cri_log == log and container.to_json()["cri_log"] == log
    for bad, why in (("c/0.log", "must be an absolute path"), ("/a/../0.log", "must be a normalized path"),
                     ("/a/\0", "must not hold a NUL")):
        with pytest.raises(ApiError, match=f"cri_log .* {why}"):
            start(sup, {"id": "c2", "bundle": "/srv/b", "cri_log": bad})
        with pytest.raises(ApiError, match=f"cri_log .* {why}"):
            start(sup, {"id": "c3", "image": "busybox", "cri_log": bad})
    assert sup.sent == [], "an image start refused before its bundle is made"


def test_a_prepared_bundle_is_marked_kept_answered_and_becomes_the_containers_at_its_start(tmp_path: Path) -> None:
    sup = StubSupervisor()
    sup.root = SimpleNamespace(image_bundles=tmp_path)
    bundle = tmp_path / "c1"
    bundle.mkdir()
    assert prepare_request(cast("Supervisor", sup), Request(route=b"r", request_id="1", method="containers.prepare",
                                                            params={"id": "c1", "image": "busybox"})) is DEFERRED
    [(_, task)] = sup.sent
    assert isinstance(task, ImageBundleTask) and task.params == {"prepare": True}
    bundle_made(cast("Supervisor", sup), ImageBundleDone(container_id="c1", bundle=str(bundle), route=b"r",
                                                         request_id="1", params=task.params))
    assert sup.replies == [((b"r", "1"), {"bundle": str(bundle)}, None)] and sup.effects == [], "nothing starts"
    assert sup.prepared == {"c1"} and sup.image_containers == {"c1"} and (bundle / PREPARED_MARK).exists()
    with pytest.raises(ApiError, match="prepared bundle"):
        start(sup, {"id": "c1", "bundle": "/srv/elsewhere"})
    assert start(sup, {"id": "c1", "bundle": str(bundle)}) is DEFERRED
    assert [effect for effect in sup.effects if isinstance(effect, Submit)], "it starts from its bundle"
    assert sup.prepared == set() and not (bundle / PREPARED_MARK).exists(), "the bundle now goes with the container"
