"""One client: the library (`actorctl.client`) imports nothing of the CLI's, and the CLI
(`actorctl.cli`, `actorctl.commands`, `actorctl.common`, its helpers) is a layer over the
library's typed methods, never making a raw call: so a program can use the library without
click, and the library's behaviour is the one the CLI shows.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import actorctl.client

CLIENT_DIR = Path(actorctl.client.__file__).parent

ACTORCTL_DIR = CLIENT_DIR.parent



def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            found.add(node.module)
    return found


def test_no_client_module_imports_the_cli_or_its_helpers() -> None:
    offending = {}
    for path in sorted(CLIENT_DIR.glob("*.py")):
        outside = {name for name in imported_modules(path)
                   if (name.startswith("actorctl.") and not name.startswith("actorctl.client"))
                   or name == "actorctl" or name.split(".")[0] in ("click", "pykka")}
        if outside:
            offending[path.name] = sorted(outside)
    assert offending == {}


def test_importing_every_client_module_loads_nothing_of_the_cli() -> None:
    program = (
        "import importlib, json, pkgutil, sys\n"
        "import actorctl.client as package\n"
        "for module in pkgutil.iter_modules(package.__path__):\n"
        "    importlib.import_module(f'actorctl.client.{module.name}')\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-I", "-c", program], capture_output=True, text=True, timeout=60,
                          check=True)
    loaded = json.loads(done.stdout)
    assert "actorctl.client.events" in loaded, "the listing is not of every client module"
    cli_side = [name for name in loaded
                if name.split(".")[0] in ("click", "pykka")
                or (name.startswith("actorctl.") and not name.startswith("actorctl.client"))]
    assert cli_side == []


def raw_calls(path: Path) -> list[str]:
    """The `call(...)`, `x.call(...)` and `x.call_raw(...)` in `path`, as `line: source`."""
    source = path.read_text()
    found = []
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            if name in ("call", "call_raw"):
                found.append(f"{node.lineno}: {ast.get_source_segment(source, node)}")
    return found


def test_the_cli_makes_no_raw_call() -> None:
    modules = [path for path in sorted(ACTORCTL_DIR.rglob("*.py")) if CLIENT_DIR not in path.parents]
    assert ACTORCTL_DIR / "commands" / "containers.py" in modules
    raw = {str(path.relative_to(ACTORCTL_DIR)): raw_calls(path) for path in modules}
    assert {name: calls for name, calls in raw.items() if calls} == {}
