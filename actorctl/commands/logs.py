"""`actorctl containers logs`: a process's captured output, as lines, through the library's LogStream."""

from __future__ import annotations

import datetime
import sys
from typing import TYPE_CHECKING

import click

from actorctl.common import (
    client_of,
    complete_container_id,
    container_id_arg,
    failures,
    parse_time,
    print_json_line,
)

if TYPE_CHECKING:
    from actorctl.client import LogStream
    from actorctl.lines import Piece

__all__ = ["logs"]


def _report_dropped(stream: LogStream) -> None:
    """Say on stderr that output was rotated away unread (once each time it happens)."""
    if stream.dropped:
        click.echo("actorctl: some output was rotated away before it was read", err=True)
        stream.dropped = False


def _show_piece(piece: Piece, as_json: bool, timestamps: bool) -> None:
    if as_json:
        print_json_line({"stream": "stderr" if piece.stream == 2 else "stdout", "time": piece.time,
                         "data": piece.data.decode(errors="replace")})
        return
    out = sys.stderr.buffer if piece.stream == 2 else sys.stdout.buffer
    if timestamps and piece.starts_line:
        moment = datetime.datetime.fromtimestamp(piece.time, datetime.UTC)
        out.write(moment.isoformat(timespec="microseconds").replace("+00:00", "Z").encode() + b" ")
    out.write(piece.data)
    out.flush()


@click.command("logs")
@click.option("--follow", "-f", is_flag=True, help="Keep printing output as it comes, until the process exits.")
@click.option("--pid", "process_id", default="init", show_default=True, metavar="NAME",
              help="Which process of the container.")
@click.option("--tail", "tail_lines", type=click.IntRange(0), metavar="N", help="Only the last N lines stored.")
@click.option("--since", metavar="TIME", help="Only output at or after TIME (unix time, ISO time, or 5m ago).")
@click.option("--until", metavar="TIME", help="Only output before or at TIME (unix time, ISO time, or 5m ago).")
@click.option("--timestamps", "-t", is_flag=True, help="Start each line with its time (RFC 3339, UTC).")
@click.option("--json", "as_json", is_flag=True,
              help='One JSON object per line of output: {"stream": "stdout"|"stderr", "time": UNIX_TIME, '
                   '"data": TEXT} (a partial line when the process wrote no newline yet; bytes that are '
                   "not UTF-8 become U+FFFD).")
@click.argument("container_id", metavar="ID", callback=container_id_arg, shell_complete=complete_container_id)
@click.pass_context
def logs(ctx: click.Context, follow: bool, process_id: str, tail_lines: int | None, since: str | None,
         until: str | None, timestamps: bool, as_json: bool, container_id: str) -> None:
    """Print a process's captured stdout and stderr (kept, bounded, while it runs and shortly after).

    \b
    Examples:
      actorctl containers logs --tail 20 --timestamps web1
      actorctl containers logs --since 10m --follow web1
    """
    from actorctl.lines import LineCutter, last_lines

    since_ts = parse_time(since, "--since") if since else None
    until_ts = parse_time(until, "--until") if until else None
    client = client_of(ctx)
    lines = LineCutter()
    try:
        with failures():
            stored = client.logs(container_id, process_id, since=since_ts, until=until_ts)
            pieces = [piece for record in stored for piece in lines.cut(record)]
            _report_dropped(stored)
            for piece in pieces if tail_lines is None else last_lines(pieces, tail_lines):
                _show_piece(piece, as_json, timestamps)
            if follow:
                coming = client.logs(container_id, process_id, follow=True, since=since_ts, until=until_ts,
                                     cursor=stored.cursor)
                for record in coming:
                    _report_dropped(coming)
                    for piece in lines.cut(record):
                        _show_piece(piece, as_json, timestamps)
    except KeyboardInterrupt:
        return
