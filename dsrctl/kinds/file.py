"""Files dsrctl writes (``file:<path>``): the sysctl file and the persistence backend's
files, written in PERSIST. Compared by digest and mode; the journal keeps the bytes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol, TypeVar

from dsrctl.kinds.base import Desired, Plain, ResourceKind, Rich, Value, persisted_note
from dsrctl.model import FileState, HostState, ReadScope, file_id
from dsrctl.steps import Phase, Step
from state.ownership import Ownership, OwnershipRecord

T = TypeVar("T")


class FileWriter(Protocol):
    def write_file(self, path: str, state: FileState) -> None: ...

    def remove_file(self, path: str) -> None: ...


class FileStep(Step):
    kind: ClassVar[str] = "file"

    def apply(self, host: FileWriter) -> None:
        if self.after is None:
            host.remove_file(self.name)
        else:
            host.write_file(self.name, self.after)

    def show(self, value: Any) -> Any:
        if isinstance(value, FileState):
            return value.summary()
        return value

    def to_record(self) -> dict[str, Any]:
        data = self.to_json()
        for side in ("before", "after"):
            value = getattr(self, side)
            data[side] = value.to_record() if isinstance(value, FileState) else None
        return data

    @classmethod
    def decode(cls, value: Any) -> Any:
        return None if value is None else FileState.from_record(value)


def _plain(state: FileState) -> dict[str, object]:
    return {"sha256": state.sha256, "mode": state.mode}


def _add(files: dict[str, FileState | None], plain: Plain, rich: Rich) -> None:
    for path, file_state in files.items():
        if file_state is not None:
            plain[file_id(path)] = _plain(file_state)
            rich[file_id(path)] = file_state


def leave_removed(
    ids: Callable[[str], str],
    wanted: dict[str, T | None],
    found: Mapping[str, T | None],
    desired: Desired,
) -> None:
    """A file or link that dsrctl changed (it existed before) and no longer manages is put
    back as it was, unless someone has removed it since: dsrctl does not bring back what
    was deliberately deleted (an operator's NetworkManager profile, say); it lets it go,
    and the next apply forgets it."""
    for path, value in list(wanted.items()):
        resource = ids(path)
        if value is None or resource in desired.spec_resources or found.get(path) is not None:
            continue
        del wanted[path]
        desired.notes.append(
            f"{path} was there before dsrctl changed it and has been removed since; "
            "dsrctl leaves it removed"
        )


class FileKind(ResourceKind):
    name = "file"
    step = FileStep

    def way_back(self, desired: Desired, name: str, record: OwnershipRecord) -> None:
        if record.created:
            desired.files[name] = None
        elif record.original is not None:
            desired.files[name] = FileState.from_record(record.original)

    def scope(self, scope: ReadScope, desired: Desired, ownership: Ownership) -> ReadScope:
        return dataclasses.replace(scope, files=tuple(desired.files))

    def leave_removed(self, desired: Desired, current: HostState) -> None:
        leave_removed(file_id, desired.files, current.files, desired)

    def add_desired(self, desired: Desired, plain: Plain, rich: Rich) -> None:
        _add(desired.files, plain, rich)

    def add_current(
        self, current: HostState, desired: Desired, ownership: Ownership, plain: Plain, rich: Rich
    ) -> None:
        _add(current.files, plain, rich)

    def make_step(
        self, resource: str, before: Value | None, after: Value | None, desired: Desired
    ) -> Step:
        note = persisted_note(self.name, resource, after, desired)
        return FileStep(resource, before, after, Phase.PERSIST, note=note)


KIND = FileKind()
