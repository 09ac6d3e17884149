"""The ImageService actor: the only owner of `<root>/images` and of the root filesystems of
containers of images.

    <images>/oci/                 the OCI layout of every image (store.py; skopeo fills it)
    <images>/layers/<hex>/        each layer unpacked once (layers.py)
    <images>/containers/<id>/     a container's bundle, its rootfs an overlay of its layers (bundles.py)
    <images>/import-*/            0700: an archive being uploaded or imported (uploads.py, imports.py)

The bus hands it every `images.*` request; the Supervisor hands it the bundle of each
`containers.start` with an `image` (`ImageBundleTask`) and the removal of a container that is
gone for good (`ReleaseImageBundle`). What takes long (pulls, imports, unpacks, removals and
collection) runs on a small bounded pool of threads, never on this actor's thread nor the
Supervisor's; the pool reports back to this actor (`_Done`, `_Progress`), which alone sends.
Two pulls of one image (one normalized reference) with the same credentials (or none) share one
download: the second waits for the first and gets its answer.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pykka
import zmq

from actors.base import BusActor, Handlers
from actors.images.blobs import read_json_blob
from actors.images.bundles import CHAIN_FILE, ImageBundles
from actors.images.credentials import Credentials
from actors.images.errors import ImageError
from actors.images.imports import copy_private, default_image_name, import_archive
from actors.images.pull import Puller, PullSettings
from actors.images.reference import InvalidReference, parse_reference
from actors.images.store import IMAGE_ID, ImageStore, NotInStore, StoredImage
from actors.images.uploads import CHUNK_MAX, Uploads
from actors.wire import ApiError, ErrorCode
from actors.wire import messages as wire
from actors.wire.api import Params, error_reply, ok_reply
from actors.wire.events import ImageEventType, image_event, image_topic

__all__ = ["POOL_THREADS", "ImageService", "remount_image_bundles"]

logger = logging.getLogger(__name__)

POOL_THREADS = 2
"""Pulls, imports, unpacks and removals at once."""
MAX_PENDING = 64
"""Jobs queued or running; past it a request is refused `busy`."""

Client = tuple[bytes | None, str | None]
DEFERRED = object()
"""A request handler's result when its reply comes later (from the pool)."""


@dataclass(frozen=True)
class _Done:
    """Pool -> this actor: a job ended (`future` holds its result)."""

    kind = "image_job_done"
    future: Future[Any]


@dataclass(frozen=True)
class _Progress:
    """Pool -> this actor: a step of the pull of `ref`, to publish."""

    kind = "image_progress"
    ref: str
    report: dict[str, Any]


def read_json_file(path: Path) -> dict[str, Any]:
    try:
        value: object = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ImageError(f"{path} cannot be read: {exc}") from None
    if not isinstance(value, dict):
        raise ImageError(f"{path} is not a JSON object")
    return value


