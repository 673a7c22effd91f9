"""Unfinished transactions: detect an apply or rollback that died, and learn from it.

While a transaction runs, ``<state-dir>/inflight.json`` names it with the pid and the
kernel's boot id. Reading that small file (not the whole journal) is how every command
notices, cheaply, that a run died halfway (kill -9, power loss): the file is still there
but its process is gone or the machine has rebooted since.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

from dsrctl.errors import PrivilegeError, StateError
from state.journal import Transaction, transactions
from state.ownership import Ownership
from state.statedir import StateDir, read_state_file, write_atomic

BOOT_ID = "/proc/sys/kernel/random/boot_id"


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


def process_token(pid: int) -> str:
    """The kernel's start time of ``pid`` (in clock ticks since boot), or "" if unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return ""
    # fields[0] is the state (field 3 of stat); the start time is field 22.
    return fields[19] if len(fields) > 19 else ""


def process_alive(pid: int, token: str = "") -> bool:
    """Is ``pid`` still the process that wrote ``token``? A zombie is not alive."""
    if sys.platform == "win32":  # pragma: no cover - os.kill(pid, 0) would kill it there
        return _windows_process_alive(pid)
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        return True  # cannot tell: assume it runs, never undo a live run's work
    if fields[0] in ("Z", "X"):
        return False
    return not token or (len(fields) > 19 and fields[19] == token)


def _windows_process_alive(pid: int) -> bool:  # pragma: no cover - Windows only
    import ctypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined,unused-ignore]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return False
    code = ctypes.c_ulong()
    kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
    kernel32.CloseHandle(handle)
    return code.value == 259  # STILL_ACTIVE


def current_user() -> str:
    """Who ran the command: the sudo caller if any, for `dsrctl history`."""
    import getpass

    sudo = os.environ.get("SUDO_USER")
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{sudo} (as {user})" if sudo and sudo != user else user


def boot_id() -> str:
    try:
        with open(BOOT_ID, encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return ""


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
    except PrivilegeError:
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


def unfinished(state: StateDir, locked: bool = False) -> Inflight | None:
    """The transaction that died halfway, if any (not one that is still running).

    ``locked``: the caller holds the apply lock. Every run that writes the marker holds
    the lock while it runs, so a marker seen under the lock belongs to a dead run.
    """
    current = read_inflight(state)
    if current is None or (not locked and current.alive()):
        return None
    return current


def unfinished_note(state: StateDir) -> str | None:
    dead = unfinished(state)
    if dead is None:
        return None
    if dead.kind == "rollback":
        return (
            f"an unfinished {dead.describe()} was interrupted; run `dsrctl rollback` again "
            "to finish it"
        )
    return (
        f"an unfinished {dead.describe()} was interrupted; "
        "`dsrctl rollback` restores the state before it, `dsrctl apply` converges from here"
    )


def find_transaction(state: StateDir, txn: str) -> Transaction | None:
    return next((t for t in transactions(state.journal_file) if t.txn == txn), None)


def learn_ownership(ownership: Ownership, txn: Transaction) -> None:
    """Merge what an unfinished apply created or changed into the ownership records.

    Its records were never saved; without this, a VIP it added would look like the
    operator's own and never be removed.
    """
    for step in txn.steps():
        ownership.remember(
            step["resource"], created=step.get("before") is None, original=step.get("before")
        )
