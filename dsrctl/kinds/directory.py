"""Directories dsrctl creates for its own files (``dir:<path>``, a drop-in directory):
created in PERSIST before the files that go in them, removed in PRUNE after them. The
value of one that exists is DIRECTORY (its mode and owner are not managed)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Protocol

from dsrctl.kinds.base import Desired, Plain, ResourceKind, Rich, Value, persisted_note
from dsrctl.kinds.symlink import add_present
from dsrctl.model import HostState, ReadScope, dir_id
from dsrctl.steps import Phase, Step
from state.ownership import Ownership, OwnershipRecord


class DirWriter(Protocol):
    def make_dir(self, path: str) -> None: ...

    def remove_dir(self, path: str) -> None: ...


class DirStep(Step):
    """A directory dsrctl creates for its own file (a drop-in directory). Created in
    PERSIST before the files (``dir:`` sorts before ``file:``), removed in PRUNE after
    them; removal refuses a directory that is not empty."""

    kind: ClassVar[str] = "dir"

    def apply(self, host: DirWriter) -> None:
        if self.after is None:
            host.remove_dir(self.name)
        else:
            host.make_dir(self.name)


class DirKind(ResourceKind):
    name = "dir"
    step = DirStep

    def way_back(self, desired: Desired, name: str, record: OwnershipRecord) -> None:
        if record.created:
            desired.dirs[name] = None  # a directory that was there before stays

    def scope(self, scope: ReadScope, desired: Desired, ownership: Ownership) -> ReadScope:
        return dataclasses.replace(scope, dirs=tuple(desired.dirs))

    def add_desired(self, desired: Desired, plain: Plain, rich: Rich) -> None:
        add_present(dir_id, desired.dirs, plain, rich)

    def add_current(
        self, current: HostState, desired: Desired, ownership: Ownership, plain: Plain, rich: Rich
    ) -> None:
        add_present(dir_id, current.dirs, plain, rich)

    def make_step(
        self, resource: str, before: Value | None, after: Value | None, desired: Desired
    ) -> Step:
        # Created before the files that go in it, removed after them.
        phase = Phase.PERSIST if after is not None else Phase.PRUNE
        note = persisted_note(self.name, resource, after, desired)
        return DirStep(resource, before, after, phase, note=note)


KIND = DirKind()
