"""actord's config file: TOML whose keys are the flags of `actord start`.

The keys are derived from the command's click options, never listed by hand: `--state-dir`
is `state_dir`, a flag such as `--debug` a boolean, so an option added to `start` has its key
at once. A value is checked by the option's own click type (and callback), so the file
refuses exactly what the flag refuses; errors name the file and the key, and all of them are
reported at once. Flags given on the command line win over the file, the file over the
built-in defaults.

Its settings choose what actord runs as root (`runtime`, for one), so a file that anyone but
root (or the user running actord) owns or may write is refused, as sshd refuses such a config.

The file is flat: one table of keys, as the flags are one flat list. Tables would only group
what the flags do not group, and make a flag's key harder to guess.
"""

from __future__ import annotations

import datetime
import difflib
import json
import os
import stat
import textwrap
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

__all__ = ["DEFAULT_CONFIG", "SUGGESTED", "ConfigError", "ConfiguredCommand", "config_commands",
           "default_config", "effective_settings", "read_config"]

DEFAULT_CONFIG = Path("/etc/actord/config.toml")
CONFIG_OPTION = "config"
CONFIG_META = "actord.config_file"
"""Where a ConfiguredCommand leaves the path of the file it read (None: none), in `ctx.meta`."""

SUGGESTED: dict[str, Any] = {"metrics_address": "127.0.0.1:9338"}
"""Keys whose value in the printed default config differs from the built-in default: set
there, as a suggestion, though the option is off when neither flag nor file gives it."""


class ConfigError(click.ClickException):
    """A config file that cannot be used: every reason, one line each, naming the file (exits 1)."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


def config_keys(command: click.Command) -> dict[str, click.Option]:
    """The keys a config file for `command` may hold: one per option, but --config itself."""
    return {param.name: param for param in command.params
            if isinstance(param, click.Option) and param.name and param.expose_value and param.name != CONFIG_OPTION}


def _is_boolean(option: click.Option) -> bool:
    return option.is_bool_flag or isinstance(option.type, click.types.BoolParamType)


def _expected(option: click.Option) -> str:
    """What a TOML value for `option` should be, in words."""
    kind = option.type
    if _is_boolean(option):
        single = "a boolean (true or false)"
    elif isinstance(kind, click.types.IntParamType):
        single = "an integer"
    elif isinstance(kind, click.types.FloatParamType):
        single = "a number"
    elif isinstance(kind, click.Choice):
        single = "one of " + ", ".join(repr(choice) for choice in kind.choices)
    else:
        single = "a string"
    return f"an array (each {single})" if _is_list(option) else single


def _is_list(option: click.Option) -> bool:
    return option.multiple or option.nargs != 1


def _kind_of(value: Any) -> str:
    """A TOML value as an error message shows it: scalars as written, the rest by kind."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, datetime.date | datetime.time):
        return "a date or time"
    return _toml_value(value)


def _type_problem(option: click.Option, value: Any) -> str | None:
    """Why a TOML value cannot even be offered to the option's click type, if it cannot: click
    would turn a table or a date into text, `true` into 1 and 2.5 into 2, and a flag's
    boolean is a TOML boolean, not a word for one."""
    if _is_list(option):
        wrong = not isinstance(value, list)
    else:
        wrong = (isinstance(value, dict | list | datetime.date | datetime.time)
                 or _is_boolean(option) != isinstance(value, bool)
                 or (isinstance(value, float) and isinstance(option.type, click.types.IntParamType)))
    return f"expected {_expected(option)}, not {_kind_of(value)}" if wrong else None


