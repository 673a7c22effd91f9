"""Symbolic links (``symlink:<path>``), e.g. the ``*.wants/`` link that enables a boot
unit: made in PERSIST. The value is the link target."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar, Protocol

from dsrctl.kinds.base import Desired, Plain, ResourceKind, Rich, Value, persisted_note
from dsrctl.kinds.file import leave_removed
from dsrctl.model import HostState, ReadScope, symlink_id
from dsrctl.steps import Phase, Step
from state.ownership import Ownership, OwnershipRecord


class LinkWriter(Protocol):
    def write_symlink(self, path: str, target: str) -> None: ...

    def remove_symlink(self, path: str) -> None: ...


class SymlinkStep(Step):
    """A symbolic link, e.g. the ``*.wants/`` link that enables a boot unit (what
    ``systemctl enable`` creates). ``before``/``after`` are link targets; the inverse is
    the link as it was, so rollback and the way back need nothing else."""

    kind: ClassVar[str] = "symlink"

    def apply(self, host: LinkWriter) -> None:
        if self.after is None:
            host.remove_symlink(self.name)
        else:
            host.write_symlink(self.name, self.after)


def add_present(
    ids: Callable[[str], str], values: dict[str, str | None], plain: Plain, rich: Rich
) -> None:
    """Links (value: the target) or directories (value: DIRECTORY) that exist."""
    for path, value in values.items():
        if value is not None:
            plain[ids(path)] = rich[ids(path)] = value


class SymlinkKind(ResourceKind):
    name = "symlink"
    step = SymlinkStep

    def way_back(self, desired: Desired, name: str, record: OwnershipRecord) -> None:
        desired.symlinks[name] = None if record.created else record.original

    def scope(self, scope: ReadScope, desired: Desired, ownership: Ownership) -> ReadScope:
        return dataclasses.replace(scope, symlinks=tuple(desired.symlinks))

    def leave_removed(self, desired: Desired, current: HostState) -> None:
        leave_removed(symlink_id, desired.symlinks, current.symlinks, desired)

    def add_desired(self, desired: Desired, plain: Plain, rich: Rich) -> None:
        add_present(symlink_id, desired.symlinks, plain, rich)

    def add_current(
        self, current: HostState, desired: Desired, ownership: Ownership, plain: Plain, rich: Rich
    ) -> None:
        add_present(symlink_id, current.symlinks, plain, rich)

    def make_step(
        self, resource: str, before: Value | None, after: Value | None, desired: Desired
    ) -> Step:
        note = persisted_note(self.name, resource, after, desired)
        return SymlinkStep(resource, before, after, Phase.PERSIST, note=note)


KIND = SymlinkKind()
