"""`actord`: the command line (click) of the daemon: `actord start` and its options (each also
a key of the config file, actors/config.py), `actord config`. It checks and resolves what it is
given, then hands it to actors/daemon.py's Daemon.
"""

from __future__ import annotations

import grp
import os
import sys
from pathlib import Path

import click
from setproctitle import setproctitle

from actors import __version__
from actors.config import DEFAULT_CONFIG, ConfiguredCommand, config_commands, effective_settings
from actors.curve import curve_server, ipc_path
from actors.daemon import DEFAULT_CNI_BIN_DIRS, DEFAULT_CNI_CONF_DIR, DEFAULT_STATE_DIR, Daemon, StartupError, logger
from actors.daemonlog import FORMATS, LEVELS
from actors.daemonlog import configure as configure_logging
from actors.images.pull import PullSettings
from actors.metrics import parse_address
from actors.rootdir import DEFAULT_ROOT, RootDir
from actors.service.shim_cgroup import DEFAULT_SHIM_CGROUP
from actors.statedir import StateDir
from actors.supervisor.restart import Backoff
from actors.wire.outputlog import DEFAULT_LIMIT, LIMIT_HIGH, LIMIT_LOW

__all__ = ["cli", "main", "start"]


def group_id(name: str) -> int:
    """The gid of the --socket-group, or a start-up error naming it."""
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise StartupError(f"--socket-group: there is no group {name!r} (make it with groupadd first)") from None


def bin_dirs(value: str) -> tuple[Path, ...]:
    """--cni-bin-dir's colon-separated dirs, each made absolute (empty entries skipped)."""
    return tuple(Path(entry).absolute() for entry in value.split(":") if entry)