def check_settings(command: click.Command, table: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The values of `table` as the options of `command` take them; ConfigError (naming
    `source` and each key) for every key or value they refuse."""
    keys = config_keys(command)
    ctx = click.Context(command, info_name=command.name)
    settings: dict[str, Any] = {}
    problems = []
    for key, value in table.items():
        option = keys.get(key)
        if option is None:
            close = difflib.get_close_matches(key, keys, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{source}: unknown key {key!r}{hint}")
            continue
        problem = _type_problem(option, value)
        if problem is None:
            try:
                settings[key] = option.process_value(ctx, value)
            except click.BadParameter as exc:
                problem = exc.message.rstrip(".")
        if problem is not None:
            problems.append(f"{source}: {key}: {problem}")
    if problems:
        raise ConfigError(problems)
    return settings


NULL_DEVICE = os.makedev(1, 3)
"""/dev/null's device number: read as an empty config (`--config /dev/null`), whoever may write it."""


def trust_problem(path: Path, info: os.stat_result) -> str | None:
    """Why a config file cannot be trusted, if it cannot: its settings choose what actord runs as
    root (`runtime`, `root`, ...), so only root (or the user running actord) may be able to
    change it. `info` is the fstat of the very fd the file is read from: what is checked is
    what is read. The null device reads as nothing and is always trusted."""
    if stat.S_ISCHR(info.st_mode) and info.st_rdev == NULL_DEVICE:
        return None
    if info.st_uid not in (0, os.geteuid()):
        return (f"{path}: owned by uid {info.st_uid}, not by root: whoever owns it chooses what actord runs "
                f"as root; refusing it (chown root {path})")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return (f"{path}: writable by {'others' if info.st_mode & stat.S_IWOTH else 'its group'} "
                f"(mode {stat.S_IMODE(info.st_mode):04o}): whoever can write it chooses what actord runs as "
                f"root; refusing it (chmod go-w {path})")
    return None


def read_config(command: click.Command, path: Path, *, required: bool) -> dict[str, Any] | None:
    """The checked settings of the file at `path`; None when it does not exist and is not
    `required` (the default file: built-in defaults apply). A file others could have written
    is refused (`trust_problem`)."""
    try:
        with open(path, "rb") as file:
            problem = trust_problem(path, os.fstat(file.fileno()))
            if problem is not None:
                raise ConfigError([problem])
            table = tomllib.load(file)
    except FileNotFoundError:
        if required:
            raise ConfigError([f"{path}: no such file"]) from None
        return None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read it: {exc.strerror}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    return check_settings(command, table, str(path))


class ConfiguredCommand(click.Command):
    """A command whose options may also come from a TOML file (--config): a value given on the
    command line wins, then the file's, then the option's default."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.insert(0, click.Option(
            ["--config", CONFIG_OPTION], metavar="FILE", type=click.Path(dir_okay=False, path_type=Path),
            default=DEFAULT_CONFIG, show_default=True,
            help="TOML file of settings, one key per option (--state-dir: state_dir); options given here win. "
                 "The default file may be missing; --config /dev/null reads none. It must be root's and not "
                 "writable by group or others (it chooses what runs as root). See `actord config default`."))

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, args)
        if ctx.resilient_parsing:  # shell completion: nothing is run
            return rest
        path: Path = ctx.params.pop(CONFIG_OPTION)
        required = ctx.get_parameter_source(CONFIG_OPTION) is not ParameterSource.DEFAULT
        settings = read_config(self, path, required=required)
        ctx.meta[CONFIG_META] = None if settings is None else str(path)
        for key, value in (settings or {}).items():
            if ctx.get_parameter_source(key) in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP):
                ctx.params[key] = value
        return rest


def effective_settings(ctx: click.Context) -> dict[str, Any]:
    """What the command runs with, as plain values (for `version`): each option's value and
    `config`, the file read (None: none)."""
    plain = {key: value if value is None or isinstance(value, bool | int | float | str) else str(value)
             for key, value in ctx.params.items()}
    return {**plain, "config": ctx.meta.get(CONFIG_META)}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return json.dumps(str(value))  # a JSON string is a TOML basic string


def _placeholder(option: click.Option) -> str:
    """What to write after a key with no default (commented out): its metavar, quoted if text,
    in an array for an option given many times."""
    metavar = option.metavar or option.type.name.upper()
    numeric = isinstance(option.type, click.types.IntParamType | click.types.FloatParamType)
    single = metavar if numeric else json.dumps(metavar)
    return f"[{single}]" if _is_list(option) else single


def default_config(command: click.Command, suggested: Mapping[str, Any] = SUGGESTED) -> str:
    """A complete, commented config file for `command`: each key with its help and its default
    (or its `suggested` value); a key without a default is commented out."""
    ctx = click.Context(command, info_name=command.name)
    lines = [
        f"# actord's settings: `actord start` reads {DEFAULT_CONFIG} (or --config FILE).",
        "# Each key is an option of `actord start` (--state-dir: state_dir); an option given on",
        "# the command line wins over this file, and this file over the built-in defaults.",
        "# Relative paths are taken from the directory actord is started in.",
    ]
    for key, option in config_keys(command).items():
        lines.append("")
        lines.extend(textwrap.wrap(option.help or "", width=96, initial_indent="# ", subsequent_indent="# "))
        default = option.get_default(ctx)
        unset = default is None or option.value_is_missing(default)
        if key in suggested:
            lines.append(f"# (suggested here; built-in default: {'not set' if unset else _toml_value(default)})")
            lines.append(f"{key} = {_toml_value(suggested[key])}")
        elif unset:
            lines.append(f"# {key} = {_placeholder(option)}")
        else:
            lines.append(f"{key} = {_toml_value(default)}")
    return "\n".join(lines) + "\n"


def config_commands(command: click.Command) -> click.Group:
    """`config default` and `config check` for the config file of `command`."""

    @click.group("config")
    def config() -> None:
        """The config file (TOML) of `actord start`."""

    @config.command("default")
    def print_default() -> None:
        """Print a complete default config, every key with its help as a comment."""
        click.echo(default_config(command), nl=False)

    @config.command("check")
    @click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
    def check(path: Path | None) -> None:
        """Check a config file (default: the file `actord start` reads) and list every problem."""
        if read_config(command, path or DEFAULT_CONFIG, required=path is not None) is None:
            click.echo(f"{DEFAULT_CONFIG}: no such file; the built-in defaults apply")
        else:
            click.echo(f"{path or DEFAULT_CONFIG}: ok")

    return config