def api_error(exc: BaseException) -> ApiError:
    """What a job's failure tells the client."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, NotInStore):
        return ApiError(ErrorCode.NOT_FOUND, str(exc))
    if isinstance(exc, (ImageError, InvalidReference)):
        return ApiError(ErrorCode.IMAGE_ERROR, str(exc))
    if isinstance(exc, OSError):
        return ApiError(ErrorCode.IMAGE_ERROR, f"{exc.filename or 'images'}: {exc.strerror or exc}")
    logger.error("image job failed", exc_info=exc)
    return ApiError(ErrorCode.INTERNAL, f"internal error: {type(exc).__name__}")


class ImageService(BusActor):
    """The images of the daemon: requests answered here or, for what takes long, from the pool
    (`submit`: the reply goes out when the job's `_Done` comes back to this thread)."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], images_dir: Path, *, runtime: str,
                 pull_settings: PullSettings) -> None:
        super().__init__(context)
        images_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.store = ImageStore(images_dir)
        self.bundles = ImageBundles(images_dir, runtime=runtime)
        self.puller = Puller(self.store, pull_settings)
        self.uploads = Uploads(images_dir)
        self.pool = ThreadPoolExecutor(POOL_THREADS, thread_name_prefix="images")
        self.jobs: dict[Future[Any], Callable[[Any, ApiError | None], None]] = {}
        """The pool's jobs not yet answered -> what takes their result or error."""
        self.pulls: dict[tuple[str, str], list[Client]] = {}
        """(Normalized reference, fingerprint of its credentials or "") -> the clients waiting for
        its pull under way."""
        self.requests: dict[str, Callable[[wire.Request], Any]] = {
            "images.pull": self.pull,
            "images.import_begin": self.import_begin,
            "images.import_chunk": self.import_chunk,
            "images.import_cancel": self.import_cancel,
            "images.import": self.import_,
            "images.list": lambda _: [image.as_json() for image in self.store.images()],
            "images.inspect": self.inspect,
            "images.remove": self.remove,
            "images.prune": self.prune,
        }

    def handlers(self) -> Handlers:
        return {
            wire.Request: self.on_request,
            wire.ImageBundleTask: self.on_bundle_task,
            wire.ReleaseImageBundle: self.on_release,
            _Done: self.on_done,
            _Progress: lambda m: self.publish("pull-progress", m.ref, **m.report),
        }

    def on_start(self) -> None:
        super().on_start()
        self.uploads.sweep_leftovers()
        self.store.sweep_staging()

    def on_stop(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.puller.stop()  # the pool's threads would hold the daemon's exit until skopeo ends
        stopping = ApiError(ErrorCode.BUSY, "actord is stopping before this image job was done: "
                                            "try again once it is back")
        for then in self.jobs.values():  # their clients hear it now, while the bus still carries replies
            then(None, stopping)
        self.jobs.clear()
        for token in list(self.uploads.open):
            self.uploads.cancel(token)
        super().on_stop()

    # -- plumbing ---------------------------------------------------------------------------

    def reply(self, client: Client, result: Any = None, error: ApiError | None = None) -> None:
        route, request_id = client
        if route is None:
            return
        body = error_reply(request_id, error) if error is not None else ok_reply(request_id, result)
        self.send("bus", wire.ClientReply(route=route, body=body))

    def publish(self, event_type: ImageEventType, ref: str, **fields: Any) -> None:
        self.send("eventlog", wire.Publish(topic=image_topic(ref, event_type), event=dict(image_event(event_type, ref,
                                                                                                   **fields))))

    def submit(self, work: Callable[[], Any], then: Callable[[Any, ApiError | None], None]) -> None:
        """Run `work` on the pool; `then(result, error)` runs here once it is done."""
        if len(self.jobs) >= MAX_PENDING:
            raise ApiError(ErrorCode.BUSY, f"{MAX_PENDING} image jobs are under way: try again later")
        future = self.pool.submit(work)
        self.jobs[future] = then
        future.add_done_callback(self._job_done)

    def _job_done(self, future: Future[Any]) -> None:
        """In the pool's thread: hand the result to this actor's."""
        try:
            self.actor_ref.tell(_Done(future))
        except pykka.ActorDeadError:
            pass  # stopped: its client was answered then

    def on_done(self, message: _Done) -> None:
        then = self.jobs.pop(message.future, None)
        if then is None:
            return
        exc = message.future.exception()
        if exc is not None:
            then(None, api_error(exc))
        else:
            then(message.future.result(), None)

    def on_request(self, request: wire.Request) -> None:
        client: Client = (request.route, request.request_id)
        if request.method not in ("images.list", "images.inspect", "images.import_chunk"):
            peer = " ".join(f"{name}={value}" for name, value in (request.peer or {}).items())
            logger.info("%s %.80r by %s", request.method, request.params.get("ref"), peer)
        try:
            result = self.requests[request.method](request)
        except Exception as exc:
            self.reply(client, error=api_error(exc))
            return
        if result is not DEFERRED:
            self.reply(client, result)

    def find(self, text: str) -> StoredImage:
        """The image `text` names: an image id (or 12+ of its hex digits) of the store, else a
        reference (a short name as the search registries would complete it)."""
        if IMAGE_ID.fullmatch(text):
            try:
                return self.store.find(text)
            except NotInStore:
                if text.startswith("sha256:"):
                    raise
        return self.store.find([*self.puller.candidates(text), parse_reference(text)])

    # -- pulls ------------------------------------------------------------------------------

    def pull(self, request: wire.Request) -> object:
        text = Params(request.params).string("ref", max_len=1024)
        assert text is not None
        key = str(parse_reference(text))
        auth = request.params.get("auth")
        credentials = None if auth is None else Credentials.from_wire(auth)
        shared = (key, "" if credentials is None else credentials.fingerprint())
        client: Client = (request.route, request.request_id)
        waiting = self.pulls.get(shared)
        if waiting is not None:
            waiting.append(client)
            self.publish("pull-progress", key, stage="waiting for the pull under way", count=0)
            return DEFERRED

        def work() -> dict[str, Any]:
            stored = self.puller.pull(text, lambda report: self.actor_ref.tell(_Progress(key, report)), credentials)
            return self.store.find([stored]).as_json()

        def then(result: Any, error: ApiError | None) -> None:
            for waiter in self.pulls.pop(shared, []):
                self.reply(waiter, result, error)
            if error is None:
                self.publish("pulled", key, digest=result["digest"], name=f"{result['name']}")
            else:
                self.publish("pull-failed", key, error=error.message)

        self.submit(work, then)
        self.pulls[shared] = [client]
        return DEFERRED

    # -- imports ----------------------------------------------------------------------------

    def import_begin(self, _: wire.Request) -> dict[str, Any]:
        return {"upload": self.uploads.begin(), "chunk_max": CHUNK_MAX}

    def _upload_token(self, params: Params) -> str:
        token = params.string("upload", max_len=64)
        assert token is not None
        if token not in self.uploads.open:
            raise ApiError(ErrorCode.NOT_FOUND, f"no upload {token} under way (it expires after a pause, "
                                                "or was finished or cancelled)")
        return token

    def import_chunk(self, request: wire.Request) -> dict[str, Any]:
        params = Params(request.params)
        token = self._upload_token(params)
        offset = params.integer("offset", required=True)
        data = request.params.get("data")
        if not isinstance(data, bytes) or len(data) > CHUNK_MAX:
            raise ApiError(ErrorCode.INVALID_PARAMS, f"'data' must be bytes, at most {CHUNK_MAX} a chunk")
        assert offset is not None
        return {"received": self.uploads.append(token, offset, data)}

    def import_cancel(self, request: wire.Request) -> dict[str, Any]:
        self.uploads.cancel(self._upload_token(Params(request.params)))
        return {}

    def import_(self, request: wire.Request) -> object:
        params = Params(request.params)
        path = params.string("path", required=False)
        if (path is None) == (request.params.get("upload") is None):
            raise ApiError(ErrorCode.INVALID_PARAMS, "give either 'upload' (a token of images.import_begin) "
                                                     "or 'path' (a file the daemon reads)")
        if path is not None:
            directory = self.uploads.directory / f"import-{os.urandom(8).hex()}"
            directory.mkdir(mode=0o700)
            archive = directory / "archive"
        else:
            upload = self.uploads.take(self._upload_token(params))
            directory, archive = upload.directory, upload.archive
        try:  # from here on the archive's dir goes whatever happens
            name = params.string("name", required=False, max_len=512)
            filename = params.string("filename", required=False, max_len=4096)
            if name is not None:
                parse_reference(name, name_only=True)
            shown = path or filename or "the uploaded archive"
            default_name = name or default_image_name(filename or path or "image")

            def work() -> list[str]:
                try:
                    if path is not None:
                        copy_private(path, archive)
                    return [str(ref) for ref in import_archive(self.store, archive, shown, default_name)]
                finally:
                    self.uploads.remove(directory)

            def then(result: Any, error: ApiError | None) -> None:
                self.reply((request.route, request.request_id), None if error else {"imported": result}, error)
                for ref in result or []:
                    self.publish("imported", ref)

            self.submit(work, then)
        except BaseException:
            self.uploads.remove(directory)
            raise
        return DEFERRED

    # -- inspection, removal ----------------------------------------------------------------

    def _users(self) -> dict[str, list[str]]:
        """Manifest digest -> the containers whose bundles were made from it."""
        users: dict[str, list[str]] = {}
        for name in sorted(os.listdir(self.bundles.containers)):
            if name.startswith("."):
                continue
            try:
                record = read_json_file(self.bundles.containers / name / CHAIN_FILE)
            except ImageError as exc:
                logger.error("%s", exc)
                continue
            users.setdefault(str(record.get("manifest")), []).append(name)
        return users

    def inspect(self, request: wire.Request) -> dict[str, Any]:
        text = Params(request.params).string("ref", max_len=1024)
        assert text is not None
        image = self.find(text)
        manifest = read_json_blob(self.store.layout, image.digest, "manifest")
        config_descriptor = manifest.get("config")
        config = read_json_blob(self.store.layout, config_descriptor.get("digest") if isinstance(
            config_descriptor, dict) else None, "image config")
        rootfs = config.get("rootfs")
        names = [i.ref.familiar() for i in self.store.images() if i.digest == image.digest]
        return {**image.as_json(), "names": names, "architecture": config.get("architecture"),
                "os": config.get("os"), "config": config.get("config") or {},
                "layers": rootfs.get("diff_ids") if isinstance(rootfs, dict) else [],
                "containers": self._users().get(image.digest, [])}

    def _kept_layers(self) -> set[str]:
        """The diff ids of every image still named and of every container's bundle."""
        keep = set(self.bundles.in_use())
        for image in self.store.images():
            try:
                manifest = read_json_blob(self.store.layout, image.digest, "manifest")
                config = manifest.get("config")
                rootfs = read_json_blob(self.store.layout, config.get("digest") if isinstance(config, dict) else None,
                                        "image config").get("rootfs")
            except ImageError:
                continue
            diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
            keep.update(d for d in diff_ids or [] if isinstance(d, str))
        return keep

    def _drop(self, names: set[str]) -> list[str]:
        """Forget `names`, collect the blobs and layers nothing keeps; the layers removed."""
        if names:
            self.store.forget(names)
        self.store.collect()
        return self.bundles.layers.collect(self._kept_layers())

    def remove(self, request: wire.Request) -> object:
        params = Params(request.params)
        text = params.string("ref", max_len=1024)
        force = params.flag("force")
        assert text is not None
        image = self.find(text)
        images = self.store.images()
        if IMAGE_ID.fullmatch(text) and image.config_digest.removeprefix("sha256:").startswith(
                text.removeprefix("sha256:")):  # by id: every name of it
            doomed = [i for i in images if i.config_digest == image.config_digest]
        elif "@" in text:  # by digest: every tag of that name on that manifest
            doomed = [i for i in images if i.ref.name == image.ref.name and i.digest == image.digest]
        else:
            doomed = [image]
        users = self._users()
        using = sorted({c for i in doomed for c in users.get(i.digest, [])})
        if using and not force:
            raise ApiError(ErrorCode.CONFLICT, f"image {image.ref.familiar()} is used by container(s) "
                                               f"{', '.join(using)}: remove them first, or force")

        def then(result: Any, error: ApiError | None) -> None:
            removed = [str(i.ref) for i in doomed]
            self.reply((request.route, request.request_id), None if error else {"removed": removed,
                                                                                 "layers": result}, error)
            for ref in [] if error else removed:
                self.publish("removed", ref)

        self.submit(lambda: self._drop({i.stored_as for i in doomed}), then)
        return DEFERRED

    def prune(self, request: wire.Request) -> object:
        users = self._users()
        doomed = [i for i in self.store.images() if i.ref.tag is None and i.digest not in users]

        def then(result: Any, error: ApiError | None) -> None:
            self.reply((request.route, request.request_id), None if error else {
                "removed": [str(i.ref) for i in doomed], "layers": result}, error)

        self.submit(lambda: self._drop({i.stored_as for i in doomed}), then)
        return DEFERRED

    # -- containers' bundles ----------------------------------------------------------------

    def on_bundle_task(self, task: wire.ImageBundleTask) -> None:
        def work() -> str:
            image = self.find(task.image)
            self.bundles.remove(task.container_id)  # a leftover: the Supervisor knows no container of this id
            with self.store.reading():
                return str(self.bundles.create(self.store.layout, image.digest, task.container_id, task.args,
                                               terminal=task.terminal))

        def then(result: Any, error: ApiError | None) -> None:
            self.send("supervisor", wire.ImageBundleDone(
                container_id=task.container_id, bundle=result, error=None if error is None else error.to_wire(),
                route=task.route, request_id=task.request_id, params=task.params))

        try:
            self.submit(work, then)
        except ApiError as exc:
            then(None, exc)

    def on_release(self, message: wire.ReleaseImageBundle) -> None:
        """Unmount and remove the bundle here: a later start of the same id makes its bundle
        after this message, on the pool."""
        try:
            self.bundles.remove(message.container_id)
        except (ImageError, OSError) as exc:
            logger.error("cannot remove the image bundle of container %s: %s", message.container_id, exc)


def remount_image_bundles(images_dir: Path, runtime: str) -> None:
    """Mount again the root of every container of an image (after a reboot; a mounted one is
    left as it is), before any restart policy starts one, and remove the bundles a crash left
    half made. One that cannot be mounted is logged: its start will fail and say why."""
    if not (images_dir / "containers").is_dir():
        return
    bundles = ImageBundles(images_dir, runtime=runtime)
    for name in bundles.sweep():
        logger.info("removed %s, a container's bundle left half made", name)
    for name in sorted(os.listdir(bundles.containers)):
        if name.startswith("."):
            continue
        try:
            bundles.mount(name)
        except (ImageError, OSError) as exc:
            logger.error("cannot mount the root of container %s: %s", name, exc)
