"""The in-flight marker: ``<state-dir>/inflight.json`` names the apply or rollback now
running, with its pid, the kernel's start time of that pid and the boot id. Reading this
small file (not the whole journal) is how every command notices, cheaply, that a run
died halfway (kill -9, power loss): the file is still there but its process is gone or
the machine has rebooted since."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from state.marker import Fields, read_marker, remove_marker, write_marker
from state.process import boot_id, process_alive, process_token
from state.statedir import StateDir


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
    write_marker(
        state.writer,
        state.inflight_file,
        {
            "txn": txn,
            "kind": kind,
            "pid": os.getpid(),
            "boot_id": boot_id(),
            "started": time.time(),
            "command": command,
            "process": process_token(os.getpid()),
        },
    )


def clear_inflight(state: StateDir, txn: str) -> None:
    current = read_inflight(state)
    if current is not None and current.txn == txn:
        remove_marker(state.inflight_file)


_FIELDS: Fields = {
    "txn": ((str,), True),
    "pid": ((int,), True),
    "kind": ((str,), False),
    "boot_id": ((str,), False),
    "started": ((int, float), False),
    "command": ((str,), False),
    "process": ((str,), False),
}


def read_inflight(state: StateDir) -> Inflight | None:
    record = read_marker(state.inflight_file, _FIELDS, "a run that is running or died")
    if record is None:
        return None
    return Inflight(
        txn=record["txn"],
        kind=record.get("kind", "apply"),
        pid=record["pid"],
        boot_id=record.get("boot_id", ""),
        started=float(record.get("started", 0)),
        command=record.get("command", ""),
        process=record.get("process", ""),
    )
