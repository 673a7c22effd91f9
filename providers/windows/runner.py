"""Run netsh and devcon, never through a shell; record or replay what they printed.

``ProcessRunner`` finds the program on PATH (or takes the absolute path it is given) and
runs it directly. On Windows it hands CreateProcess the command line exactly as an
operator would type it in cmd.exe (``netsh interface ipv4 set interface interface="LO"
weakhostsend=enabled``) without cmd.exe itself, so no shell ever interprets a name; on
other systems (stand-in executables in the tests) it passes the same words as argv.
Output is decoded from the OEM code page on Windows, where console programs print in it.

``RecordingRunner`` keeps every command and its raw (decoded, unparsed) output for
``dsrctl capture``; ``ReplayRunner`` answers from such a capture, so that a plan can be
rendered on a machine that has no access to the server.
"""

from __future__ import annotations

import locale
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from providers.errors import HostError

TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    output: str  # stdout, then stderr; decoded, line ends as printed

    @property
    def command(self) -> str:
        return " ".join(self.argv)

    def to_json(self) -> dict[str, Any]:
        return {"argv": list(self.argv), "returncode": self.returncode, "output": self.output}


class Runner(Protocol):
    encoding: str

    def run(self, argv: Sequence[str]) -> CommandResult: ...

    def find(self, program: str) -> str | None: ...


def default_encoding() -> str:
    if sys.platform.startswith("win"):
        return "oem"  # the console code page netsh prints in (cp437, cp850, ...)
    return locale.getpreferredencoding(False)


def oem_code_page() -> str:
    """The name of the OEM code page, recorded in captures (the 'oem' codec is Windows-only)."""
    if sys.platform.startswith("win"):
        import ctypes

        return f"cp{ctypes.windll.kernel32.GetOEMCP()}"  # type: ignore[attr-defined]
    return default_encoding()


class ProcessRunner:
    def __init__(self, encoding: str | None = None, timeout: float = TIMEOUT_SECONDS) -> None:
        self.encoding = encoding or default_encoding()
        self.timeout = timeout

    def find(self, program: str) -> str | None:
        if os.path.isabs(program) or os.sep in program or (os.altsep and os.altsep in program):
            return program if os.path.isfile(program) and os.access(program, os.X_OK) else None
        return shutil.which(program)

    def run(self, argv: Sequence[str]) -> CommandResult:
        words = tuple(argv)
        executable = self.find(words[0])
        if executable is None:
            raise HostError(f"{words[0]} not found (looked on PATH); is this a Windows host?")
        if executable.lower().endswith((".bat", ".cmd")):
            # Windows runs batch files through cmd.exe, which would interpret the names.
            raise HostError(f"refusing to run {executable}: batch files run through cmd.exe")
        args: str | list[str]
        if sys.platform.startswith("win"):
            args = subprocess.list2cmdline([executable]) + "".join(" " + w for w in words[1:])
        else:
            args = [executable, *words[1:]]
        try:
            done = subprocess.run(
                args, capture_output=True, stdin=subprocess.DEVNULL, timeout=self.timeout
            )
        except subprocess.TimeoutExpired:
            raise HostError(f"`{' '.join(words)}` did not finish in {self.timeout:.0f} s") from None
        except OSError as exc:
            raise HostError(f"cannot run `{' '.join(words)}`: {exc.strerror or exc}") from None
        output = done.stdout.decode(self.encoding, "replace")
        if done.stderr:
            output += done.stderr.decode(self.encoding, "replace")
        return CommandResult(words, done.returncode, output)


class RecordingRunner:
    """Runs commands through another runner and keeps what they printed."""

    def __init__(self, inner: Runner) -> None:
        self.inner = inner
        self.encoding = inner.encoding
        self.results: list[CommandResult] = []
        self.found: dict[str, str | None] = {}

    def run(self, argv: Sequence[str]) -> CommandResult:
        result = self.inner.run(argv)
        if all(result.argv != seen.argv for seen in self.results):
            self.results.append(result)
        return result

    def find(self, program: str) -> str | None:
        self.found[program] = self.inner.find(program)
        return self.found[program]


class ReplayRunner:
    """Answers from a capture: the exact command must have been captured."""

    def __init__(
        self,
        results: Sequence[CommandResult],
        found: dict[str, str | None],
        encoding: str,
        source: str,
    ) -> None:
        self.results = {result.argv: result for result in results}
        self.found = dict(found)
        self.encoding = encoding
        self.source = source

    def run(self, argv: Sequence[str]) -> CommandResult:
        result = self.results.get(tuple(argv))
        if result is None:
            raise HostError(
                f"the capture {self.source} has no output for `{' '.join(argv)}`: it was taken "
                "with another spec; capture again on the server with this spec"
            )
        return result

    def find(self, program: str) -> str | None:
        if program not in self.found:
            raise HostError(
                f"the capture {self.source} does not say whether {program} exists on the "
                "server; capture again with this spec"
            )
        return self.found[program]
