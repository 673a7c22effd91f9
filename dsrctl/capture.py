"""`dsrctl capture` and `dsrctl plan --from-capture`: review a Windows change away from it.

On the server, `capture` runs every read a plan of the spec needs (nothing else; it
changes nothing, takes no lock) and saves each command with its raw output, plus the
ownership records, to a JSON file. Anywhere else, `plan --from-capture FILE SPEC`
answers the same reads from the file, so people without admin access to the server can
review exactly the plan the server would get. A spec that needs a read the capture lacks
(a new uplink, a new firewall rule name) is refused with the missing command named.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

from dsrctl.engine import Context
from dsrctl.errors import DsrctlError, PrivilegeError, StateError
from dsrctl.planning import PlanResult
from dsrctl.spec import load_spec
from state.ownership import Ownership
from state.statedir import StateDir, write_atomic

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
    provider.check_spec(spec)
    state = StateDir(state_dir)
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
        write_atomic(output, json.dumps(data, indent=1).encode() + b"\n", 0o644)
    except OSError as exc:
        raise DsrctlError(f"cannot write the capture to {output}: {exc.strerror}") from None
    return len(recorder.results), result


def open_capture(path: str, spec_path: str, state_dir: str) -> Context:
    """A planning context whose host is the capture in ``path`` (read-only by nature)."""
    from providers.windows.host import WindowsHost
    from providers.windows.runner import CommandResult, ReplayRunner

    data = _load(path)
    try:
        results = [
            CommandResult(tuple(str(w) for w in e["argv"]), int(e["returncode"]), str(e["output"]))
            for e in data["commands"]
        ]
        runner = ReplayRunner(results, dict(data["programs"]), str(data["encoding"]), path)
        ownership = Ownership.from_json(data["ownership"], path)
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(f"{path} is not a usable dsrctl capture: {exc}") from None
    spec = load_spec(spec_path)
    provider = WindowsHost(runner)
    provider.check_spec(spec)
    note = f"planned from the capture {path} (host {data.get('host')}, {data.get('captured')})"
    return Context(spec, provider, StateDir(state_dir), ownership, [note, *data.get("notes", [])])


def _load(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise DsrctlError(f"capture file {path} not found") from None
    except (OSError, ValueError) as exc:
        raise DsrctlError(f"cannot read the capture {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != CAPTURE_FORMAT:
        raise DsrctlError(f"{path} is not a dsrctl capture (made by `dsrctl capture`)")
    if data.get("format_version") != CAPTURE_VERSION:
        raise DsrctlError(
            f"{path} is capture format {data.get('format_version')!r}; this dsrctl reads "
            f"format {CAPTURE_VERSION}"
        )
    return data
