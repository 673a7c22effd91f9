"""The write-ahead journal: every step is recorded with its prior value before it runs.

One JSON object a line in ``<state-dir>/journal.jsonl``, each fsynced before the host is
touched, so that after a crash the journal says what was about to change and what it
was before. Record types, in order for one transaction (``txn``):

- ``begin``: spec path, number of steps;
- ``intent``: the steps about to run (resource, action, before, after), before running;
- ``done``: those steps completed;
- ``undo``: a rollback step about to run; ``undone`` when it completed;
- ``end``: ``result`` is ``applied``, ``rolled-back`` or ``rollback-failed``.

Records that refer to an earlier transaction: ``reverted`` (a later rollback undid it),
``superseded`` (an unfinished transaction that a later apply or rollback dealt with),
``pending`` / ``confirmed`` (apply --confirm-timeout).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from dsrctl.errors import StateError

ROTATE_BYTES = 8 * 1024 * 1024


class Journal:
    def __init__(self, path: str) -> None:
        self.path = path
        self.txn = ""
        self._fd: int | None = None

    def begin(self, **details: Any) -> str:
        self._rotate_if_large()
        try:
            self._fd = os.open(
                self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600
            )
        except OSError as exc:
            raise StateError(f"cannot open journal {self.path}: {exc.strerror}") from None
        self.txn = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        self.write("begin", **details)
        return self.txn

    def open_existing(self, txn: str) -> None:
        """Append to the journal under an existing transaction id, without a begin record."""
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.txn = txn

    def write(self, record_type: str, **fields: Any) -> None:
        if self._fd is None:
            raise StateError("journal is not open")
        record = {"type": record_type, "txn": self.txn, "time": time.time(), **fields}
        line = (json.dumps(record, sort_keys=True, default=str) + "\n").encode()
        try:
            os.write(self._fd, line)
            os.fsync(self._fd)
        except OSError as exc:
            raise StateError(f"cannot write journal {self.path}: {exc.strerror}") from None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _rotate_if_large(self) -> None:
        try:
            if os.path.getsize(self.path) > ROTATE_BYTES:
                os.replace(self.path, self.path + ".1")
        except FileNotFoundError:
            pass


def read_journal(path: str) -> list[dict[str, Any]]:
    """All records, oldest first (for tests, `dsrctl show` and crash recovery)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    except FileNotFoundError:
        return []
    except ValueError as exc:
        raise StateError(f"journal {path} is corrupt: {exc}") from None


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

    @property
    def started(self) -> float:
        return float(self.begin.get("time", 0.0))

    def steps(self) -> list[dict[str, Any]]:
        """Every step the transaction set out to run, in order."""
        return [step for group in self.intents for step in group]


def transactions(path: str) -> list[Transaction]:
    """The journal folded into transactions, oldest first."""
    by_id: dict[str, Transaction] = {}
    for record in read_journal(path):
        kind = record.get("type")
        txn = str(record.get("txn", ""))
        if kind == "begin":
            by_id[txn] = Transaction(txn=txn, kind=record.get("kind", "apply"), begin=record)
            continue
        if kind in ("reverted", "superseded", "confirmed"):
            target = by_id.get(str(record.get("target", "")))
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
            current.intents.append(list(record.get("steps", [])))
        elif kind == "done":
            current.done += 1
        elif kind == "end":
            current.result = str(record.get("result"))
            current.end = record
    return list(by_id.values())


def append_record(path: str, txn: str, record_type: str, **fields: Any) -> None:
    """One record outside a running transaction (reverted, superseded, confirmed)."""
    journal = Journal(path)
    journal.open_existing(txn)
    try:
        journal.write(record_type, **fields)
    finally:
        journal.close()
