"""The write-ahead journal: every step is recorded with its prior value before it runs.

One JSON object a line in ``<state-dir>/journal.jsonl``. A record is written whole (every
``write`` checked), fsynced, and only then is the host touched; a record that cannot be
written whole is cut off again, so the host is never changed without its record. Record
types, in order for one transaction (``txn``):

- ``begin``: spec path, number of steps;
- ``intent``: the steps about to run (resource, action, before, after), before running;
- ``done``: those steps completed;
- ``failed``: why an apply failed, after its undo;
- ``undo`` / ``undone``: the undo groups of a failed run and which completed, written
  after the undo (nothing is written while undoing);
- ``end``: ``result`` is ``applied``, ``rolled-back`` or ``rollback-failed``.

A rollback's ``begin`` names the applies it reverts (``reverts``); its ``end`` with result
``applied`` is what makes them reverted. Records that refer to an earlier transaction:
``reverted`` (written by older versions for each target of a rollback),
``superseded`` (an unfinished transaction that a later apply or rollback dealt with),
``pending`` / ``confirmed`` (apply --confirm-timeout).

Reading never locks the operator out: a torn line (a crash or a full disk mid-write), a
foreign line or a record of a newer format is skipped with a problem naming the file and
line, and every valid record still counts.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from state.errors import StateError
from state.statedir import StateDir, open_state_file_for, read_state_file
from state.writer import FileWriter

ROTATE_BYTES = 8 * 1024 * 1024
FORMAT_VERSION = 1  # "v" of every record; a reader skips records of a newer format
END_RESULTS = ("applied", "rolled-back", "rollback-failed")


class Journal:
    def __init__(self, path: str, writer: FileWriter) -> None:
        self.path = path
        self.writer = writer
        self.txn = ""
        self._fd: int | None = None
        self._start = 0  # length of the file before this transaction's first record

    def begin(self, **details: Any) -> str:
        self._rotate_if_large()
        self._open()
        self.txn = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        self.write("begin", **details)
        return self.txn

    def open_existing(self, txn: str) -> None:
        """Append to the journal under an existing transaction id, without a begin record."""
        self._open()
        self.txn = txn

    def _open(self) -> None:
        self._fd = open_state_file_for(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, "journal")
        self._start = os.fstat(self._fd).st_size

    def write(self, record_type: str, **fields: Any) -> None:
        """Append one record durably, or raise StateError with the file as it was."""
        if self._fd is None:
            raise StateError("journal is not open")
        record = {
            "type": record_type,
            "txn": self.txn,
            "time": time.time(),
            "v": FORMAT_VERSION,
            **fields,
        }
        line = (json.dumps(record, sort_keys=True, default=str) + "\n").encode()
        size = os.fstat(self._fd).st_size
        if size and not _ends_with_newline(self._fd, size):
            line = b"\n" + line  # a torn last line stays a line of its own
        try:
            self.writer.write_all(self._fd, line)
            os.fsync(self._fd)
        except OSError as exc:
            # Cut off what got written: a torn record must not stand in the journal, and
            # truncating needs no free space.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, size)
            raise StateError(f"cannot write journal {self.path}: {exc.strerror}") from None

    def try_write(self, record_type: str, **fields: Any) -> str | None:
        """Like write(), for records that must never stop an undo: the error, or None."""
        try:
            self.write(record_type, **fields)
        except StateError as exc:
            return str(exc)
        return None

    def abandon(self) -> None:
        """Drop this transaction's records: it never changed the host, or its changes were
        all undone, but its end could not be recorded (a full disk)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._start)
                os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _rotate_if_large(self) -> None:
        try:
            if os.lstat(self.path).st_size > ROTATE_BYTES:
                os.replace(self.path, self.path + ".1")
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StateError(f"cannot rotate journal {self.path}: {exc.strerror}") from None


def _ends_with_newline(fd: int, size: int) -> bool:
    return os.pread(fd, 1, size - 1) == b"\n"


@dataclass
class JournalRead:
    """The valid records of a journal, oldest first, and what was skipped and why."""

    records: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read_journal(path: str) -> list[dict[str, Any]]:
    """The valid records, oldest first (for tests, `dsrctl show` and crash recovery)."""
    return read_records(path).records


def read_records(path: str) -> JournalRead:
    data = read_state_file(path)
    result = JournalRead()
    if data is None:
        return result
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except (ValueError, RecursionError):
            problem: str | None = "not a journal record (a torn write or a foreign line)"
        else:
            problem = record_problem(record)
        if problem is not None:
            result.problems.append(f"{path} line {number}: {problem}; skipped")
            continue
        record["line"] = number
        result.records.append(record)
    return result


