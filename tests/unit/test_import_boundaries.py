"""The shim and the daemon meet only at the wire (issue #17): the shim (`shimproc`) imports
nothing of the daemon's (`actors`) but `actors.wire`, the daemon and the CLI import nothing of
the shim's, the wire imports nothing of the daemon's, and the Linux primitives both sides use
(`hostos`) import none of the three. So either side can change without reaching into the other,
and a shim's import graph (its memory) holds no daemon code.

Every module is parsed, not imported: imports inside functions and under TYPE_CHECKING count too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
PACKAGES = ("actors", "actorctl", "shimproc", "hostos")


@dataclass(frozen=True)
class Rule:
    """Modules under `importer` must not import `forbidden` (each a package or module name), save
    what is under one of `allowed`."""

    importer: str
    forbidden: tuple[str, ...]
    allowed: tuple[str, ...]
    why: str


RULES = (
    Rule("shimproc", ("actors", "actorctl"), ("actors.wire",), "the shim imports nothing of the daemon's but the wire"),
    Rule("actors", ("shimproc",), (), "the daemon knows the shim only as a program and the wire"),
    Rule("actorctl", ("shimproc",), (), "the CLI knows nothing of the shim"),
    Rule("hostos", ("actors", "actorctl", "shimproc"), (), "host primitives import neither side"),
    Rule("actors.wire", ("actors", "actorctl", "shimproc"), ("actors.wire",), "the wire is defined by itself alone"),
)


def under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPOSITORY).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    """Is `name` a module or package of this repository (`from actors import wire` imports one)?"""
    path = REPOSITORY.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def package_of(path: Path) -> str:
    """The package a module's relative imports start from."""
    return module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]


def imports(path: Path, package: str) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in `path`, a module of `package`, relative ones resolved;
    `from P import M` of a submodule M counts as importing P.M."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # `from . import x` is from `package`, each further dot one package up
                parts = package.split(".")
                anchor = parts[:len(parts) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}" if is_module(f"{base}.{alias.name}") else base


def violations() -> list[str]:
    found = set()
    for package in PACKAGES:
        for path in sorted((REPOSITORY / package).rglob("*.py")):
            importer = module_name(path)
            for line, imported in imports(path, package_of(path)):
                for rule in RULES:
                    if (under(importer, rule.importer) and any(under(imported, f) for f in rule.forbidden)
                            and not any(under(imported, a) for a in rule.allowed)):
                        found.add(f"{path.relative_to(REPOSITORY)}:{line} imports {imported} ({rule.why})")
    return sorted(found)


def test_the_shim_the_daemon_the_wire_and_hostos_import_only_across_the_wire(tmp_path: Path) -> None:
    # first, that the parser finds `import a.b`, `from a import b` (a submodule or a name),
    # relative and function-level imports, with their lines: else the check would pass vacuously
    probe = tmp_path / "probe.py"
    probe.write_text("import actors.cgroups\nfrom actors import wire, __version__\n"
                     "def f() -> None:\n    from shimproc.spawner import serve\n"
                     "from . import shim\nfrom .main import main\n")
    assert sorted(imports(probe, "shimproc")) == [
        (1, "actors.cgroups"), (2, "actors"), (2, "actors.wire"), (4, "shimproc.spawner"), (5, "shimproc.shim"),
        (6, "shimproc.main")]
    found = violations()
    assert not found, "imports across the boundary:\n" + "\n".join(found)
