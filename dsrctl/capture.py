"""`dsrctl capture` and `dsrctl plan --from-capture`: review a Windows change away from it.

On the server, `capture` runs every read a plan of the spec needs (nothing else; it
changes nothing, takes no lock) and saves each command with its raw output, plus the
ownership records, to a JSON file. Anywhere else, `plan --from-capture FILE SPEC`
answers the same reads from the file, so people without admin access to the server can
review exactly the plan the server would get. A spec that needs a read the capture lacks
(a new uplink, a new firewall rule name) is refused with the missing command named.
"""

from __future__ import annotations

import codecs
import json
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

from dsrctl.engine import Context
from dsrctl.errors import MISSING, DsrctlError, PrivilegeError, SpecError
from dsrctl.planning import PlanResult
from dsrctl.platforms import check_spec
from dsrctl.savedplan import Fields, json_type, read_regular, strict_json
from dsrctl.spec import load_spec
from providers import safefile
from state.ownership import Ownership
from state.statedir import StateDir

CAPTURE_FORMAT = "dsrctl-capture"
CAPTURE_VERSION = 1


def capture(spec_path: str, state_dir: str, output: str) -> tuple[int, PlanResult]:
    """Record every read of a plan of ``spec_path`` into ``output``; return the count."""
    from dsrctl.engine import make_plan
    from providers.windows.host import WindowsHost
    from providers.windows.runner import ProcessRunner, RecordingRunner, oem_code_page

    spec = load_spec(spec_path)
    recorder = RecordingRunner(ProcessRunner())
    provider = WindowsHost(recorder)
    check_spec(spec, provider)
    state = StateDir(state_dir, safefile)
    notes: list[str] = []
    try:
        ownership = Ownership.load(state.ownership_file)
    except PrivilegeError as exc:
        ownership = Ownership()
        notes.append(f"{exc}: the capture holds no ownership records")
    result = make_plan(Context(spec, provider, state, ownership, notes))
    data: dict[str, Any] = {
        "format": CAPTURE_FORMAT,
        "format_version": CAPTURE_VERSION,
        "platform": "windows",
        "host": socket.gethostname(),
        "captured": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "spec": os.path.abspath(spec_path),
        "spec_sha256": spec.digest,
        "encoding": oem_code_page(),
        "programs": recorder.found,
        "ownership": ownership.to_json(),
        "notes": notes,
        "commands": [entry.to_json() for entry in recorder.results],
    }
    try:
        safefile.write_atomic(output, json.dumps(data, indent=1).encode() + b"\n", 0o644)
    except OSError as exc:
        raise DsrctlError(f"cannot write the capture to {output}: {exc.strerror}") from None
    return len(recorder.results), result


def open_capture(path: str, spec_path: str, state_dir: str) -> Context:
    """A planning context whose host is the capture in ``path`` (read-only by nature)."""
    from providers.windows.host import WindowsHost
    from providers.windows.runner import CommandResult, ReplayRunner

    data = _load(path)
    results = [CommandResult(tuple(argv), code, output) for argv, code, output in data.commands]
    runner = ReplayRunner(results, data.programs, data.encoding, path)
    ownership = Ownership.from_json(data.ownership, path)
    spec = load_spec(spec_path)
    provider = WindowsHost(runner)
    check_spec(spec, provider)
    note = f"planned from the capture {path} (host {data.host}, {data.captured})"
    return Context(spec, provider, StateDir(state_dir, safefile), ownership, [note, *data.notes])


# A capture holds a few dozen command outputs; anything this big was not made by dsrctl.
MAX_CAPTURE_BYTES = 64 * 1024 * 1024
_HINT = "capture again on the server with `dsrctl capture`"
_KEYS = frozenset(
    {"format", "format_version", "platform", "host", "captured", "spec", "spec_sha256"}
    | {"encoding", "programs", "ownership", "notes", "commands"}
)


@dataclass(frozen=True)
class CaptureFile:
    host: str
    captured: str
    encoding: str
    programs: dict[str, str | None]
    ownership: dict[str, Any]
    notes: list[str]
    commands: list[tuple[list[str], int, str]]


class CaptureError(SpecError):
    """A capture file is damaged, edited or not one this dsrctl wrote: capture again on the
    server. Names the file, the key and what is wrong with it."""


def _load(path: str) -> CaptureFile:
    """Read and check the capture strictly: every key, with the type `capture` wrote."""
    try:
        raw = read_regular(path, MAX_CAPTURE_BYTES)
    except FileNotFoundError:
        raise DsrctlError(f"capture file {path} not found") from None
    except OSError as exc:
        raise DsrctlError(f"cannot read the capture {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise DsrctlError(f"cannot read the capture {path}: {exc}") from None
    if len(raw) > MAX_CAPTURE_BYTES:
        raise CaptureError(path, "", MISSING, f"larger than {MAX_CAPTURE_BYTES} bytes")
    try:
        data = strict_json(raw)
    except ValueError as exc:
        raise CaptureError(path, "", MISSING, f"not a usable dsrctl capture: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != CAPTURE_FORMAT:
        raise DsrctlError(f"{path} is not a dsrctl capture (made by `dsrctl capture`)")
    f = Fields(path, CaptureError, _HINT)
    version = f.get(data, "", "format_version", int)
    if version != CAPTURE_VERSION:
        raise DsrctlError(
            f"{path} is capture format {version!r}; this dsrctl reads format {CAPTURE_VERSION}"
        )
    f.only(data, "", _KEYS)
    if f.get(data, "", "platform", str) != "windows":
        raise f.fail("platform", data["platform"], "captures are of Windows hosts")
    for key in ("host", "captured", "spec", "spec_sha256"):
        f.get(data, "", key, str)
    encoding = f.get(data, "", "encoding", str)
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise f.fail("encoding", encoding, "unknown text encoding") from None
    programs = f.get(data, "", "programs", dict)
    for program, found in programs.items():
        f.get(programs, "programs.", program, str, type(None))
        if isinstance(found, str) and "\x00" in found:
            raise f.fail(f"programs.{program}", found, "must be a path")
    commands = []
    for index, entry in enumerate(f.get(data, "", "commands", list)):
        where = f"commands[{index}]"
        if not isinstance(entry, dict):
            raise f.fail(where, entry, f"must be a table, not {json_type(entry)}")
        f.only(entry, f"{where}.", frozenset({"argv", "returncode", "output"}))
        argv = f.strings(entry, f"{where}.", "argv")
        if not argv:
            raise f.fail(f"{where}.argv", argv, "must name a command")
        code = f.get(entry, f"{where}.", "returncode", int)
        commands.append((argv, code, f.get(entry, f"{where}.", "output", str)))
    ownership = _ownership(f, f.get(data, "", "ownership", dict))
    return CaptureFile(
        host=data["host"],
        captured=data["captured"],
        encoding=encoding,
        programs=programs,
        ownership=ownership,
        notes=f.strings(data, "", "notes"),
        commands=commands,
    )


def _ownership(f: Fields, data: dict[str, Any]) -> dict[str, Any]:
    """The ownership records as saved in the state directory (state.ownership's format):
    checked here too, so that a capture's records are as strict as the file's."""
    f.get(data, "ownership.", "version", int)
    resources = f.get(data, "ownership.", "resources", dict)
    for resource, record in resources.items():
        where = f"ownership.resources.{resource}"
        if not isinstance(record, dict):
            raise f.fail(where, record, f"must be a table, not {json_type(record)}")
        f.get(record, f"{where}.", "created", bool)
        if "since" in record:
            f.get(record, f"{where}.", "since", str)
    return data
