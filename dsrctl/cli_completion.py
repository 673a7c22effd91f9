"""``dsrctl completion bash|zsh``: print the shell completion script (dsrctl.cli_shell)."""

from __future__ import annotations

from typing import Annotated

import typer

from dsrctl.cli_app import app, run_command
from dsrctl.cli_shell import SHELLS, complete_shell, script


@app.command(short_help="Print the bash or zsh completion script.")
def completion(
    ctx: typer.Context,
    shell: Annotated[
        str,
        typer.Argument(metavar="SHELL", help="bash or zsh.", autocompletion=complete_shell),
    ],
) -> None:
    """Print the completion script for SHELL (bash or zsh) on stdout.

    bash: dsrctl completion bash > /etc/bash_completion.d/dsrctl (or source it from
    ~/.bashrc). zsh: dsrctl completion zsh > DIR/_dsrctl, DIR being a directory of $fpath,
    then start a new shell.
    """

    def body() -> int:
        from dsrctl.errors import DsrctlError

        if shell not in SHELLS:
            raise DsrctlError(f"completion {shell}: dsrctl completes in bash or zsh")
        typer.echo(script(shell), nl=False)
        return 0

    raise typer.Exit(run_command(ctx, body))
