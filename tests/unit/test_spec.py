"""Reading a bundle's config.json once: what the worker refuses before anything is made."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from actors.wire import ApiError
from actors.worker.spec import MAX_CONFIG, container_config, read_bundle_config


def refusal(bundle: Path) -> str:
    with pytest.raises(ApiError) as refused:
        read_bundle_config(bundle)
    return refused.value.message


def test_a_bundle_is_read_once_and_its_bytes_are_what_is_checked(tmp_path: Path) -> None:
    data = b'{"process": {"args": ["sleep", "1"]}, "root": {"path": "rootfs"}}'
    (tmp_path / "config.json").write_bytes(data)
    read = read_bundle_config(tmp_path)
    assert read == data
    (tmp_path / "config.json").write_text("garbage")  # changed after the read: the bytes read stay
    config = container_config(tmp_path, read, tmp_path / "config.json", init=False)
    assert config["process"]["args"] == ["sleep", "1"] and config["root"]["path"] == str(tmp_path / "rootfs")


def test_what_is_not_a_bounded_regular_config_is_refused_by_name(tmp_path: Path) -> None:
    assert refusal(tmp_path / "nowhere") == f"bundle {tmp_path / 'nowhere'} does not exist or is not a directory"
    assert refusal(tmp_path) == f"bundle {tmp_path} has no config.json"
    os.mkfifo(tmp_path / "config.json")  # would block a worker forever
    assert refusal(tmp_path) == f"{tmp_path / 'config.json'} is not a regular file"
    os.unlink(tmp_path / "config.json")
    (tmp_path / "config.json").write_bytes(b" " * (MAX_CONFIG + 1))
    assert refusal(tmp_path) == f"{tmp_path / 'config.json'} is larger than {MAX_CONFIG} bytes"
