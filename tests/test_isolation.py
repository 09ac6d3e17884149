"""No code from the working directory or the environment: actord runs from `/`, and every
Python it starts runs isolated (`-I`), whatever directory root starts it in."""

from __future__ import annotations

import os
from pathlib import Path

from tests.harness import Daemon, new_state_dir, remove_state_dir

PLANTED = ("sitecustomize.py", "usercustomize.py", "setproctitle.py", "zmq.py", "msgpack.py",
           "shimproc/__init__.py", "actors/__init__.py", "hostos/__init__.py")
"""Modules an attacker could leave in a directory root happens to start actord in."""


def plant(directory: Path, markers: Path) -> None:
    """Write modules that each leave a marker file (named after the module and the importer) when imported."""
    for name in PLANTED:
        module = directory / name
        module.parent.mkdir(exist_ok=True)
        module.write_text(
            "import os, sys\n"
            f"with open(os.path.join({str(markers)!r}, __name__ + '.' + str(os.getpid())), 'w') as f:\n"
            "    f.write(' '.join(sys.argv))\n"
        )


def imported(markers: Path) -> list[str]:
    """Which planted module was imported, by which process (its argv)."""
    return sorted(f"{marker.name}: {marker.read_text()}" for marker in markers.iterdir())


def test_planted_modules_in_the_working_directory_and_pythonpath_are_never_imported(
        tmp_path: Path, sleeper: Path) -> None:
    planted, markers = tmp_path / "planted", tmp_path / "markers"
    planted.mkdir()
    markers.mkdir()
    plant(planted, markers)
    env = dict(os.environ, PYTHONPATH=str(planted))
    # a relative --pidfile is resolved against the directory actord was started in, before it leaves it
    daemon = Daemon(new_state_dir(), extra_args=["--pidfile", "actord.pid"])
    try:
        # actord itself runs as `python -I`: PYTHONPATH is root's own choice for the daemon, but must
        # not reach the Pythons the daemon starts (the shim spawner and the shims forked from it)
        daemon.start(cwd=planted, env=env, isolated=True)
        assert (planted / "actord.pid").read_text().strip() == str(daemon.process.pid)  # type: ignore[union-attr]
        assert os.readlink(f"/proc/{daemon.process.pid}/cwd") == "/"  # type: ignore[union-attr]
        daemon.start_container("iso", sleeper)
        done = daemon.ctl("containers", "exec", "--attach", "iso", "--", "echo", "exec ran")
        assert done.returncode == 0 and done.stdout == "exec ran\n", done
        daemon.kill_everything()
        assert daemon.stop() == 0, daemon.log()
        assert not (planted / "actord.pid").exists()
    except BaseException:
        assert imported(markers) == [], "planted modules were imported (this failure follows from it)"
        raise
    finally:
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.kill_everything()
            daemon.stop()
        remove_state_dir(daemon.state_dir)
    assert imported(markers) == [], "planted modules were imported"
