"""The pending-confirmation marker: ``<state-dir>/pending-confirm.json`` names an apply
made with --confirm-timeout, its deadline and its watchdog (pid, boot id and the kernel's
start time of that pid, so that a watchdog ended by a reboot or kill is noticed)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from state.marker import Fields, read_marker, remove_marker, write_marker
from state.process import boot_id, process_alive
from state.statedir import StateDir


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


_FIELDS: Fields = {
    "txn": ((str,), True),
    "deadline": ((int, float), True),
    "watchdog_pid": ((int,), False),
    "platform": ((str,), False),
    "watchdog": ((str,), False),
}


def read_pending(state: StateDir) -> Pending | None:
    record = read_marker(state.pending_file, _FIELDS, "an apply waiting for `dsrctl confirm`")
    if record is None:
        return None
    return Pending(
        txn=record["txn"],
        deadline=float(record["deadline"]),
        watchdog_pid=record.get("watchdog_pid", 0),
        platform=record.get("platform", "linux"),
        watchdog=record.get("watchdog", ""),
    )


def write_pending(state: StateDir, pending: Pending) -> None:
    write_marker(
        state.writer,
        state.pending_file,
        {
            "txn": pending.txn,
            "deadline": pending.deadline,
            "watchdog_pid": pending.watchdog_pid,
            "platform": pending.platform,
            "watchdog": pending.watchdog,
        },
    )


def clear_pending(state: StateDir, txn: str) -> None:
    current = read_pending(state)
    if current is not None and current.txn == txn:
        remove_marker(state.pending_file)
