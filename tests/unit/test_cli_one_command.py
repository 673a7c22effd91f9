"""plan and drift build only their own command: typer would build every command's
parameters on every run (dsrctl.cli_app.only_the_command_given). The help, the usage
errors and the suggestions for a mistyped command are those of the whole app."""

from __future__ import annotations

import subprocess
import sys

import pytest

import dsrctl.cli  # noqa: F401  (registers every command on the app)
from dsrctl.cli_app import _command_name, app, only_the_command_given

EVERY = [_command_name(info) for info in app.registered_commands]


def registered_inside(argv: list[str]) -> list[str | None]:
    with only_the_command_given(argv):
        inside = [_command_name(info) for info in app.registered_commands]
    assert [_command_name(info) for info in app.registered_commands] == EVERY  # restored
    return inside


def test_the_app_has_the_commands_this_test_names() -> None:
    assert {"plan", "drift", "import", "install-timer", "revert-unless-confirmed"} <= set(EVERY)


@pytest.mark.parametrize(
    ("argv", "built"),
    [
        (["drift", "/etc/dsrctl/dsrctl.toml"], ["drift"]),
        (["--state-dir", "plan", "drift", "spec.toml"], ["drift"]),  # an option's value
        (["--platform", "linux", "--debug", "plan", "--json"], ["plan"]),
        (["--state-dir=/x", "install-timer", "--help"], ["install-timer"]),
        (["revert-unless-confirmed", "txn"], ["revert-unless-confirmed"]),
    ],
)
def test_only_the_command_given_is_built(argv: list[str], built: list[str]) -> None:
    assert registered_inside(argv) == built


@pytest.mark.parametrize(
    "argv", [[], ["--help"], ["--help", "drift"], ["drif", "x"], ["--", "drift"], ["--version"]]
)
def test_without_a_known_command_every_command_stays(argv: list[str]) -> None:
    assert registered_inside(argv) == EVERY


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dsrctl", *args], capture_output=True, text=True, check=False
    )


def test_the_help_lists_every_command_and_a_typo_gets_a_suggestion() -> None:
    listed = run_cli("--help")
    assert listed.returncode == 0
    for name in ("plan", "drift", "rollback", "install-timer", "completion"):
        assert f"\n  {name} " in listed.stdout
    typo = run_cli("drif", "x")
    assert typo.returncode == 1
    assert "No such command 'drif'. Did you mean 'drift'?" in typo.stderr
    own = run_cli("--state-dir", "/nonexistent", "drift", "--help")
    assert own.returncode == 0 and own.stdout.startswith("Usage: dsrctl drift [OPTIONS] [SPEC]")
