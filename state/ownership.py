"""Ownership records: per resource, did dsrctl create it, and what was it before.

dsrctl deletes only what it created, and restores what it changed to the value the
resource had before dsrctl *first* changed it. The records live in
``<state-dir>/ownership.json``, rewritten atomically after each successful apply.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from state.errors import StateError, StatePermissionError
from state.statedir import read_state_file
from state.writer import FileWriter, StagedWrite

FORMAT_VERSION = 1


@dataclass(frozen=True)
class OwnershipRecord:
    created: bool  # the resource did not exist before dsrctl made it
    original: Any  # its value before dsrctl first changed it (JSON; None if absent)
    since: str

    def to_json(self) -> dict[str, Any]:
        return {"created": self.created, "original": self.original, "since": self.since}


class Ownership:
    def __init__(self, records: dict[str, OwnershipRecord] | None = None) -> None:
        self.records: dict[str, OwnershipRecord] = dict(records or {})

    def get(self, resource: str) -> OwnershipRecord | None:
        return self.records.get(resource)

    def created(self, resource: str) -> bool:
        record = self.records.get(resource)
        return record is not None and record.created

    def remember(self, resource: str, *, created: bool, original: Any) -> None:
        """Record a resource when dsrctl first takes charge of it; later calls keep the first."""
        if resource not in self.records:
            self.records[resource] = OwnershipRecord(
                created=created, original=original, since=time.strftime("%Y-%m-%dT%H:%M:%S%z")
            )

    def forget(self, resource: str) -> None:
        self.records.pop(resource, None)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "resources": {key: rec.to_json() for key, rec in sorted(self.records.items())},
        }

    @classmethod
    def load(cls, path: str) -> Ownership:
        try:
            data = read_state_file(path)
        except StatePermissionError:
            raise StatePermissionError(
                f"cannot read ownership records {path}: permission denied", path
            ) from None
        if data is None:
            return cls()
        try:
            parsed = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise StateError(
                f"ownership records {path} are corrupt ({exc}); restore them from a backup, "
                "or move the file away (dsrctl then treats every resource as the operator's "
                "own and deletes nothing)"
            ) from None
        return cls.from_json(parsed, path)

    @classmethod
    def from_json(cls, data: Any, path: str) -> Ownership:
        """Strictly: a record whose fields have the wrong type is refused, never coerced
        (``"created": "false"`` would otherwise read as true and make apply delete)."""
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
            raise StateError(f"ownership records {path} have an unknown format")
        resources = data.get("resources")
        if not isinstance(resources, dict):
            raise StateError(f"ownership records {path} are corrupt: no 'resources' object")
        records = {}
        for key, value in resources.items():
            problem = _record_problem(key, value)
            if problem:
                raise StateError(
                    f"ownership records {path} are corrupt: {key!r}: {problem}; restore the "
                    "file from a backup or remove that record"
                )
            records[key] = OwnershipRecord(
                created=value["created"],
                original=value.get("original"),
                since=value.get("since", ""),
            )
        return cls(records)

    def save(self, path: str, writer: FileWriter) -> None:
        self.stage(path, writer).commit()

    def stage(self, path: str, writer: FileWriter) -> StagedWrite:
        """The records written beside ``path``, renamed into place by ``commit()``: a
        transaction stages them before its first change (see state.writer.StagedWrite)."""
        # No indent: the indenting encoder is the slow pure-Python one (10,000 records).
        data = json.dumps(self.to_json(), sort_keys=True).encode() + b"\n"
        try:
            return writer.stage(path, data, 0o600)
        except OSError as exc:
            raise StateError(f"cannot write ownership records {path}: {exc.strerror}") from None


def _record_problem(key: str, value: Any) -> str | None:
    kind, _, name = key.partition(":")
    if not kind or not name:
        return "not a resource id"
    if not isinstance(value, dict):
        return "not a record"
    if not isinstance(value.get("created"), bool):
        return "'created' must be true or false"
    if not isinstance(value.get("since", ""), str):
        return "'since' must be a string"
    return None
