"""`actorctl health`: is the daemon serving, and can it do all it should? For probes and people."""

from __future__ import annotations

import click

from actorctl.client import Health
from actorctl.common import EXIT_REFUSED, client_of, failures, format_duration, print_json
from actorctl.printable import printable

__all__ = ["format_health", "health"]


def format_health(report: Health) -> list[str]:
    total = sum(report.containers.values())
    detail = ", ".join(f"{count} {status}" for status, count in report.containers.items())
    line = (f"{report.status}: actord {report.version} (pid {report.pid}) up "
            f"{format_duration(report.uptime or 0)}, {total} container{'' if total == 1 else 's'}")
    degraded = [f"degraded: {printable(reason)}" for reason in report.degraded]
    return [line + (f" ({detail})" if detail else ""), *degraded]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def health(ctx: click.Context, as_json: bool) -> None:
    """Show whether the daemon is healthy: its uptime, its containers by status, and what
    degrades it (the state dir's storage full, the shim spawner down, the runtime binary
    missing). Exit 0 when healthy, 1 when degraded, 3 when there is no daemon, 4 when it
    does not answer in time.

    \b
    Example (a probe, e.g. in a monitoring check):
      actorctl --timeout 5 health || echo "actord needs attention"
      actorctl health --json
    """
    with failures():
        report = client_of(ctx).health()
    if as_json:
        print_json(report.raw)
    else:
        for line in format_health(report):
            click.echo(line)
    if report.degraded:
        ctx.exit(EXIT_REFUSED)
