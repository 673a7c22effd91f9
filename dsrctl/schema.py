"""Typed reading of one TOML table, with errors that name the file, key path and value.

A :class:`Table` hands out its keys one at a time with the expected type; ``finish()``
then refuses whatever key nobody asked for, so a typo never passes silently.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any

from dsrctl.errors import MISSING, SpecError


class Table:
    def __init__(self, path: str, data: dict[str, Any], keypath: str = "") -> None:
        self.path = path
        self.data = data
        self.keypath = keypath
        self._seen: set[str] = set()

    def key(self, name: str) -> str:
        return join_key(self.keypath, name)

    def error(self, name: str, value: object, reason: str) -> SpecError:
        return SpecError(self.path, self.key(name), value, reason)

    def has(self, name: str) -> bool:
        return name in self.data

    def raw(self, name: str, default: object = MISSING) -> object:
        self._seen.add(name)
        return self.data.get(name, default)

    def missing(self, name: str, what: str) -> SpecError:
        """A required key is absent; point at a misspelt key next to it, if any."""
        unknown = [key for key in self.data if key not in self._seen and key != name]
        close = difflib.get_close_matches(name, unknown, n=1)
        hint = f"; is '{close[0]}' a misspelling of it?" if close else ""
        return self.error(name, MISSING, f"required key is missing ({what}){hint}")

    def integer(self, name: str, default: int | None = None) -> int:
        value = self.raw(name)
        if value is MISSING:
            if default is None:
                raise self.missing(name, "an integer")
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(name, value, f"must be an integer, not {type_name(value)}")
        return value

    def string(self, name: str, default: str | None = None, *, required: bool = False) -> str:
        value = self.raw(name)
        if value is MISSING:
            if default is None or required:
                raise self.missing(name, "a string")
            return default
        if not isinstance(value, str):
            raise self.error(name, value, f"must be a string, not {type_name(value)}")
        return value

    def optional_string(self, name: str) -> str | None:
        if not self.has(name):
            self._seen.add(name)
            return None
        return self.string(name, required=True)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is MISSING:
            return default
        if not isinstance(value, bool):
            raise self.error(name, value, f"must be true or false, not {type_name(value)}")
        return value

    def table(self, name: str) -> Table:
        value = self.raw(name)
        if value is MISSING:
            return Table(self.path, {}, self.key(name))
        if not isinstance(value, dict):
            raise self.error(name, value, f"must be a table, not {type_name(value)}")
        return Table(self.path, value, self.key(name))

    def tables(self, name: str) -> Iterator[Table]:
        """An array of tables (``[[name]]``), each with its index in the key path."""
        value = self.raw(name)
        if value is MISSING:
            return iter(())
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.error(name, value, f"must be an array of tables ([[{name}]])")
        key = self.key(name)  # once, not once per table: a spec may hold 10,000 [[vip]]
        return (Table(self.path, item, f"{key}[{index}]") for index, item in enumerate(value))

    def finish(self) -> None:
        for name in self.data:
            if name not in self._seen:
                known = sorted(self._seen)
                close = difflib.get_close_matches(name, known, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                allowed = ", ".join(known) if known else "none"
                raise self.error(
                    name, self.data[name], f"unknown key{hint}; known keys here: {allowed}"
                )


def join_key(prefix: str, name: str) -> str:
    part = name if _bare(name) else '"' + name.replace('"', '\\"') + '"'
    return f"{prefix}.{part}" if prefix else part


def _bare(name: str) -> bool:
    return bool(name) and all(c.isascii() and (c.isalnum() or c in "_-") for c in name)


def type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__
