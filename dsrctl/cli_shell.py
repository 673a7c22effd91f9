"""Where the command line meets the shell: the global options are accepted after the
command too, and bash and zsh complete commands, options and spec files.

Global options after the command (``dsrctl plan --state-dir /srv/dsrctl x.toml``): every
command gets a copy of ``--state-dir``, ``--debug`` and ``--platform`` that overrides what
was given before the command. click parses them like the command's own options, so a
value that belongs to another option (``--out --debug``) or a word after ``--`` is never
taken for one of them.

Completion uses click's protocol as typer implements it: the shell script runs dsrctl with
``_DSRCTL_COMPLETE=complete_bash`` (or ``complete_zsh``) and the words typed so far, and
dsrctl prints the candidates. For an argument or option whose metavar is SPEC it prints a
request for the shell's own file completion instead (``*.toml`` files and directories),
and for DIR directories only; for any other value without candidates (FILE) the shell
completes file names.
"""

from __future__ import annotations

import os
from typing import Any

from typer._click import types
from typer._click.core import Context, Parameter
from typer._click.shell_completion import (
    _resolve_context,
    _resolve_incomplete,
    add_completion_class,
)
from typer._completion_classes import BashComplete, ZshComplete
from typer.core import TyperArgument, TyperGroup, TyperOption

PROG = "dsrctl"
COMPLETE_VAR = "_DSRCTL_COMPLETE"
SHELLS = ("bash", "zsh")
# What the bash script reads as "complete file names yourself" (never a real candidate:
# no command, option or value of dsrctl starts with a colon).
BASH_SPEC, BASH_DIR = ":spec:", ":dir:"

# -o default: when dsrctl has no candidate (a FILE), bash completes file names.
BASH_SCRIPT = r"""# bash completion for dsrctl: source this file, or save it as
# /etc/bash_completion.d/dsrctl (printed by `dsrctl completion bash`).
%(complete_func)s() {
    local IFS=$'\n'
    local cur="${COMP_WORDS[COMP_CWORD]}"
    COMPREPLY=( $(env COMP_WORDS="${COMP_WORDS[*]}" COMP_CWORD=$COMP_CWORD \
                  %(autocomplete_var)s=complete_bash "$1" 2>/dev/null) )
    if [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == ":spec:" ]]; then
        compopt -o filenames 2>/dev/null
        COMPREPLY=( $(compgen -d -- "$cur") $(compgen -f -X '!*.toml' -- "$cur") )
    elif [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == ":dir:" ]]; then
        compopt -o filenames 2>/dev/null
        COMPREPLY=( $(compgen -d -- "$cur") )
    fi
    return 0
}
complete -o default -F %(complete_func)s %(prog_name)s
"""

ZSH_SCRIPT = r"""#compdef %(prog_name)s
# zsh completion for dsrctl: save as _dsrctl in a directory of $fpath (printed by
# `dsrctl completion zsh`), or source it after compinit.
%(complete_func)s() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" \
    %(autocomplete_var)s=complete_zsh %(prog_name)s 2>/dev/null)
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  %(complete_func)s "$@"
else
  compdef %(complete_func)s %(prog_name)s
fi
"""


def _value_kind(completer: Any, args: list[str], incomplete: str) -> tuple[str | None, str]:
    """("spec" | "dir" | None, incomplete) for the value being completed."""
    ctx = _resolve_context(completer.cli, completer.ctx_args, completer.prog_name, args)
    obj, incomplete = _resolve_incomplete(ctx, args, incomplete)
    if isinstance(obj, Parameter) and not (isinstance(obj, TyperOption) and obj.is_flag):
        metavar = obj.metavar or ""
        if metavar == "SPEC":
            return "spec", incomplete
        if metavar == "DIR":
            return "dir", incomplete
    return None, incomplete


class DsrctlBash(BashComplete):
    source_template = BASH_SCRIPT

    def source(self) -> str:
        return self.source_template % self.source_vars()

    def complete(self) -> str:
        args, incomplete = self.get_completion_args()
        kind, _ = _value_kind(self, args, incomplete)
        if kind == "spec":
            return BASH_SPEC
        if kind == "dir":
            return BASH_DIR
        return super().complete()


class DsrctlZsh(ZshComplete):
    source_template = ZSH_SCRIPT

    def complete(self) -> str:
        args, incomplete = self.get_completion_args()
        kind, _ = _value_kind(self, args, incomplete)
        if kind == "spec":
            return "_files -g '*.toml'"
        if kind == "dir":
            return "_files -/"
        return super().complete()


def register_completion() -> None:
    """Make dsrctl's bash and zsh completers the ones click's protocol uses."""
    add_completion_class(DsrctlBash, "bash")
    add_completion_class(DsrctlZsh, "zsh")


def completion_requested() -> bool:
    return bool(os.environ.get(COMPLETE_VAR))


def script(shell: str) -> str:
    """The completion script for ``shell`` (bash or zsh)."""
    template = {"bash": BASH_SCRIPT, "zsh": ZSH_SCRIPT}[shell]
    return template % {
        "complete_func": f"_{PROG}_completion",
        "autocomplete_var": COMPLETE_VAR,
        "prog_name": PROG,
    }


def complete_shell(incomplete: str) -> list[str]:
    return [shell for shell in SHELLS if shell.startswith(incomplete)]


def _override(attribute: str) -> Any:
    def callback(ctx: Context, param: Parameter, value: Any) -> Any:
        root = ctx.find_root().obj
        if value is None or value is False or ctx.resilient_parsing or root is None:
            return value
        setattr(root, attribute, value)
        return value

    return callback


def global_options() -> list[Parameter]:
    """The copies of the global options a command accepts after its name."""
    return [
        TyperOption(
            param_decls=["--state-dir"],
            type=types.STRING,
            metavar="DIR",
            default=None,
            expose_value=False,
            callback=_override("state_dir"),
            help="The state directory (as before the command).",
        ),
        TyperOption(
            param_decls=["--debug"],
            type=types.BOOL,
            is_flag=True,
            default=False,
            expose_value=False,
            callback=_override("debug"),
            help="Show tracebacks on errors (as before the command).",
        ),
        TyperOption(
            param_decls=["--platform"],
            type=types.STRING,
            metavar="PLATFORM",
            default=None,
            expose_value=False,
            callback=_override("platform"),
            help="linux or windows (as before the command).",
        ),
    ]


class WordArgument(TyperArgument):
    """A required argument shown as its word (``ID``), not typer's ``{ID}``."""

    def make_metavar(self, ctx: Context, *, usage: bool = False) -> str:
        if self.metavar is not None and self.required:
            return self.metavar
        return super().make_metavar(ctx, usage=usage)


class GlobalOptionsGroup(TyperGroup):
    """The dsrctl group: each command also accepts the global options, and its required
    arguments show as words in the usage line."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for command in self.commands.values():
            for param in command.params:
                if type(param) is TyperArgument:
                    param.__class__ = WordArgument  # same state, another usage line
            taken = {opt for param in command.params for opt in param.opts}
            command.params.extend(
                option for option in global_options() if not taken & set(option.opts)
            )
