"""The image service's pure rules: which references a short name is tried as, the registries
conf's search list, uploads (offsets, the total bound, expiry), image events on the wire."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.images.errors import ImageError
from actors.images.pull import PullSettings, search_candidates, search_registries, stored_name
from actors.images.reference import parse_reference
from actors.images.uploads import IDLE_SECONDS, MAX_UPLOAD, Uploads
from actors.wire import WireError
from actors.wire.events import decode, decode_image_event, encode, image_event, image_topic


def test_a_short_name_is_tried_against_each_search_registry_in_order() -> None:
    registries = ["127.0.0.1:5000", "docker.io"]
    assert [str(r) for r in search_candidates("bb:v1", registries)] == [
        "127.0.0.1:5000/bb:v1", "docker.io/library/bb:v1"]
    assert [str(r) for r in search_candidates("team/app", registries)] == [
        "127.0.0.1:5000/team/app:latest", "docker.io/team/app:latest"]
    assert [str(r) for r in search_candidates("bb", [])] == ["docker.io/library/bb:latest"], "docker's default"
    for qualified in ("localhost/bb", "quay.io/team/app:v1", "127.0.0.1:5000/bb"):
        assert search_candidates(qualified, registries) == [parse_reference(qualified)], qualified


def test_the_search_list_comes_from_the_registries_conf(tmp_path: Path) -> None:
    conf = tmp_path / "registries.conf"
    conf.write_text('unqualified-search-registries = ["a.example", "b.example:5000"]\n[[registry]]\n'
                    'location = "a.example"\ninsecure = true\n')
    assert search_registries(conf) == ["a.example", "b.example:5000"]
    assert search_registries(None) == []
    conf.write_text("unqualified-search-registries = 5\n")
    with pytest.raises(ImageError, match="is not a list of strings"):
        search_registries(conf)
    conf.write_text("[[registry\n")
    with pytest.raises(ImageError, match="is not TOML"):
        search_registries(conf)
    assert PullSettings(registries_conf=conf).conf() == conf


def test_a_digest_pull_is_stored_by_digest() -> None:
    digest = "sha256:" + "a" * 64
    assert stored_name(parse_reference(f"r.example/bb@{digest}")) == f"r.example/bb@{digest}"
    assert stored_name(parse_reference(f"r.example/bb:v1@{digest}")) == "r.example/bb:v1"
    assert stored_name(parse_reference("bb")) == "docker.io/library/bb:latest"


def test_uploads_take_chunks_in_order_within_bounds_and_expire(tmp_path: Path) -> None:
    now = [0.0]
    uploads = Uploads(tmp_path, clock=lambda: now[0])
    token = uploads.begin()
    assert uploads.append(token, 0, b"abc") == 3
    assert uploads.append(token, 3, b"de") == 5
    with pytest.raises(ImageError, match="a chunk at offset 2, but 5 bytes came so far"):
        uploads.append(token, 2, b"x")
    upload = uploads.open[token]
    assert upload.archive.read_bytes() == b"abcde" and upload.directory.stat().st_mode & 0o777 == 0o700
    upload.size = MAX_UPLOAD  # as if that much had come
    with pytest.raises(ImageError, match="more than 16 GiB"):
        uploads.append(token, MAX_UPLOAD, b"x")
    assert token not in uploads.open and not upload.directory.exists(), "a refused upload is removed"

    idle = uploads.begin()
    now[0] = IDLE_SECONDS + 1
    uploads.begin()
    assert idle not in uploads.open, "an upload idle too long is given up"
    taken = uploads.take(next(iter(uploads.open)))
    assert taken.archive.exists() and not uploads.open
    uploads.remove(taken.directory)
    assert list(tmp_path.iterdir()) == []


def test_image_events_on_the_wire() -> None:
    event = image_event("pull-progress", "docker.io/library/bb:v1", stage="copying blob", item="sha256:1", count=2)
    frames = encode(image_topic(event["ref"], event["type"]), event)
    assert frames[0] == b"image/docker.io/library/bb:v1/pull-progress"
    assert decode_image_event(frames) == event
    with pytest.raises(WireError, match="unknown topic"):
        decode(frames)  # a follower of container events passes over it
    with pytest.raises(WireError, match="does not name the event's image"):
        decode_image_event([b"image/other/pull-progress", frames[1]])
    with pytest.raises(WireError, match="count mistyped"):
        image_event("pull-progress", "x", count="two")
