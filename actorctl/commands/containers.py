"""`actorctl containers ...`: start, exec, list, state, kill, rm, pause, resume, update, stats, logs."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import click

from actorctl.client import ClientError
from actorctl.common import call, client_of, container_id_arg, guard, parse_signal, print_json

__all__ = ["containers"]

LIST_PAGE = 1000
"""Containers per `containers.list` call: the most the daemon gives in one reply."""


@click.group()
def containers() -> None:
    """Start, inspect, signal and control containers and their processes."""


def _run_attached(ctx: click.Context, container_id: str, process_id: str, stdin: bool, terminal: bool) -> None:
    from actorctl.attach import attach  # termios, threading, shutil: only for --attach

    try:
        status = attach(client_of(ctx), container_id, process_id, stdin=stdin, terminal=terminal)
    except ClientError as exc:
        raise guard(exc) from None
    ctx.exit(status)


@containers.command("start")
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
                   "always (even after a kill), unless-stopped (not after a kill). Restarts back off (actord's "
                   "--restart-delay); the container is kept, and brought back after a reboot, until "
                   "`containers rm`.")
@click.option("--image", metavar="NAME[:TAG]",
              help="Instead of BUNDLE: unpack this image of the store (actorctl images) into "
                   "<root>/bundles/ID and start that; `containers rm ID` deletes it.")
@click.argument("container_id", metavar="ID", callback=container_id_arg)
@click.argument("bundle", type=click.Path(file_okay=False), required=False)
@click.pass_context
def start(ctx: click.Context, labels: tuple[str, ...], checkpoint: str | None, attached: bool, stdin: bool,
          init: bool, restart: str, image: str | None, container_id: str, bundle: str | None) -> None:
    """Start container ID from the OCI bundle directory BUNDLE, or from an image (--image).

    Returns once the container's init process runs, and prints its host pid;
    with --attach, once it exits, with its exit status. A bundle whose
    process.terminal is true gets a terminal.

    An --image container gets its own unpacked copy of the image at
    <root>/bundles/ID. It stays while actord knows the container (running, or
    kept by its restart policy) and goes with `containers rm ID`, which also
    removes the copy of a container that has exited; a later --image start of
    the same ID replaces a leftover copy.

    \b
    Examples:
      actorctl containers start --restart on-failure:3 web1 ./web
      actorctl containers start --image busybox:latest web2
    """
    if (bundle is None) == (image is None):
        raise click.UsageError("give either BUNDLE or --image")
    label_map = {}
    for label in labels:
        key, sep, value = label.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{label!r} is not KEY=VALUE", param_hint="--label")
        label_map[key] = value
    params: dict[str, Any] = {"id": container_id, "labels": label_map, "stdin": stdin, "init": init}
    if restart != "no":
        params["restart"] = restart
    if checkpoint:
        params["checkpoint"] = checkpoint
    if image is not None:
        from actorctl.commands.image_start import start_from_image

        result = start_from_image(ctx, image, params)
    else:
        assert bundle is not None
        result = call(ctx, "containers.start", {**params, "bundle": os.path.abspath(bundle)})
    first = next(p for p in result["processes"] if p["pid"] == "init")
    if attached:
        _run_attached(ctx, container_id, "init", stdin, first.get("tty", False))
    click.echo(f"{container_id} started (pid {first['system_pid']})")


@containers.command("exec", context_settings={"allow_interspersed_args": False})
@click.option("--pid", "process_id", metavar="NAME", help="Name of the new process (default: exec-N).")
@click.option("--cwd", metavar="DIR", help="Working directory in the container.")
@click.option("--env", "env", multiple=True, metavar="KEY=VALUE", help="Set an environment variable (repeatable).")
@click.option("--user", metavar="UID[:GID]", help="Run as this user.")
@click.option("-t", "--tty", is_flag=True, help="Give the process a terminal.")
@click.option("--attach", "attached", is_flag=True, help="Stream its output here and exit with its status.")
@click.option("-i", "--stdin", is_flag=True, help="Forward our stdin to the process.")
@click.argument("container_id", metavar="ID", callback=container_id_arg)
@click.argument("command", nargs=-1, required=True)
@click.pass_context
def exec_(ctx: click.Context, process_id: str | None, cwd: str | None, env: tuple[str, ...], user: str | None,
          tty: bool, attached: bool, stdin: bool, container_id: str, command: tuple[str, ...]) -> None:
    """Run COMMAND as another process in running container ID.

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
    params: dict[str, Any] = {"id": container_id, "args": list(command), "env": list(env), "tty": tty,
                              "stdin": stdin}
    for key, value in (("pid", process_id), ("cwd", cwd), ("user", user)):
        if value is not None:
            params[key] = value
    process = call(ctx, "containers.exec", params)
    if attached:
        _run_attached(ctx, container_id, process["pid"], stdin, tty)
    click.echo(f"{container_id}/{process['pid']} started (pid {process['system_pid']})")


