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

from dsrctl.errors import PrivilegeError, StateError
from state.safefile import write_atomic

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
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return cls()
        except PermissionError:
            raise PrivilegeError(
                f"cannot read ownership records {path}: permission denied"
            ) from None
        except ValueError as exc:
            raise StateError(f"ownership records {path} are corrupt: {exc}") from None
        return cls.from_json(data, path)

    @classmethod
    def from_json(cls, data: Any, path: str) -> Ownership:
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
            raise StateError(f"ownership records {path} have an unknown format")
        try:
            records = {
                key: OwnershipRecord(
                    created=bool(value["created"]),
                    original=value.get("original"),
                    since=str(value.get("since", "")),
                )
                for key, value in data["resources"].items()
            }
        except (KeyError, TypeError, AttributeError) as exc:
            raise StateError(f"ownership records {path} are corrupt: {exc}") from None
        return cls(records)

    def save(self, path: str) -> None:
        data = json.dumps(self.to_json(), indent=1, sort_keys=True).encode() + b"\n"
        try:
            write_atomic(path, data, 0o600)
        except OSError as exc:
            raise StateError(f"cannot write ownership records {path}: {exc.strerror}") from None
