"""The typer app every command module registers on: its global options and the one place
where errors become a line on stderr and an exit code.

``dsrctl.cli`` (the entry point) and ``dsrctl.cli_window`` both import this module and
never each other's internals, so the command modules stay free of import cycles.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from dsrctl import DEFAULT_SPEC_PATH, __version__
from dsrctl.errors import DsrctlError, ProviderError, StateError
from state.statedir import DEFAULT_STATE_DIR

DEFAULT_SPEC = DEFAULT_SPEC_PATH

app = typer.Typer(
    name="dsrctl",
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
SpecArg = Annotated[str, typer.Argument(help="The spec file.", show_default=True)]
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
            "--state-dir", envvar="DSRCTL_STATE_DIR", help="Ownership records, journal, lock."
        ),
    ] = DEFAULT_STATE_DIR,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    platform: Annotated[
        str | None,
        typer.Option("--platform", help="Override platform detection: linux|windows."),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    ctx.obj = Options(state_dir, debug, platform)


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
        typer.echo(f"error: {exc}", err=True)
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
        where = f" ({exc.filename})" if exc.filename else ""
        typer.echo(f"error: {one_line(exc.strerror or str(exc))}{where}", err=True)
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


def ask_yes(question: str, verb: str, auto_approve: bool) -> bool:
    """Terraform's habit: only "yes" proceeds; unattended runs need --auto-approve."""
    if auto_approve:
        return True
    if not sys.stdin.isatty():
        from dsrctl.errors import AbortedByUser

        raise AbortedByUser(
            f"refusing to {verb} unattended without --auto-approve; nothing was changed"
        )
    answer = typer.prompt(f"\n{question} Only 'yes' is accepted", default="", show_default=False)
    return bool(answer.strip() == "yes")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
