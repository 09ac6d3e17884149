"""`actorctl completion SHELL`: the shell completion script, from click's own support.

The script calls actorctl back (with `_ACTORCTL_COMPLETE` set) for each completion, so it
completes commands and options as they are, and container ids live from the daemon.
"""

from __future__ import annotations

import click

__all__ = ["completion"]

COMPLETE_VAR = "_ACTORCTL_COMPLETE"
"""The variable click's scripts set to ask actorctl for completions (from the program name)."""


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print a completion script for SHELL: commands, options and live container ids.

    \b
    Examples:
      source <(actorctl completion bash)            # in ~/.bashrc
      actorctl completion zsh > "${fpath[1]}/_actorctl"
      actorctl completion fish > ~/.config/fish/completions/actorctl.fish
    """
    from click.shell_completion import get_completion_class

    complete_class = get_completion_class(shell)
    assert complete_class is not None, "click supports the three shells of the choice"
    click.echo(complete_class(ctx.find_root().command, {}, "actorctl", COMPLETE_VAR).source())
