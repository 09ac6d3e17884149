"""`actorctl pods ...`: the CRI's pod sandboxes the daemon keeps, listed and inspected (a CRI
client, the kubelet or crictl, runs, stops and removes them)."""

from __future__ import annotations

import time

import click

from actorctl.client import ClientError, Pod
from actorctl.common import client_of, format_duration, guard, print_json
from actorctl.printable import printable

__all__ = ["pods"]


@click.group()
def pods() -> None:
    """Pod sandboxes run through the CRI (<root>/pods): each has an infra container that
    `containers list` shows too, labelled actord.pod=<pod id>.

    \b
    Example:
      actorctl pods list && actorctl pods inspect 3f2a
    """


def _row(pod: Pod, now: float) -> tuple[str, ...]:
    created = f"{format_duration(max(0.0, now - pod.created_at / 1e9))} ago"
    return (pod.id[:13], printable(pod.name), printable(pod.namespace), pod.state, ",".join(pod.ips) or "-", created)


@pods.command("list")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON array of the pods' records: id, metadata {name, uid, namespace, attempt}, state, "
                   "created_at (ns), ips, netns, infra_id, labels, annotations, host_network, host_pid, host_ipc, "
                   "hostname, log_directory, runtime_handler, port_mappings.")
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """List the pod sandboxes, oldest first: ID (13 of its 64 hex digits), NAME, NAMESPACE,
    STATE (READY or NOTREADY), IP (eth0's first; - with the host's network or once stopped),
    CREATED.

    \b
    Example:  actorctl pods list --json
    """
    try:
        found = client_of(ctx).pods()
    except ClientError as exc:
        raise guard(exc) from None
    if as_json:
        print_json([pod.raw for pod in found])
        return
    now = time.time()
    rows = [("ID", "NAME", "NAMESPACE", "STATE", "IP", "CREATED"), *(_row(pod, now) for pod in found)]
    widths = [max(len(row[column]) for row in rows) for column in range(5)]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True)) + "  " + row[5])


@pods.command("inspect")
@click.option("--json", "as_json", is_flag=True,
              help="Print the pod's whole record as JSON, with its ips and cni_result (the CNI ADD's result).")
@click.argument("pod_id", metavar="ID")
@click.pass_context
def inspect(ctx: click.Context, as_json: bool, pod_id: str) -> None:
    """Show one pod sandbox, by its id or a unique prefix of it.

    \b
    Examples:
      actorctl pods inspect 3f2a
      actorctl pods inspect --json 3f2a | jq .ips
    """
    try:
        pod = client_of(ctx).pod(pod_id)
    except ClientError as exc:
        raise guard(exc) from None
    if as_json:
        print_json(pod.raw)
        return
    raw = pod.raw
    lines = [("id", pod.id), ("name", pod.name), ("namespace", pod.namespace), ("uid", pod.uid),
             ("attempt", str(pod.attempt)), ("state", pod.state), ("ips", ", ".join(pod.ips) or "-"),
             ("netns", str(raw.get("netns") or "host")), ("infra", pod.infra_id),
             ("hostname", str(raw.get("hostname") or "")),
             ("labels", ", ".join(f"{key}={value}" for key, value in sorted(pod.labels.items())))]
    for name, value in lines:
        click.echo(f"{name + ':':<11}{printable(value)}")
