"""The typer app every command module registers on: its global options and the one place
where errors become a line on stderr and an exit code.

``dsrctl.cli`` (the entry point) and ``dsrctl.cli_window`` both import this module and
never each other's internals, so the command modules stay free of import cycles.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Annotated, Any, TypeVar

import typer
from typer.main import get_command_name
from typer.models import CommandInfo

from dsrctl import DEFAULT_SPEC_PATH, __version__
from dsrctl.cli_shell import GlobalOptionsGroup
from dsrctl.errors import DsrctlError, ProviderError, StateError
from state.statedir import DEFAULT_STATE_DIR

DEFAULT_SPEC = DEFAULT_SPEC_PATH

app = typer.Typer(
    name="dsrctl",
    cls=GlobalOptionsGroup,
    help="Declarative setup of Direct Server Return real servers: VIPs on loopback, "
    "ARP sysctls, persistence.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class Options:
    def __init__(self, state_dir: str, debug: bool, platform: str | None) -> None:
        self.state_dir = state_dir
        self.debug = debug
        self.platform = platform


T = TypeVar("T")
SpecArg = Annotated[str, typer.Argument(metavar="SPEC", help="The spec file.", show_default=True)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dsrctl {__version__}")
        raise typer.Exit(0)


@app.callback()
def main_options(
    ctx: typer.Context,
    state_dir: Annotated[
        str,
        typer.Option(
            "--state-dir",
            envvar="DSRCTL_STATE_DIR",
            metavar="DIR",
            help="Ownership records, journal, lock.",
        ),
    ] = DEFAULT_STATE_DIR,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    platform: Annotated[
        str | None,
        typer.Option(
            "--platform", metavar="PLATFORM", help="Override platform detection: linux or windows."
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    ctx.obj = Options(state_dir, debug, platform)


# Global options whose value is the next word of the command line.
_VALUED_OPTIONS = ("--state-dir", "--platform")


@contextlib.contextmanager
def only_the_command_given(argv: Sequence[str]) -> Iterator[None]:
    """While inside, only the command the command line names is registered. typer builds
    the click command of every registered command on every run (the parameters of each,
    from its function's annotations, evaluated again each time): about 10 ms of plan and
    drift, run from cron on every server (measured: benchmarks/README.md). No command word
    (``dsrctl``, ``dsrctl --help``), an unknown one (click then lists the commands) or
    --help before it: every command stays."""
    registered = list(app.registered_commands)
    words = iter(argv)
    for word in words:
        if word in ("--help", "-h", "--"):
            break
        if word in _VALUED_OPTIONS:
            next(words, None)
        elif not word.startswith("-"):
            named = [info for info in registered if _command_name(info) == word]
            if named:
                app.registered_commands[:] = named
            break
    try:
        yield
    finally:
        app.registered_commands[:] = registered


def _command_name(info: CommandInfo) -> str | None:
    if info.name:
        return info.name
    return get_command_name(info.callback.__name__) if info.callback is not None else None


def root_options(ctx: typer.Context) -> Options:
    """The global options (--state-dir, --debug, --platform) of this command line."""
    obj = ctx.find_root().obj
    assert isinstance(obj, Options)
    return obj


def run_command(ctx: typer.Context, body: Callable[[], T]) -> T:
    """Run a command body; turn every dsrctl error into one line on stderr and exit 1."""
    options = root_options(ctx)
    try:
        return body()
    except (DsrctlError, ProviderError, StateError) as exc:  # dsrctl.errors.REPORTED
        if options.debug:
            traceback.print_exc()
        typer.echo(f"error: {_in_own_words(exc, ctx, options)}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("error: interrupted", err=True)
        raise typer.Exit(130) from None
    except BrokenPipeError:
        # `dsrctl plan | head`: the reader went away; say nothing more, like other tools.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(141) from None
    except OSError as exc:
        if options.debug:
            traceback.print_exc()
        typer.echo(f"error: {_os_error(exc, ctx, options)}", err=True)
        raise typer.Exit(1) from None
    except (typer.Exit, typer.Abort, typer.TyperException):
        raise  # typer's own control flow (a prompt's EOF, a usage error): it reports them
    except Exception as exc:
        # A bug, not a user error: still one line (the traceback with --debug), and no
        # claim about the host, which the apply path reports itself when it changed it.
        if options.debug:
            traceback.print_exc()
        typer.echo(
            f"error: internal error: {type(exc).__name__}: {one_line(str(exc))[:200]} "
            "(run with --debug for the traceback, and please report it)",
            err=True,
        )
        raise typer.Exit(1) from None


def one_line(text: str) -> str:
    return " ".join(text.split())


def _command(ctx: typer.Context) -> str:
    return f"dsrctl {ctx.info_name}" if ctx.info_name and ctx.parent is not None else "dsrctl"


def _in_own_words(exc: Exception, ctx: typer.Context, options: Options) -> str:
    """A state file the user may not read, said with the command the operator ran and what
    to do: state/ knows neither (``StatePermissionError.path`` names the file)."""
    from state.errors import StatePermissionError
    from state.statedir import state_file_name

    if isinstance(exc, StatePermissionError) and exc.path is not None:
        what = state_file_name(exc.path)
        return (
            f"cannot {exc.action} {what} {exc.path}: permission denied; run {_command(ctx)} "
            f"as root, or give --state-dir a directory of your own (now {options.state_dir})"
        )
    return str(exc)


def _os_error(exc: OSError, ctx: typer.Context, options: Options) -> str:
    """An OSError no layer turned into a message: the file, the reason in words, and the
    option to check when the file is in the state directory."""
    reason = one_line(exc.strerror or str(exc)).lower()
    if not exc.filename:
        return f"{_command(ctx)}: {reason}"
    name = str(exc.filename)
    state_dir = os.path.abspath(options.state_dir)
    if os.path.abspath(name).startswith(state_dir + os.sep):
        return (
            f"cannot use --state-dir {options.state_dir} ({name}: {reason}); give --state-dir "
            f"a directory dsrctl can use (default {DEFAULT_STATE_DIR})"
        )
    return f"cannot use {name}: {reason}"


def ask_yes(question: str, verb: str, auto_approve: bool) -> bool:
    """Terraform's habit: only "yes" proceeds; unattended runs need --auto-approve."""
    if auto_approve:
        return True
    from dsrctl.errors import AbortedAtPrompt, AbortedByUser

    if not sys.stdin.isatty():
        raise AbortedByUser(
            f"refusing to {verb} unattended without --auto-approve; nothing was changed"
        )
    try:  # the prompt too: Ctrl-C right after it is shown is still "at the prompt"
        typer.echo(f"\n{question} Only 'yes' is accepted: ", nl=False)
        answer = input()
    except KeyboardInterrupt:
        typer.echo()
        raise AbortedAtPrompt("aborted at the prompt (Ctrl-C); nothing was changed") from None
    except EOFError:
        typer.echo()
        raise AbortedAtPrompt(
            "no answer at the prompt (end of input); nothing was changed", 1
        ) from None
    return answer.strip() == "yes"


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
