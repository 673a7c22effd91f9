"""Kernel parameters (``sysctl:<key>``): set in HARDEN, restored in RELAX."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Protocol

from dsrctl.kinds.base import Desired, Plain, ResourceKind, Rich, Value
from dsrctl.model import HostState, ReadScope, SysctlValue, sysctl_id
from dsrctl.steps import Phase, Step
from state.ownership import Ownership, OwnershipRecord


class SysctlWriter(Protocol):
    def set_sysctl(self, key: str, value: SysctlValue) -> None: ...


@dataclass(frozen=True)
class SysctlStep(Step):
    kind: ClassVar[str] = "sysctl"

    def apply(self, host: SysctlWriter) -> None:
        if self.after is None:
            raise ValueError(f"{self.resource}: a sysctl cannot be deleted")
        host.set_sysctl(self.name, self.after)


class SysctlKind(ResourceKind):
    name = "sysctl"
    step = SysctlStep

    def way_back(self, desired: Desired, name: str, record: OwnershipRecord) -> None:
        if record.original is not None:
            desired.restores[name] = record.original

    def scope(self, scope: ReadScope, desired: Desired, ownership: Ownership) -> ReadScope:
        keys = list(desired.sysctls) + [k for k in desired.restores if k not in desired.sysctls]
        return dataclasses.replace(scope, sysctl_keys=tuple(keys))

    def add_desired(self, desired: Desired, plain: Plain, rich: Rich) -> None:
        for key, value in {**desired.restores, **desired.sysctls}.items():
            plain[sysctl_id(key)] = rich[sysctl_id(key)] = value

    def add_current(
        self, current: HostState, desired: Desired, ownership: Ownership, plain: Plain, rich: Rich
    ) -> None:
        for key, value in current.sysctls.items():
            plain[sysctl_id(key)] = rich[sysctl_id(key)] = value

    def make_step(
        self, resource: str, before: Value | None, after: Value | None, desired: Desired
    ) -> Step:
        if resource.partition(":")[2] in desired.sysctls:
            return SysctlStep(resource, before, after, Phase.HARDEN)
        return SysctlStep(
            resource, before, after, Phase.RELAX, note="restore the value before dsrctl"
        )


KIND = SysctlKind()