@containers.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """List containers: running, paused, and those a restart policy keeps (restarting, stopped)."""
    result: list[dict[str, Any]] = []
    while True:  # by pages: a node may run more containers than one 1 MiB reply holds
        params: dict[str, Any] = {"limit": LIST_PAGE}
        if result:
            params["after"] = result[-1]["id"]
        page = call(ctx, "containers.list", params)
        result += page
        if len(page) < LIST_PAGE:
            break
    if as_json:
        print_json(result)
        return
    rows = [("ID", "STATUS", "PID", "PROCESSES", "BUNDLE")]
    for container in result:
        init: dict[str, Any] = next((p for p in container["processes"] if p["pid"] == "init"), {})
        rows.append((container["id"], container["status"], str(init.get("system_pid", "-")),
                     str(len(container["processes"])), container["bundle"]))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)) + "  " + row[4])


@containers.command("state")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.argument("container_id", metavar="ID", callback=container_id_arg)
@click.pass_context
def state(ctx: click.Context, as_json: bool, container_id: str) -> None:
    """Show one container and its processes."""
    result = call(ctx, "containers.state", {"id": container_id})
    if as_json:
        print_json(result)
        return
    click.echo(f"id:      {result['id']}\nstatus:  {result['status']}\nbundle:  {result['bundle']}")
    if "restart" in result:
        restart = result["restart"]
        when = restart["next_attempt"]
        click.echo(f"restart: {restart['policy']}, {restart['count']} so far"
                   + (f", next at {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(when))}" if when else "")
                   + ("" if restart["last_status"] is None else f", last exit {restart['last_status']}"))
    for key, value in sorted(result["labels"].items()):
        click.echo(f"label:   {key}={value}")
    for process in result["processes"]:
        click.echo(f"process: {process['pid']} pid={process['system_pid']} shim={process['shim_pid']} "
                   f"args={' '.join(process['args'])}")


@containers.command("kill")
@click.option("--signal", "-s", "signame", default="TERM", show_default=True,
              help="Signal name (TERM, SIGKILL) or number.")
@click.option("--pid", "process_id", metavar="NAME", help="Signal this process of the container (default: init).")
@click.option("--all", "every", is_flag=True, help="Signal every process in the container.")
@click.argument("container_id", metavar="ID", callback=container_id_arg)
@click.pass_context
def kill(ctx: click.Context, signame: str, process_id: str | None, every: bool, container_id: str) -> None:
    """Send a signal to a container's init (or one process, or all of them)."""
    if every and process_id:
        raise click.UsageError("--pid and --all exclude each other")
    params: dict[str, Any] = {"id": container_id, "signal": parse_signal(signame), "all": every}
    if process_id:
        params["pid"] = process_id
    call(ctx, "containers.signal", params)


@containers.command("rm")
@click.argument("container_id", metavar="ID", callback=container_id_arg)
@click.pass_context
def rm(ctx: click.Context, container_id: str) -> None:
    """Remove a container its restart policy keeps (stopped, or restarting): it is not
    restarted again, and its definition is deleted from actord's root. A running container
    is killed first (`containers kill`). The unpacked image of a container started with
    --image is deleted too, also once the container has exited and actord forgot it.

    \b
    Example:
      actorctl containers kill web1 && actorctl containers rm web1
    """
    from actorctl.commands.image_start import remove_container

    remove_container(ctx, container_id)


