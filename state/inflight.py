"""The in-flight marker: ``<state-dir>/inflight.json`` names the apply or rollback now
running, with its pid, the kernel's start time of that pid and the boot id. Reading this
small file (not the whole journal) is how every command notices, cheaply, that a run
died halfway (kill -9, power loss): the file is still there but its process is gone or
the machine has rebooted since."""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any

from state.errors import StateError, StatePermissionError
from state.process import boot_id, process_alive, process_token
from state.safefile import write_atomic
from state.statedir import StateDir, read_state_file


@dataclass(frozen=True)
class Inflight:
    txn: str
    kind: str
    pid: int
    boot_id: str
    started: float
    command: str
    process: str = ""  # process_token() of the writer: tells a reused pid apart

    def alive(self) -> bool:
        return self.boot_id == boot_id() and process_alive(self.pid, self.process)

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        return f"{self.kind} {self.txn} ('{self.command}', pid {self.pid}, started {when})"


def mark_inflight(state: StateDir, txn: str, kind: str, command: str) -> None:
    record = {
        "txn": txn,
        "kind": kind,
        "pid": os.getpid(),
        "boot_id": boot_id(),
        "started": time.time(),
        "command": command,
        "process": process_token(os.getpid()),
    }
    try:
        write_atomic(state.inflight_file, json.dumps(record).encode() + b"\n", 0o600)
    except OSError as exc:
        raise StateError(f"cannot write {state.inflight_file}: {exc.strerror}") from None


def clear_inflight(state: StateDir, txn: str) -> None:
    current = read_inflight(state)
    if current is not None and current.txn == txn:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(state.inflight_file)


def read_inflight(state: StateDir) -> Inflight | None:
    try:
        data = read_state_file(state.inflight_file)
    except StatePermissionError:
        return None
    if data is None:
        return None
    try:
        record = json.loads(data)
    except (ValueError, RecursionError):
        record = None
    problem = _inflight_problem(record)
    if problem is not None:
        raise StateError(
            f"{state.inflight_file} is corrupt ({problem}): it names a run that died; "
            "check `dsrctl history`, then remove the file"
        )
    return Inflight(
        txn=record["txn"],
        kind=record.get("kind", "apply"),
        pid=record["pid"],
        boot_id=record.get("boot_id", ""),
        started=float(record.get("started", 0)),
        command=record.get("command", ""),
        process=record.get("process", ""),
    )


def _inflight_problem(record: Any) -> str | None:
    if not isinstance(record, dict):
        return "not a JSON object"
    for name, types in _INFLIGHT_FIELDS.items():
        value = record.get(name)
        if value is None and name not in ("txn", "pid"):
            continue
        if isinstance(value, bool) or not isinstance(value, types):
            return f"{name!r} is missing or has the wrong type"
    return None


_INFLIGHT_FIELDS: dict[str, tuple[type, ...]] = {
    "txn": (str,),
    "pid": (int,),
    "kind": (str,),
    "boot_id": (str,),
    "started": (int, float),
    "command": (str,),
    "process": (str,),
}
