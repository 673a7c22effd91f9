"""The pending-confirmation marker: ``<state-dir>/pending-confirm.json`` names an apply
made with --confirm-timeout, its deadline and its watchdog (pid, boot id and the kernel's
start time of that pid, so that a watchdog ended by a reboot or kill is noticed)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import dataclass
from typing import Any

from state.errors import StateError, StatePermissionError
from state.process import boot_id, process_alive
from state.safefile import write_atomic
from state.statedir import StateDir, read_state_file


@dataclass(frozen=True)
class Pending:
    txn: str
    deadline: float
    watchdog_pid: int
    platform: str
    watchdog: str = ""  # boot id and process token: tells a dead or reused pid apart

    def watchdog_alive(self) -> bool:
        boot, _, token = self.watchdog.partition("/")
        return boot == boot_id() and process_alive(self.watchdog_pid, token)

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(self.deadline))
        return f"apply {self.txn} is waiting for `dsrctl confirm` until {when}"


def read_pending(state: StateDir) -> Pending | None:
    try:
        data = read_state_file(state.pending_file)
    except StatePermissionError:
        return None
    if data is None:
        return None
    try:
        record = json.loads(data)
    except (ValueError, RecursionError):
        record = None
    if not _valid_pending(record):
        raise StateError(
            f"{state.pending_file} is corrupt: it should name an apply waiting for "
            "`dsrctl confirm`; check `dsrctl history`, then remove the file"
        )
    return Pending(
        txn=record["txn"],
        deadline=float(record["deadline"]),
        watchdog_pid=record.get("watchdog_pid", 0),
        platform=record.get("platform", "linux"),
        watchdog=record.get("watchdog", ""),
    )


def _valid_pending(record: Any) -> bool:
    def has(name: str, types: tuple[type, ...], required: bool = False) -> bool:
        value = record.get(name)
        if value is None:
            return not required
        return not isinstance(value, bool) and isinstance(value, types)

    return (
        isinstance(record, dict)
        and has("txn", (str,), required=True)
        and has("deadline", (int, float), required=True)
        and math.isfinite(record["deadline"])
        and has("watchdog_pid", (int,))
        and has("platform", (str,))
        and has("watchdog", (str,))
    )


def write_pending(state: StateDir, pending: Pending) -> None:
    data = {
        "txn": pending.txn,
        "deadline": pending.deadline,
        "watchdog_pid": pending.watchdog_pid,
        "platform": pending.platform,
        "watchdog": pending.watchdog,
    }
    try:
        write_atomic(state.pending_file, json.dumps(data).encode() + b"\n", 0o600)
    except OSError as exc:
        raise StateError(f"cannot write {state.pending_file}: {exc.strerror}") from None


def clear_pending(state: StateDir, txn: str) -> None:
    current = read_pending(state)
    if current is not None and current.txn == txn:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(state.pending_file)