@containers.command("pause")
@click.argument("container_id", metavar="ID", callback=container_id_arg)
@click.pass_context
def pause(ctx: click.Context, container_id: str) -> None:
    """Freeze every process of a running container."""
    call(ctx, "containers.pause", {"id": container_id})


@containers.command("resume")
@click.argument("container_id", metavar="ID", callback=container_id_arg)
@click.pass_context
def resume(ctx: click.Context, container_id: str) -> None:
    """Thaw a paused container."""
    call(ctx, "containers.resume", {"id": container_id})


@containers.command("update")
@click.option("--memory-limit", type=click.IntRange(0), metavar="BYTES", help="Memory limit in bytes.")
@click.option("--cpu-shares", type=click.IntRange(0), metavar="N", help="Relative CPU weight.")
@click.option("--cpu-quota", type=click.IntRange(-1), metavar="N", help="CPU time per period in µs (-1: none).")
@click.option("--cpu-period", type=click.IntRange(0), metavar="N", help="CPU period in µs.")
@click.option("--pids-limit", type=click.IntRange(0), metavar="N", help="Maximum number of processes.")
@click.argument("container_id", metavar="ID", callback=container_id_arg)
@click.pass_context
def update(ctx: click.Context, /, container_id: str, **limits: int | None) -> None:
    """Change a running container's resource limits (runc update)."""
    given = {key: value for key, value in limits.items() if value is not None}
    if not given:
        raise click.UsageError("give at least one limit to change")
    call(ctx, "containers.update", {"id": container_id, **given})


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
@click.argument("container_id", metavar="ID", callback=container_id_arg)
@click.pass_context
def stats(ctx: click.Context, as_json: bool, watch: bool, container_id: str) -> None:
    """Memory, CPU, process and block-IO figures from the container's cgroups."""
    while True:
        result = call(ctx, "containers.stats", {"id": container_id})
        if as_json:
            if watch:
                click.echo(json.dumps(result))
            else:
                print_json(result)
        else:
            memory, cpu = result.get("memory", {}), result.get("cpu", {})
            pids, blkio = result.get("pids", {}), result.get("blkio", {})
            if watch:
                click.echo("\x1b[H\x1b[2J", nl=False)
            click.echo(f"{container_id}  {time.strftime('%H:%M:%S', time.localtime(result['timestamp']))}")
            click.echo(f"memory  {_human_bytes(memory.get('usage'))} used, "
                       f"{_human_bytes(memory.get('max_usage'))} max, limit {_human_bytes(memory.get('limit'))} "
                       f"(rss {_human_bytes(memory.get('rss'))}, cache {_human_bytes(memory.get('cache'))})")
            total = cpu.get("usage_total_ns")
            click.echo(f"cpu     {total / 1e9 if total is not None else 0:.3f} s, "
                       f"throttled {cpu.get('throttled_periods')} periods")
            click.echo(f"pids    {pids.get('current')} (limit {pids.get('limit') or 'none'})")
            click.echo(f"blkio   read {_human_bytes(blkio.get('read_bytes'))}, "
                       f"written {_human_bytes(blkio.get('write_bytes'))}")
        if not watch:
            return
        try:
            time.sleep(1)
        except KeyboardInterrupt:
            return


@containers.command("logs")
@click.option("--follow", "-f", is_flag=True, help="Keep printing output as it comes, until the process exits.")
@click.option("--pid", "process_id", default="init", show_default=True, metavar="NAME",
              help="Which process of the container.")
@click.argument("container_id", metavar="ID", callback=container_id_arg)
@click.pass_context
def logs(ctx: click.Context, follow: bool, process_id: str, container_id: str) -> None:
    """Print a process's captured stdout and stderr (kept, bounded, while it runs and shortly after)."""
    from actorctl.attach import copy_output

    client = client_of(ctx)
    cursor = None
    try:
        while True:
            result = copy_output(client, {"id": container_id, "pid": process_id}, cursor)
            if result["dropped"] and cursor is not None:
                click.echo("actorctl: some output was rotated away before it was read", err=True)
            cursor = result["cursor"]
            if not result["records"]:
                if not follow or result["status"] is not None:
                    return
                time.sleep(0.1)
    except ClientError as exc:
        raise guard(exc) from None
    except KeyboardInterrupt:
        return