# field -> the types a record of that type may hold there (bool is never an int here)
_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "begin": {"kind": (str,), "steps": (int,), "spec": (str,), "reverts": (list,)},
    "intent": {"seq": (int,), "steps": (list,)},
    "undo": {"seq": (int,), "steps": (list,)},
    "done": {"seq": (int,)},
    "undone": {"seq": (int,)},
    "failed": {"error": (str,), "steps_done": (int,)},
    "end": {"result": (str,), "errors": (list,), "recovered": (bool,), "steps": (int,)},
    "reverted": {"target": (str,)},
    "superseded": {"target": (str,)},
    "confirmed": {"target": (str,)},
    "pending": {"deadline": (int, float)},
}
_REQUIRED = {
    "intent": ("seq", "steps"),
    "undo": ("seq", "steps"),
    "end": ("result",),
    "reverted": ("target",),
    "superseded": ("target",),
    "confirmed": ("target",),
    "pending": ("deadline",),
}


def record_problem(record: object) -> str | None:
    """Why ``record`` is not a journal record this dsrctl can use, or None."""
    if not isinstance(record, dict):
        return "not a journal record (a JSON value that is not an object)"
    version = record.get("v", 1)
    if not _is(version, (int,)):
        return "'v' is not a number"
    if version > FORMAT_VERSION:
        return f"a record of format {version}, written by a newer dsrctl"
    kind = record.get("type")
    if not isinstance(kind, str) or kind not in _FIELDS:
        return f"unknown record type {kind!r}"
    if not isinstance(record.get("txn"), str) or not record["txn"]:
        return "no transaction id"
    if not _is(record.get("time"), (int, float)):
        return "no time"
    for name in _REQUIRED.get(kind, ()):
        if name not in record:
            return f"a {kind} record without {name!r}"
    for name, types in _FIELDS[kind].items():
        if name in record and not _is(record[name], types):
            return f"{name!r} of a {kind} record has the wrong type"
    if kind in ("intent", "undo") and not all(
        isinstance(step, dict)
        and isinstance(step.get("kind"), str)
        and isinstance(step.get("resource"), str)
        for step in record["steps"]
    ):
        return f"a step of a {kind} record is not a step record"
    if kind == "end" and record["result"] not in END_RESULTS:
        return f"unknown result {record['result']!r}"
    if "ownership_before" in record and not isinstance(record["ownership_before"], dict):
        return "'ownership_before' is not an object"
    return None


def _is(value: object, types: tuple[type, ...]) -> bool:
    # JSON true/false are Python bools, which are ints: a boolean is never a number here.
    if isinstance(value, bool):
        return bool in types
    return isinstance(value, types)


@dataclass
class Transaction:
    """One apply or rollback as the journal tells it."""

    txn: str
    kind: str
    begin: dict[str, Any]
    intents: list[list[dict[str, Any]]] = field(default_factory=list)
    done: int = 0
    result: str | None = None  # None: no "end" record (the run died, or is still running)
    reverted_by: str | None = None
    superseded_by: str | None = None
    confirmed: bool = False
    end: dict[str, Any] = field(default_factory=dict)
    lines: list[int] = field(default_factory=list)  # journal lines of its intent records

    @property
    def started(self) -> float:
        return float(self.begin.get("time", 0.0))

    def steps(self) -> list[dict[str, Any]]:
        """Every step the transaction set out to run, in order."""
        return [step for group in self.intents for step in group]


@dataclass
class History:
    transactions: list[Transaction]
    problems: list[str]  # lines skipped, each naming the file and line


def read_history(path: str) -> History:
    """The journal folded into transactions, oldest first, with the lines it skipped."""
    read = read_records(path)
    by_id: dict[str, Transaction] = {}
    for record in read.records:
        kind = record["type"]
        txn = record["txn"]
        if kind == "begin":
            by_id[txn] = Transaction(txn=txn, kind=record.get("kind", "apply"), begin=record)
            continue
        if kind in ("reverted", "superseded", "confirmed"):
            target = by_id.get(record["target"])
            if target is not None:
                if kind == "reverted":
                    target.reverted_by = txn
                elif kind == "superseded":
                    target.superseded_by = txn
                else:
                    target.confirmed = True
            continue
        current = by_id.get(txn)
        if current is None:
            continue
        if kind == "intent":
            current.intents.append(list(record["steps"]))
            current.lines.append(record["line"])
        elif kind == "done":
            current.done += 1
        elif kind == "end":
            current.result = record["result"]
            current.end = record
    # A rollback that ended well reverted what its begin record names: its end record is
    # the commit point (older journals also hold one "reverted" record per target).
    for txn in by_id.values():
        if txn.kind == "rollback" and txn.result == "applied":
            for target in txn.begin.get("reverts", []):
                reverted = by_id.get(target) if isinstance(target, str) else None
                if reverted is not None and reverted.reverted_by is None:
                    reverted.reverted_by = txn.txn
    return History(list(by_id.values()), read.problems)


def transactions(path: str) -> list[Transaction]:
    """The journal folded into transactions, oldest first (skipped lines are not said)."""
    return read_history(path).transactions


def append_record(state: StateDir, txn: str, record_type: str, **fields: Any) -> None:
    """One record outside a running transaction (reverted, superseded, confirmed)."""
    journal = Journal(state.journal_file, state.writer)
    journal.open_existing(txn)
    try:
        journal.write(record_type, **fields)
    finally:
        journal.close()
