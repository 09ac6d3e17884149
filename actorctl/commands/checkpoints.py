"""`actorctl checkpoints ...`: checkpoint a container with runc and CRIU, list and delete checkpoints."""

from __future__ import annotations

import datetime

import click

from actorctl.common import client_of, complete_container_id, container_id_arg, failures, print_json
from actorctl.printable import printable

__all__ = ["checkpoints"]


@click.group()
def checkpoints() -> None:
    """Checkpoint containers (runc checkpoint) into <bundle>/checkpoints/NAME.

    Restore one with `actorctl containers start --checkpoint NAME ID BUNDLE`.

    \b
    Example:
      actorctl checkpoints create --exit web1 before-upgrade
    """


@checkpoints.command("create")
@click.option("--json", "as_json", is_flag=True, help='Print {"id": ID, "name": NAME}.')
@click.option("--exit", "leave", is_flag=True, help="Stop the container once checkpointed.")
@click.option("--tcp", is_flag=True, help="Allow established TCP connections.")
@click.option("--unix-sockets", is_flag=True, help="Allow external unix sockets.")
@click.option("--shell", is_flag=True, help="Allow shell jobs.")
@click.argument("container_id", metavar="ID", callback=container_id_arg, shell_complete=complete_container_id)
@click.argument("name")
@click.pass_context
def create(ctx: click.Context, as_json: bool, leave: bool, tcp: bool, unix_sockets: bool, shell: bool,
           container_id: str, name: str) -> None:
    """Checkpoint container ID as NAME.

    \b
    Example:
      actorctl checkpoints create web1 snap1
    """
    with failures():
        client_of(ctx).checkpoint(container_id, name, exit=leave, tcp=tcp, unix_sockets=unix_sockets, shell=shell)
    if as_json:
        print_json({"id": container_id, "name": name})
    else:
        click.echo(f"checkpoint {name} of {container_id} created")


@checkpoints.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.argument("container_id", metavar="ID", callback=container_id_arg, shell_complete=complete_container_id)
@click.pass_context
def list_(ctx: click.Context, as_json: bool, container_id: str) -> None:
    """List the checkpoints in container ID's bundle.

    \b
    Example:
      actorctl checkpoints list --json web1
    """
    with failures():
        found = client_of(ctx).checkpoints(container_id)
    if as_json:
        print_json([checkpoint.raw for checkpoint in found])
        return
    for checkpoint in found:
        created = checkpoint.created
        when = datetime.datetime.fromtimestamp(created).isoformat(timespec="seconds") if created else "-"
        flags = [key for key in ("exit", "tcp", "unix_sockets", "shell") if getattr(checkpoint, key)]
        click.echo(f"{printable(checkpoint.name)}  {when}  {','.join(flags)}")


@checkpoints.command("delete")
@click.argument("container_id", metavar="ID", callback=container_id_arg, shell_complete=complete_container_id)
@click.argument("name")
@click.pass_context
def delete(ctx: click.Context, container_id: str, name: str) -> None:
    """Delete checkpoint NAME of container ID.

    \b
    Example:
      actorctl checkpoints delete web1 snap1
    """
    with failures():
        client_of(ctx).delete_checkpoint(container_id, name)
