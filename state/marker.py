"""Small JSON marker files in the state directory (the in-flight run, the apply waiting for
confirmation): written whole, read strictly, removed when their run ends."""

from __future__ import annotations

import contextlib
import json
import math
import os
from typing import Any

from state.errors import StateError, StatePermissionError
from state.statedir import read_state_file
from state.writer import FileWriter

# field -> (the types it may hold, required); a boolean is never a number here
Fields = dict[str, tuple[tuple[type, ...], bool]]


def write_marker(writer: FileWriter, path: str, record: dict[str, Any]) -> None:
    try:
        writer.write_atomic(path, json.dumps(record).encode() + b"\n", 0o600)
    except OSError as exc:
        raise StateError(f"cannot write {path}: {exc.strerror}") from None


def read_marker(path: str, fields: Fields, names: str) -> dict[str, Any] | None:
    """The marker's record, None if there is none (or it cannot be read without root).
    ``names`` says what the file names, for the message when it is corrupt."""
    try:
        data = read_state_file(path)
    except StatePermissionError:
        return None
    if data is None:
        return None
    try:
        record = json.loads(data)
    except (ValueError, RecursionError):
        record = None
    problem = _problem(record, fields)
    if problem is not None:
        raise StateError(
            f"{path} is corrupt ({problem}): it should name {names}; check `dsrctl history`, "
            "then remove the file"
        )
    assert isinstance(record, dict)
    return record


def remove_marker(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _problem(record: object, fields: Fields) -> str | None:
    if not isinstance(record, dict):
        return "not a JSON object"
    for name, (types, required) in fields.items():
        value = record.get(name)
        if value is None:
            if required:
                return f"no {name!r}"
            continue
        if isinstance(value, bool) or not isinstance(value, types):
            return f"{name!r} has the wrong type"
        if isinstance(value, float) and not math.isfinite(value):
            return f"{name!r} is not a finite number"
    return None
