"""`actorctl containers ...`: start, exec, list, state, kill, rm, pause, resume, update, stats, wait;
logs is in commands/logs.py."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from typing import Any

import click

from actorctl.client import Timeout
from actorctl.commands.logs import logs
from actorctl.common import (
    AttachableCommand,
    client_of,
    complete_container_id,
    container_id_arg,
    failures,
    parse_label_filter,
    parse_signal,
    print_json,
    print_json_line,
)
from actorctl.printable import printable

__all__ = ["containers"]

STATUSES = ("running", "paused", "restarting", "stopped", "starting", "stopping")
"""The statuses `containers list` shows, for --filter status=."""

@click.group()
def containers() -> None:
    """Start, inspect, signal and control containers and their processes.

    \b
    Example:
      actorctl containers start web1 ./bundle && actorctl containers wait web1
    """


def _run_attached(ctx: click.Context, container_id: str, process_id: str, stdin: bool, terminal: bool) -> None:
    from actorctl.attach import attach  # termios, threading, shutil: only for --attach

    with failures(attached=True):
        status = attach(client_of(ctx), container_id, process_id, stdin=stdin, terminal=terminal)
    ctx.exit(status)


@containers.command("start", cls=AttachableCommand)
@click.option("--json", "as_json", is_flag=True,
              help="Print the started container as JSON (the `containers state --json` schema).")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Attach a label (repeatable).")
@click.option("--checkpoint", metavar="NAME", help="Restore from <bundle>/checkpoints/NAME instead of a fresh start.")
@click.option("--attach", "attached", is_flag=True,
              help="Stream the container's output here and exit with its exit status.")
@click.option("-i", "--stdin", is_flag=True, help="Give the container a stdin and forward ours to it.")
@click.option("--init", is_flag=True,
              help="Run a minimal init (tini) as PID 1 that forwards signals and reaps orphans; "
                   "the bundle's process is its child and its exit status is the container's.")
@click.option("--restart", default="no", show_default=True, metavar="POLICY",
              help="Restart policy: no, on-failure[:MAX] (a non-zero exit or an OOM kill; at most MAX restarts), "
                   "always and unless-stopped (whatever the exit). `containers kill` stops any of them; "
                   "a stopped always container comes back when actord starts again, unless-stopped does not. "
                   "Restarts back off (actord's --restart-delay); the container is kept, and brought back after "
                   "a reboot, until `containers rm`.")
@click.option("--image", metavar="NAME[:TAG][@DIGEST]|ID",
              help="Instead of BUNDLE: an image of actord's store (actorctl images); actord makes the "
                   "container's root, an overlay of the image's shared layers, which goes with the container. "
                   "NAME is normalized as docker does: busybox, library/busybox and docker.io/library/busybox "
                   "are one image.")
@click.option("-t", "--tty", is_flag=True, help="With --image: give the container a terminal.")
@click.argument("container_id", metavar="ID", callback=container_id_arg, shell_complete=complete_container_id)
@click.argument("rest", metavar="[BUNDLE | -- ARGS...]", nargs=-1)
@click.pass_context
def start(ctx: click.Context, as_json: bool, labels: tuple[str, ...], checkpoint: str | None, attached: bool,
          stdin: bool, init: bool, restart: str, image: str | None, tty: bool, container_id: str,
          rest: tuple[str, ...]) -> None:
    """Start container ID from the OCI bundle directory BUNDLE, or from an image (--image; ARGS
    replace the image's Cmd, as `docker run IMAGE ARGS`).

    Returns once the container's init process runs, and prints its host pid;
    with --attach, once it exits, with its exit status. A bundle whose
    process.terminal is true gets a terminal.

    An --image container's root is an overlay of the image's layers (shared
    with every container of the image) under its own upper dir, at
    <root>/images/containers/ID. It stays while actord knows the container
    (running, or kept by its restart policy) and goes when the container does
    (its exit without a policy, `containers rm`).

    \b
    With --attach, the exit code is the process's exit status, or
    125 actorctl or the daemon failed (a usage error too),
    126 the process's executable cannot be executed,
    127 the process's executable does not exist.

    \b
    Examples:
      actorctl containers start --restart on-failure:3 web1 ./web
      actorctl containers start --image busybox:latest web2 -- sleep 60
      actorctl containers start --attach job1 ./job; echo "job1 exited $?"
    """
    bundle = None
    if image is None:
        if len(rest) != 1:
            raise click.UsageError("give BUNDLE, or --image (ARGS after it)")
        bundle = rest[0]
    if image is None and tty:
        raise click.UsageError("--tty is for --image (a bundle's process.terminal says it)")
    label_map = {}
    for label in labels:
        key, sep, value = label.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{label!r} is not KEY=VALUE", param_hint="--label")
        label_map[key] = value
    if as_json and attached:
        raise click.UsageError("--json and --attach exclude each other: the output is the process's")
    policy = None if restart == "no" else restart
    if image is not None:
        args = list(rest[1:] if rest[:1] == ("--",) else rest)
        with failures(attached):
            started = client_of(ctx).start(container_id, image=image, args=args or None, tty=tty, labels=label_map,
                                           stdin=stdin, init=init, restart=policy, checkpoint=checkpoint or None)
    else:
        assert bundle is not None
        with failures(attached):
            started = client_of(ctx).start(container_id, os.path.abspath(bundle), labels=label_map, stdin=stdin,
                                           init=init, restart=policy, checkpoint=checkpoint or None)
    first = started.process("init")
    assert first is not None, "a started container runs its init"
    if attached:
        _run_attached(ctx, container_id, "init", stdin, first.tty)
    if as_json:
        print_json(started.raw)
    else:
        click.echo(f"{container_id} started (pid {first.system_pid})")



@containers.command("exec", cls=AttachableCommand, context_settings={"allow_interspersed_args": False})
@click.option("--json", "as_json", is_flag=True,
              help="Print the started process as JSON: pid, system_pid, shim_pid, args, tty.")
@click.option("--pid", "process_id", metavar="NAME", help="Name of the new process (default: exec-N).")
@click.option("--cwd", metavar="DIR", help="Working directory in the container.")
@click.option("--env", "env", multiple=True, metavar="KEY=VALUE", help="Set an environment variable (repeatable).")
@click.option("--user", metavar="UID[:GID]", help="Run as this user.")
@click.option("-t", "--tty", is_flag=True, help="Give the process a terminal.")
@click.option("--attach", "attached", is_flag=True, help="Stream its output here and exit with its status.")
@click.option("-i", "--stdin", is_flag=True, help="Forward our stdin to the process.")
@click.argument("container_id", metavar="ID", callback=container_id_arg, shell_complete=complete_container_id)
@click.argument("command", nargs=-1, required=True)
@click.pass_context
def exec_(ctx: click.Context, as_json: bool, process_id: str | None, cwd: str | None, env: tuple[str, ...],
          user: str | None, tty: bool, attached: bool, stdin: bool, container_id: str,
          command: tuple[str, ...]) -> None:
    """Run COMMAND as another process in running container ID.

    \b
    With --attach, the exit code is the process's exit status, or
    125 actorctl or the daemon failed (a usage error too),
    126 the process's executable cannot be executed,
    127 the process's executable does not exist.

    \b
    Example:  actorctl containers exec --attach web1 -- ps
    """
    if command[:1] == ("--",):
        command = command[1:]
    if not command:
        raise click.UsageError("missing COMMAND")
    for item in env:
        if "=" not in item or item.startswith("="):
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--env")
    if as_json and attached:
        raise click.UsageError("--json and --attach exclude each other: the output is the process's")
    with failures(attached):
        process = client_of(ctx).exec(container_id, command, name=process_id, env=env, cwd=cwd, user=user, tty=tty,
                                      stdin=stdin)
    if attached:
        _run_attached(ctx, container_id, process.name, stdin, tty)
    if as_json:
        print_json(process.raw)
    else:
        click.echo(f"{container_id}/{printable(process.name)} started (pid {process.system_pid})")



@containers.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array (of the `containers state --json` schema).")
@click.option("--quiet", "-q", is_flag=True, help="Print only the ids, one a line.")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="Only containers that match: label=KEY (has the label), label=KEY=VALUE, "
                   f"status=STATUS ({', '.join(STATUSES)}). Repeatable; all must match.")
@click.pass_context
def list_(ctx: click.Context, as_json: bool, quiet: bool, filters: tuple[str, ...]) -> None:
    """List containers: running, paused, and those a restart policy keeps (restarting, stopped).

    \b
    Examples:
      actorctl containers list --filter label=tier=web --filter status=running
      actorctl containers list --quiet | xargs -n1 actorctl containers kill
    """
    labels: list[tuple[str, str | None]] = []
    statuses: set[str] = set()
    for item in filters:
        key, sep, value = item.partition("=")
        if key == "label" and sep:
            labels.append(parse_label_filter(value))
        elif key == "status" and value in STATUSES:
            statuses.add(value)
        elif key == "status":
            raise click.BadParameter(f"status={value!r}: one of {', '.join(STATUSES)}", param_hint="--filter")
        else:
            raise click.BadParameter(f"{item!r}: filter by label=KEY[=VALUE] or status=STATUS",
                                     param_hint="--filter")
    if len(statuses) > 1:
        raise click.BadParameter("a container has one status: give at most one status= filter",
                                 param_hint="--filter")
    with failures():
        listed = client_of(ctx).containers()  # by pages: a node may run more than one 1 MiB reply holds
    shown = [container for container in listed
             if (not statuses or container.status in statuses)
             and all(key in container.labels and (wanted is None or container.labels[key] == wanted)
                     for key, wanted in labels)]
    if as_json:
        print_json([container.raw for container in shown])
        return
    if quiet:
        for container in shown:
            click.echo(container.id)
        return
    rows = [("ID", "STATUS", "PID", "PROCESSES", "BUNDLE")]
    for container in shown:
        init = container.process("init")
        rows.append((container.id, container.status, "-" if init is None else str(init.system_pid),
                     str(len(container.processes)), printable(container.bundle)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)) + "  " + row[4])


def _container_ids(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(container_id_arg(ctx, param, value) for value in values)


@containers.command("state")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.argument("container_id", metavar="ID", callback=container_id_arg, shell_complete=complete_container_id)
@click.pass_context
def state(ctx: click.Context, as_json: bool, container_id: str) -> None:
    """Show one container and its processes.

    \b
    Example:
      actorctl containers state --json web1
    """
    with failures():
        container = client_of(ctx).container(container_id)
    if as_json:
        print_json(container.raw)
        return
    click.echo(f"id:      {container.id}\nstatus:  {container.status}\nbundle:  {printable(container.bundle)}")
    if container.cri_log is not None:
        click.echo(f"cri log: {printable(container.cri_log)}")
    restart = container.restart
    if restart is not None:
        when = restart.next_attempt
        click.echo(f"restart: {restart.policy}, {restart.count} so far"
                   + (f", next at {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(when))}" if when else "")
                   + ("" if restart.last_status is None else f", last exit {restart.last_status}"))
    for key, value in sorted(container.labels.items()):
        click.echo(f"label:   {printable(key)}={printable(value)}")
    for process in container.processes:
        click.echo(f"process: {printable(process.name)} pid={process.system_pid} shim={process.shim_pid} "
                   f"args={printable(' '.join(process.args))}")


@containers.command("kill")
@click.option("--signal", "-s", "signame", default="TERM", show_default=True,
              help="Signal name (TERM, SIGKILL) or number.")
@click.option("--pid", "process_id", metavar="NAME", help="Signal this process of the container (default: init).")
@click.option("--all", "every", is_flag=True, help="Signal every process in the container.")
@click.argument("container_id", metavar="ID", callback=container_id_arg, shell_complete=complete_container_id)
@click.pass_context
def kill(ctx: click.Context, signame: str, process_id: str | None, every: bool, container_id: str) -> None:
    """Send a signal to a container's init (or one process, or all of them).

    \b
    Example:
      actorctl containers kill --signal KILL web1
    """
    if every and process_id:
        raise click.UsageError("--pid and --all exclude each other")
    number = parse_signal(signame)
    with failures():
        client_of(ctx).signal(container_id, number, process=process_id or None, all_processes=every)


@containers.command("rm")
@click.argument("container_id", metavar="ID", callback=container_id_arg, shell_complete=complete_container_id)
@click.option("--force", "-f", is_flag=True,
              help="Kill a running container (every process, KILL) and remove it, whatever its restart policy; "
                   "returns once its exit is recorded.")
@click.pass_context
def rm(ctx: click.Context, container_id: str, force: bool) -> None:
    """Remove a container its restart policy keeps (stopped, or restarting): it is not
    restarted again, and its definition is deleted from actord's root. A running container
    is refused unless --force (or kill it first: `containers kill` stops any restart policy).
    The unpacked image of a container started with --image is deleted too, also once the
    container has exited and actord forgot it.

    \b
    Examples:
      actorctl containers kill web1 && actorctl containers rm web1
      actorctl containers rm --force web1
    """
    with failures():
        client_of(ctx).remove(container_id, force=force)


@containers.command("pause")
@click.argument("container_id", metavar="ID", callback=container_id_arg, shell_complete=complete_container_id)
@click.pass_context
def pause(ctx: click.Context, container_id: str) -> None:
    """Freeze every process of a running container.

    \b
    Example:
      actorctl containers pause web1
    """
    with failures():
        client_of(ctx).pause(container_id)


@containers.command("resume")
@click.argument("container_id", metavar="ID", callback=container_id_arg, shell_complete=complete_container_id)
@click.pass_context
def resume(ctx: click.Context, container_id: str) -> None:
    """Thaw a paused container.

    \b
    Example:
      actorctl containers resume web1
    """
    with failures():
        client_of(ctx).resume(container_id)


@containers.command("update")
@click.option("--memory-limit", type=click.IntRange(0), metavar="BYTES", help="Memory limit in bytes.")
@click.option("--cpu-shares", type=click.IntRange(0), metavar="N", help="Relative CPU weight.")
@click.option("--cpu-quota", type=click.IntRange(-1), metavar="N", help="CPU time per period in µs (-1: none).")
@click.option("--cpu-period", type=click.IntRange(0), metavar="N", help="CPU period in µs.")
@click.option("--pids-limit", type=click.IntRange(0), metavar="N", help="Maximum number of processes.")
@click.argument("container_id", metavar="ID", callback=container_id_arg, shell_complete=complete_container_id)
@click.pass_context
def update(ctx: click.Context, /, container_id: str, **limits: Any) -> None:
    """Change a running container's resource limits (runc update).

    \b
    Example:
      actorctl containers update --memory-limit 268435456 --pids-limit 100 web1
    """
    if all(value is None for value in limits.values()):
        raise click.UsageError("give at least one limit to change")
    with failures():
        client_of(ctx).update(container_id, **limits)


def _human_bytes(value: int | None) -> str:
    if value is None or value >= 1 << 62:
        return "none"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{value} B"
        value /= 1024  # type: ignore[assignment]
    return str(value)


@containers.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--watch", is_flag=True, help="Refresh every second, like top (Ctrl-C to stop).")
@click.argument("container_id", metavar="ID", callback=container_id_arg, shell_complete=complete_container_id)
@click.pass_context
def stats(ctx: click.Context, as_json: bool, watch: bool, container_id: str) -> None:
    """Memory, CPU, process and block-IO figures from the container's cgroups.

    --json prints the daemon's `containers.stats` reply (with --watch, one a line).

    \b
    Example:
      actorctl containers stats --watch web1
    """
    while True:
        with failures():
            figures = client_of(ctx).stats(container_id)
        if as_json:
            if watch:
                click.echo(json.dumps(figures.raw))
            else:
                print_json(figures.raw)
        else:
            if watch:
                click.echo("\x1b[H\x1b[2J", nl=False)
            click.echo(f"{container_id}  {time.strftime('%H:%M:%S', time.localtime(figures.timestamp))}")
            click.echo(f"memory  {_human_bytes(figures.memory_usage)} used, "
                       f"{_human_bytes(figures.memory_max_usage)} max, limit {_human_bytes(figures.memory_limit)} "
                       f"(rss {_human_bytes(figures.memory_rss)}, cache {_human_bytes(figures.memory_cache)})")
            total = figures.cpu_total_ns
            click.echo(f"cpu     {total / 1e9 if total is not None else 0:.3f} s, "
                       f"throttled {figures.cpu_throttled_periods} periods")
            click.echo(f"pids    {figures.pids_current} (limit {figures.pids_limit or 'none'})")
            click.echo(f"blkio   read {_human_bytes(figures.blkio_read_bytes)}, "
                       f"written {_human_bytes(figures.blkio_write_bytes)}")
        if not watch:
            return
        try:
            time.sleep(1)
        except KeyboardInterrupt:
            return


@containers.command("wait")
@click.option("--json", "as_json", is_flag=True,
              help='One JSON object per container, one a line: {"id": ID, "status": EXIT_STATUS}.')
@click.argument("container_ids", metavar="ID...", nargs=-1, required=True, callback=_container_ids,
                shell_complete=complete_container_id)
@click.pass_context
def wait(ctx: click.Context, as_json: bool, container_ids: tuple[str, ...]) -> None:
    """Block until each container ID exits, and print its exit status (one line per container,
    in the order given); exit with the first one's status.

    Each container is waited for in turn, all from the moment this command
    began, and gets its status from the first of: its first exit since then
    (a container under a restart policy: that exit, not its final stop); for a
    running container, its next exit; for one a restart policy keeps
    (restarting, stopped), the policy's last exit status (known even when the
    event log has rotated past it); for a container that is gone, its last exit
    in the event log. An id with none of these: exit 1 at once, before any
    status is printed. The wait outlives a restart of the daemon (it follows
    the event log, so it misses no exit); exit 3 when the daemon stays away
    (10 minutes).

    \b
    Examples:
      actorctl containers wait job1
      actorctl containers wait --json job1 job2
    """
    client = client_of(ctx)
    statuses: dict[str, int] = {}
    with failures():
        began = client.last_event_seq()
        for container_id in dict.fromkeys(container_ids):  # what is known now: an unknown id fails before any wait
            with contextlib.suppress(Timeout):  # it runs: waited for below
                statuses[container_id] = client.wait(container_id, after=began, timeout=0).status
        for container_id in container_ids:
            if container_id not in statuses:
                statuses[container_id] = client.wait(container_id, after=began).status
            if as_json:
                print_json_line({"id": container_id, "status": statuses[container_id]})
            else:
                click.echo(str(statuses[container_id]))
                sys.stdout.flush()
    ctx.exit(statuses[container_ids[0]])


containers.add_command(logs)