def some_bin_dir(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Refuse a --cni-bin-dir that names no directory."""
    if not bin_dirs(value):
        raise click.BadParameter("give at least one directory")
    return value


def absolute_unresolved(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """A path made absolute, its symlinks left unresolved: a link is refused where it is opened
    (O_NOFOLLOW), not followed while the option is parsed (click's resolve_path would)."""
    return None if value is None else value.absolute()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="actord")
def cli() -> None:
    """actord: a container supervisor. Runs OCI bundles through runc, one shim per process."""


@cli.command(cls=ConfiguredCommand)
@click.option("--state-dir", default=DEFAULT_STATE_DIR, show_default=True, type=click.Path(file_okay=False),
              help="Where running containers, sockets and the event log live, wiped by a reboot (keep it "
                   "short: ipc paths are limited to 107 bytes).")
@click.option("--root", default=DEFAULT_ROOT, show_default=True, type=click.Path(file_okay=False),
              help="Persistent storage: definitions of containers under a restart policy (brought back after "
                   "a reboot) and the event numbering.")
@click.option("--listen", default=None, metavar="ADDRESS",
              help="Control socket address; a network one (tcp://...) needs --curve-secret-key and "
                   "--curve-authorized-keys.  [default: ipc://<state-dir>/actord.sock]")
@click.option("--curve-secret-key", metavar="FILE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path, resolve_path=True),
              help="This daemon's CURVE certificate with its secret key (the .key_secret file made by "
                   "zmq.auth.create_certificates): the control socket admits only CURVE clients.")
@click.option("--curve-authorized-keys", metavar="DIR",
              type=click.Path(exists=True, file_okay=False, path_type=Path, resolve_path=True),
              help="Directory of the public certificates (*.key) of the clients CURVE admits; any other key "
                   "is refused.")
@click.option("--workers", default=10, show_default=True, type=click.IntRange(1, 256),
              help="Worker actors that run container starts and other runtime calls.")
@click.option("--start-timeout", default=30.0, show_default=True, type=click.FloatRange(0.1, 3600),
              help="Seconds a container start (shim, runc create, runc start) may take.")
@click.option("--retain-count", default=500, show_default=True, type=click.IntRange(1, 10_000_000),
              help="How many past events to keep for replay.")
@click.option("--runtime", default="runc", show_default=True, help="The OCI runtime binary.")
@click.option("--events-hwm", default=10000, show_default=True, type=click.IntRange(1, 10_000_000),
              help="Events queued per slow subscriber before the PUB socket drops (subscribers then replay).")
@click.option("--events-buffer", default=0, show_default=True, type=click.IntRange(0, 1 << 30), metavar="BYTES",
              help="Kernel send buffer per event subscriber (0: the system's default).")
@click.option("--log-limit", default=DEFAULT_LIMIT, show_default=True, type=click.IntRange(LIMIT_LOW, LIMIT_HIGH),
              help="Bytes of captured output per process file; two files are kept (rotated).")
@click.option("--socket-group", metavar="GROUP",
              help="Let this group's members use actord: the control, event and CRI sockets become root:GROUP "
                   "0660 and the state dir root:GROUP 0710 (enter, not list); all else stays root's. Its "
                   "members are root-equivalent: whoever can talk to the socket can run a container with "
                   "host mounts, hooks and capabilities as root (as with Docker's docker group).  "
                   "[default: root only]")
@click.option("--restart-delay", default=0.1, show_default=True, type=click.FloatRange(0.01, 3600), metavar="SECONDS",
              help="A restart policy's first back-off; it doubles with each quick restart, up to --restart-delay-max.")
@click.option("--restart-delay-max", default=60.0, show_default=True, type=click.FloatRange(0.01, 86400),
              metavar="SECONDS", help="The longest back-off between restarts.")
@click.option("--restart-reset", default=10.0, show_default=True, type=click.FloatRange(0, 86400), metavar="SECONDS",
              help="A container that ran this long before it stopped restarts after --restart-delay again.")
@click.option("--metrics-address", metavar="HOST:PORT",
              help="Serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9338).  [default: off]")
@click.option("--pidfile", type=click.Path(dir_okay=False, path_type=Path), callback=absolute_unresolved,
              help="Write the daemon's pid here (never through a symbolic link); removed at stop if it still "
                   "holds that pid.")
@click.option("--shim-cgroup", default=DEFAULT_SHIM_CGROUP, show_default=True,
              metavar="NAME|/PATH|none",
              help="The cgroup each shim (and so its container) moves into, in the hierarchies a service "
                   "manager tracks processes by (cgroup v1 name=systemd, cgroup v2): NAME beside actord's own "
                   "cgroup, /PATH from the hierarchy's root. Then stopping actord's cgroup (systemctl stop or "
                   "restart without KillMode=process) leaves the containers running. none: shims stay in "
                   "actord's cgroup. Made if missing; removed at stop if empty.")
@click.option("--registries-conf", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="FILE",
              callback=absolute_unresolved,
              help="The containers-registries.conf(5) pulls honour: mirrors, plain-HTTP (insecure) registries, "
                   "unqualified-search-registries for names without a registry.  "
                   "[default: /etc/containers/registries.conf if it exists]")
@click.option("--auth-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="FILE",
              callback=absolute_unresolved,
              help="Registry credentials for pulls, a containers-auth.json(5) file (as `podman login` writes).")
@click.option("--cri-address", metavar="unix:///PATH|none",
              help="Serve the Kubernetes CRI v1 (gRPC: RuntimeService, ImageService) on this unix socket, "
                   "which gets the control socket's access (root's; --socket-group's too); none: serve no CRI.  "
                   "[default: unix://<state-dir>/cri.sock]")
@click.option("--cni-conf-dir", default=str(DEFAULT_CNI_CONF_DIR), show_default=True,
              type=click.Path(file_okay=False),
              help="The CNI network config of the CRI's pods: the first .conf, .conflist or .json file by name "
                   "(as libcni picks it). Status reports NetworkReady false while it has none.")
@click.option("--cni-bin-dir", default=":".join(map(str, DEFAULT_CNI_BIN_DIRS)), show_default=True,
              metavar="DIR[:DIR...]", callback=some_bin_dir,
              help="Where the CNI plugins are looked up, in this order (a colon-separated list).")
@click.option("--log-level", type=click.Choice(list(LEVELS)), default="info", show_default=True,
              help="Log this level and above.")
@click.option("--log-format", type=click.Choice(FORMATS), default="text", show_default=True,
              help="text: one line per message, then key=value fields; json: one JSON object per line (time, "
                   "level, logger, message, exception, container_id, process, request_id, peer_uid).")
@click.option("--debug", is_flag=True, help="Log debug messages (--log-level debug).")
def start(state_dir: str, root: str, listen: str | None, curve_secret_key: Path | None,
          curve_authorized_keys: Path | None, workers: int, start_timeout: float, retain_count: int,
          runtime: str, events_hwm: int, events_buffer: int, log_limit: int, socket_group: str | None,
          restart_delay: float, restart_delay_max: float, restart_reset: float, metrics_address: str | None,
          pidfile: Path | None, shim_cgroup: str, registries_conf: Path | None, auth_file: Path | None,
          cri_address: str | None, cni_conf_dir: str, cni_bin_dir: str, log_level: str,
          log_format: str, debug: bool) -> None:
    """Run the daemon in the foreground until SIGTERM or SIGINT (a second SIGINT: at once).

    Containers keep running when the daemon stops: their shims outlive it, and
    the next `actord start` on the same state dir takes them back, reporting
    any exit that happened meanwhile. SIGUSR1 logs every thread's stack.

    Under systemd (contrib/actord.service, Type=notify) it speaks sd_notify when
    NOTIFY_SOCKET is set: READY=1 once the state dir's containers are restored and
    requests are served, STATUS=serving N containers, WATCHDOG=1 every half of
    WATCHDOG_USEC while the Supervisor answers, STOPPING=1 on SIGTERM/SIGINT.
    """
    configure_logging("debug" if debug else log_level, log_format, sys.stderr)
    settings = effective_settings(click.get_current_context())
    logger.info("config file: %s", settings["config"] or f"none ({DEFAULT_CONFIG} does not exist)")
    state = StateDir(state_dir)  # absolute, as every path option: resolved before we leave the directory
    listen_path = None if listen is None else ipc_path(listen)
    if listen_path is not None:
        listen = f"ipc://{listen_path.absolute()}"
    try:
        curve = curve_server(listen, curve_secret_key, curve_authorized_keys)
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    if metrics_address is not None:
        try:
            parse_address(metrics_address)
        except ValueError as exc:
            raise StartupError(f"--metrics-address: {exc}") from None
    os.chdir("/")  # nothing is read, written or imported relative to wherever root started us
    setproctitle(f"actord {state.root}")
    try:
        backoff = Backoff(first=restart_delay, cap=max(restart_delay, restart_delay_max), reset=restart_reset)
        daemon = Daemon(state, RootDir(root), backoff, listen=listen, workers=workers, start_timeout=start_timeout,
                        retain_count=retain_count, runtime=runtime, events_hwm=events_hwm,
                        log_limit=log_limit, pidfile=pidfile, events_buffer=events_buffer,
                        socket_group=None if socket_group is None else group_id(socket_group), curve=curve,
                        settings=settings, metrics_address=metrics_address, shim_cgroup=shim_cgroup,
                        pulls=PullSettings(registries_conf, auth_file),
                        cri_address=cri_address, cni_conf_dir=Path(cni_conf_dir).absolute(),
                        cni_bin_dirs=bin_dirs(cni_bin_dir))
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    daemon.run()


cli.add_command(config_commands(start))


def main() -> None:
    cli(prog_name="actord")


if __name__ == "__main__":
    main()
