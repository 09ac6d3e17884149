"""The CLI reference, generated from the click definitions of `actorctl` and `actord`:
`docs/cli.md` (Markdown) and the man pages `docs/man/actorctl.1` and `docs/man/actord.8` (roff).

`bin/gen-docs` writes them; `bin/gen-docs --check` (and the test suite) fails when they differ
from what the code would generate, so rerun it after changing any command or option. The
output depends only on the code: no dates, no terminal width.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click

__all__ = ["generate", "main"]

DOCS = Path(__file__).resolve().parent.parent / "docs"


@dataclass(frozen=True)
class Entry:
    """One command of a tree, with the context click renders it in."""

    path: str
    """`actorctl containers start`."""
    command: click.Command
    ctx: click.Context


def walk(command: click.Command, name: str, parent: click.Context | None = None) -> Iterator[Entry]:
    """Every command under (and including) `command`, depth first, subcommands sorted by name."""
    ctx = click.Context(command, info_name=name, parent=parent, **command.context_settings)
    path = f"{parent.command_path} {name}" if parent is not None else name
    yield Entry(path, command, ctx)
    if isinstance(command, click.Group):
        for sub_name in command.list_commands(ctx):
            sub = command.get_command(ctx, sub_name)
            if sub is not None and not sub.hidden:
                yield from walk(sub, sub_name, ctx)


def usage(entry: Entry) -> str:
    return f"{entry.path} {' '.join(entry.command.collect_usage_pieces(entry.ctx))}".rstrip()


def paragraphs(command: click.Command) -> list[tuple[bool, str]]:
    """The command's help as paragraphs, each with whether its lines are kept as they are
    (click's `\\b` marker), in which case it comes without the marker."""
    text = inspect.cleandoc(command.help or "")
    found = []
    for paragraph in text.split("\n\n"):
        kept = paragraph.startswith("\b\n")
        if paragraph.strip():
            found.append((kept, paragraph.removeprefix("\b\n")))
    return found


def options(entry: Entry) -> list[tuple[str, str]]:
    """Its options' help records, and the help option's as the CLI's context names it (click
    caches a command's help option from the first context that asked, which may be a test's)."""
    records = [param.get_help_record(entry.ctx) for param in entry.command.params if isinstance(param, click.Option)]
    help_names = ", ".join(sorted(entry.ctx.help_option_names, key=len))
    return [record for record in records if record is not None] + [(help_names, "Show this message and exit.")]


def markdown(trees: list[tuple[click.Command, str]]) -> str:
    lines = ["# CLI reference", "",
             "Generated from the click definitions by `bin/gen-docs`; do not edit by hand.", ""]
    for command, name in trees:
        for entry in walk(command, name):
            depth = min(entry.path.count(" ") + 2, 4)
            lines += [f"{'#' * depth} `{entry.path}`", "", "```", usage(entry), "```", ""]
            for kept, paragraph in paragraphs(entry.command):
                lines += ["```", paragraph, "```", ""] if kept else [paragraph, ""]
            if isinstance(entry.command, click.Group):
                subs = entry.command.list_commands(entry.ctx)
                lines += ["Commands: " + ", ".join(f"`{sub}`" for sub in subs), ""]
            for flags, description in options(entry):
                lines.append(f"* `{flags}`: {description}")
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _roff(text: str) -> str:
    """Escape text for roff: backslashes, and a leading `.` or `'` that would be a request."""
    escaped = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line for line in escaped.splitlines())


def man(command: click.Command, name: str, section: int, version: str) -> str:
    """A man page for the whole tree of `command`: every subcommand a subsection."""
    summary = paragraphs(command)[0][1].splitlines()[0] if command.help else name
    lines = [f'.TH {name.upper()} {section} "" "{name} {version}" "actord manual"',
             ".SH NAME", f"{name} \\- {_roff(summary.removeprefix(f'{name}: '))}"]
    for entry in walk(command, name):
        lines += [".SH SYNOPSIS" if entry.path == name else f".SH {_roff(entry.path.upper())}",
                  ".nf", _roff(usage(entry)), ".fi"]
        for kept, paragraph in paragraphs(entry.command):
            lines += [".PP", ".nf" if kept else ".fi", _roff(paragraph)]
        lines.append(".fi")
        for flags, description in options(entry):
            lines += [".TP", f"\\fB{_roff(flags)}\\fR", _roff(description)]
    lines += [".SH SEE ALSO", "actorctl(1), actord(8); docs/ in the source tree"]
    return "\n".join(lines) + "\n"


def generate() -> dict[Path, str]:
    """Each generated file and its content."""
    from actorctl.cli import cli as actorctl_cli
    from actors import __version__
    from actors.command import cli as actord_cli

    return {
        DOCS / "cli.md": markdown([(actorctl_cli, "actorctl"), (actord_cli, "actord")]),
        DOCS / "man" / "actorctl.1": man(actorctl_cli, "actorctl", 1, __version__),
        DOCS / "man" / "actord.8": man(actord_cli, "actord", 8, __version__),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/gen-docs", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="Write nothing; exit 1 if a file is stale.")
    args = parser.parse_args(argv)
    stale = []
    for path, content in generate().items():
        current = path.read_text() if path.exists() else None
        if current == content:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
    for path in stale:
        print(f"{'stale' if args.check else 'wrote'}: {path.relative_to(DOCS.parent)}", file=sys.stderr)
    if args.check and stale:
        print("run bin/gen-docs to regenerate them", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
