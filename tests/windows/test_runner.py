"""The command runner (no shell, code page, capture and replay) and how netsh's verdict is
read from its exit code and its text."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from dsrctl.errors import HostError, PrivilegeError
from providers.windows.host import WindowsHost, failure
from providers.windows.runner import (
    CommandResult,
    ProcessRunner,
    RecordingRunner,
    ReplayRunner,
)


class CannedRunner:
    """Answers every command with one canned result."""

    encoding = "utf-8"

    def __init__(self, returncode: int, output: str) -> None:
        self.returncode = returncode
        self.output = output
        self.calls: list[tuple[str, ...]] = []

    def run(self, argv: Sequence[str]) -> CommandResult:
        self.calls.append(tuple(argv))
        return CommandResult(tuple(argv), self.returncode, self.output)

    def find(self, program: str) -> str | None:
        return None


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\nimport sys\n{body}\n")
    path.chmod(0o755)
    return path


def test_output_is_decoded_from_the_console_code_page(tmp_path: Path) -> None:
    # "Schnittstelle »Ä«" as a cp850 console prints it; the words go as argv, no shell.
    program = script(
        tmp_path, "netsh", "sys.stdout.buffer.write(' '.join(sys.argv[1:]).encode('cp850'))"
    )
    result = ProcessRunner(encoding="cp850").run([str(program), 'name="Ä $HOME; x"', "ok"])
    assert result.output == 'name="Ä $HOME; x" ok'
    assert result.returncode == 0


def test_batch_files_and_missing_programs_are_refused(tmp_path: Path) -> None:
    batch = script(tmp_path, "netsh.cmd", "")
    with pytest.raises(HostError, match=re.escape("batch files run through cmd.exe")):
        ProcessRunner().run([str(batch), "interface"])
    with pytest.raises(HostError, match="not found"):
        ProcessRunner().run([str(tmp_path / "absent"), "interface"])


def test_recording_and_replay() -> None:
    inner = CannedRunner(0, "Ok.\r\n")
    recorder = RecordingRunner(inner)
    recorder.run(["netsh", "a"])
    recorder.run(["netsh", "a"])
    assert recorder.find("devcon") is None
    assert [r.argv for r in recorder.results] == [("netsh", "a")]
    replay = ReplayRunner(recorder.results, recorder.found, "cp437", "cap.json")
    assert replay.run(["netsh", "a"]).output == "Ok.\r\n"
    assert replay.find("devcon") is None
    with pytest.raises(
        HostError, match=re.escape("the capture cap.json has no output for `netsh b`")
    ):
        replay.run(["netsh", "b"])
    with pytest.raises(HostError, match="does not say whether netsh exists"):
        replay.find("netsh")


@pytest.mark.parametrize(
    ("returncode", "output", "error", "text"),
    [
        (
            1,
            "The requested operation requires elevation (Run as administrator).\r\n",
            PrivilegeError,
            "Run dsrctl from an elevated prompt",
        ),
        (
            1,
            "The filename, directory name, or volume label syntax is incorrect.\r\n",
            HostError,
            "netsh does not know that interface",
        ),
        (1, "Element not found.\r\n", HostError, "netsh does not know that interface"),
        (
            1,
            "The syntax supplied for this command is not valid. Check help for the correct "
            "syntax.\r\n\r\nUsage: add address ...",
            HostError,
            "need the hotfix that adds it",
        ),
        (0, "Le paramètre est incorrect.\r\n", HostError, "unexpected output"),
        (5, "", HostError, "exit code 5 and no output"),
    ],
)
def test_failures_name_the_command_and_what_netsh_said(
    returncode: int, output: str, error: type[Exception], text: str
) -> None:
    argv = ("netsh", "interface", "ipv4", "add", "address", 'name="LO"', "skipassource=true")
    exc = failure(CommandResult(argv, returncode, output))
    assert isinstance(exc, error)
    message = str(exc)
    assert message.startswith(f"`{' '.join(argv)}`")
    assert text in message


def test_a_write_succeeds_only_with_exit_0_and_ok() -> None:
    argv = ("netsh", "interface", "ipv4", "set", "interface", 'interface="LO"', "metric=254")
    assert WindowsHost(CannedRunner(0, "Ok.\r\n\r\n")).write(argv).returncode == 0
    assert WindowsHost(CannedRunner(0, "")).write(argv).returncode == 0  # a rename says nothing
    with pytest.raises(HostError, match=re.escape("Element not found.")):
        WindowsHost(CannedRunner(0, "Element not found.\r\n")).write(argv)  # text wins
    with pytest.raises(HostError):
        WindowsHost(CannedRunner(1, "Ok.\r\n")).write(argv)  # and so does the exit code


def test_a_read_with_an_error_text_fails_even_with_exit_0() -> None:
    host = WindowsHost(CannedRunner(0, "The object already exists.\r\n"))
    with pytest.raises(HostError, match=re.escape("The object already exists.")):
        host.query(("netsh", "interface", "show", "interface"))
    rules = WindowsHost(CannedRunner(1, "\r\nNo rules match the specified criteria.\r\n"))
    result = rules.query(("netsh", "advfirewall", "firewall", "show", "rule", 'name="x"'))
    assert result.returncode == 1  # an absent rule is an answer, not a failure


def test_reads_are_memoised_until_a_write() -> None:
    runner = CannedRunner(0, "Ok.\r\n")
    host = WindowsHost(runner)
    read = ("netsh", "interface", "show", "interface")
    host.query(read)
    host.query(read)
    host.write(("netsh", "interface", "ipv4", "set", "interface", 'interface="LO"', "metric=1"))
    host.query(read)
    assert runner.calls.count(read) == 2
