"""Help, global options after the command, and shell completion, through the real CLI
(``python -m dsrctl`` and bash with the script of ``dsrctl completion bash`` sourced)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
EXAMPLE = str(ROOT / "examples" / "dsrctl.toml")
COMMANDS = [
    "plan", "apply", "drift", "show", "validate", "capture", "confirm", "rollback",
    "history", "import", "install-timer", "completion",
]  # fmt: skip


def dsrctl(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    full = {key: value for key, value in os.environ.items() if key != "DSRCTL_STATE_DIR"}
    full.update({"COLUMNS": "80", **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "dsrctl", *args], capture_output=True, text=True, env=full, cwd=cwd
    )


def test_help_lists_every_command_with_a_whole_summary_at_80_columns() -> None:
    result = dsrctl("--help")
    assert result.returncode == 0, result.stderr
    assert "..." not in result.stdout.split("Commands:")[1]
    assert all(len(line) <= 80 for line in result.stdout.splitlines())
    listed = re.findall(r"^  (\S+)  +\S", result.stdout.split("Commands:")[1], re.M)
    assert listed == COMMANDS
    assert "Usage: dsrctl [OPTIONS] COMMAND" in result.stdout


@pytest.mark.parametrize("command", ["", *COMMANDS, "revert-unless-confirmed"])
def test_metavars_are_words(command: str) -> None:
    result = dsrctl(*([command] if command else []), "--help")
    assert result.returncode == 0, result.stderr
    assert not re.search(r"<[a-z ]+>|\{|\}", result.stdout), result.stdout
    assert all(len(line) <= 80 for line in result.stdout.splitlines())
    for option in re.findall(r"^  (--[a-z-]+(?:, -\w)?) ([A-Z]+)", result.stdout, re.M):
        assert option[1] in {"SPEC", "FILE", "DIR", "SECONDS", "ID", "PLATFORM", "NAME", "INTERVAL"}


def test_validate_defaults_to_the_default_spec_like_plan() -> None:
    for command in ("validate", "plan"):
        result = dsrctl(command, "--help")
        assert "[SPEC]" in result.stdout and "default: /etc/dsrctl/dsrctl.toml" in result.stdout
    result = dsrctl("validate")
    assert "Missing argument" not in result.stderr
    if not os.path.exists("/etc/dsrctl/dsrctl.toml"):
        assert result.returncode == 1
        assert result.stderr.startswith("error: /etc/dsrctl/dsrctl.toml")


def test_global_options_after_the_command(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    good = tmp_path / "state"
    good.mkdir()
    refused = f"--state-dir {a_file} is not a directory"
    for args in (
        ["history", "--state-dir", str(a_file)],
        ["history", f"--state-dir={a_file}"],
        ["--state-dir", str(good), "history", "--state-dir", str(a_file)],  # after wins
    ):
        result = dsrctl(*args)
        assert result.returncode == 1 and refused in result.stderr, (args, result.stderr)
    result = dsrctl("--state-dir", str(a_file), "history", "--state-dir", str(good))
    assert result.returncode == 0, result.stderr
    result = dsrctl("history", "--state-dir", str(good), env={"DSRCTL_STATE_DIR": str(a_file)})
    assert result.returncode == 0, result.stderr
    result = dsrctl("history", "--debug", "--state-dir", str(a_file))
    assert "Traceback" in result.stderr and refused in result.stderr
    result = dsrctl("validate", EXAMPLE, "--platform", "windows")
    assert "windows" in (result.stdout + result.stderr).lower()


def test_global_options_never_take_a_value_of_the_command(tmp_path: Path) -> None:
    # --out takes "--debug" as its file name; after "--", --state-dir is the SPEC.
    result = dsrctl("plan", "--from-capture", "--debug", EXAMPLE, cwd=tmp_path)
    assert "Traceback" not in result.stderr
    assert "--debug" in result.stderr
    result = dsrctl("validate", "--", "--state-dir", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("error: --state-dir: spec file not found"), result.stderr
    result = dsrctl("history", "--state-dir")
    assert result.returncode == 1
    assert "requires an argument" in result.stderr


def complete_bash(words: str, cwd: Path = ROOT) -> list[str]:
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    env = {"_DSRCTL_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    result = dsrctl(env=env, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def complete_zsh(words: str) -> str:
    result = dsrctl(env={"_DSRCTL_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": words})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_completion_protocol_bash() -> None:
    assert complete_bash("dsrctl ") == COMMANDS
    assert complete_bash("dsrctl i") == ["import", "install-timer"]
    options = complete_bash("dsrctl plan --")
    assert {"--json", "--out", "--state-dir", "--debug", "--platform"} <= set(options)
    assert complete_bash("dsrctl plan ") == [":spec:"]
    assert complete_bash("dsrctl install-timer --spec ") == [":spec:"]
    assert complete_bash("dsrctl --state-dir ") == [":dir:"]
    assert complete_bash("dsrctl completion ") == ["bash", "zsh"]


def test_completion_protocol_zsh() -> None:
    assert complete_zsh("dsrctl pl").startswith('_arguments \'*: :(("plan":')
    assert '"--detailed-exitcode"' in complete_zsh("dsrctl plan --")
    assert complete_zsh("dsrctl plan ") == "_files -g '*.toml'"
    assert complete_zsh("dsrctl validate ") == "_files -g '*.toml'"
    assert complete_zsh("dsrctl show --root ") == "_files -/"
    assert complete_zsh("dsrctl plan --out ") == "_files"


def test_completion_scripts() -> None:
    for shell in ("bash", "zsh"):
        result = dsrctl("completion", shell)
        assert result.returncode == 0, result.stderr
        assert "_DSRCTL_COMPLETE=complete_" + shell in result.stdout
    assert dsrctl("completion", "zsh").stdout.startswith("#compdef dsrctl\n")
    result = dsrctl("completion", "fish")
    assert result.returncode == 1
    assert result.stderr == "error: completion fish: dsrctl completes in bash or zsh\n"


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash runs the completion script")
def test_bash_completes_with_the_script(tmp_path: Path) -> None:
    """bash itself, with the script sourced, fills COMPREPLY for commands, options and
    spec files (*.toml and directories, not other files)."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "web.toml").write_text("")
    (work / "notes.txt").write_text("")
    (work / "specs").mkdir()
    script = tmp_path / "dsrctl.bash"
    script.write_text(dsrctl("completion", "bash").stdout)
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "dsrctl").write_text(f'#!/bin/sh\nexec {sys.executable} -m dsrctl "$@"\n')
    (shim / "dsrctl").chmod(0o755)

    def complete(*words: str) -> list[str]:
        program = (
            f"source {script}\n"
            f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
            "_dsrctl_completion dsrctl\n"
            "printf '%s\\n' \"${COMPREPLY[@]}\"\n"
        )
        env = {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
        result = subprocess.run(
            ["bash", "--norc", "--noprofile", "-c", program],
            capture_output=True, text=True, cwd=work, env=env,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return sorted(result.stdout.split())

    assert complete("dsrctl", "") == sorted(COMMANDS)
    assert complete("dsrctl", "dr") == ["drift"]
    assert "--auto-approve" in complete("dsrctl", "apply", "--")
    assert complete("dsrctl", "plan", "") == ["specs", "web.toml"]
    assert complete("dsrctl", "--state-dir", "") == ["specs"]
