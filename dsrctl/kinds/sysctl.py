"""Kernel parameters (``sysctl:<key>``): set in HARDEN, restored in RELAX."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Protocol

from dsrctl.kinds.base import Desired, Plain, ResourceKind, Rich, Value
from dsrctl.model import HostState, ReadScope, SysctlValue, sysctl_id
from dsrctl.steps import Phase, Step
from dsrctl.sysctls import split_key
from state.ownership import Ownership, OwnershipRecord


class SysctlWriter(Protocol):
    def set_sysctl(self, key: str, value: SysctlValue) -> None: ...


class SysctlStep(Step):
    kind: ClassVar[str] = "sysctl"

    def apply(self, host: SysctlWriter) -> None:
        if self.after is None:
            if per_interface(self.name):
                return  # undoing its creation: the key goes away with its device
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
            note = desired.step_notes.get(resource, "")
            return SysctlStep(resource, before, after, Phase.HARDEN, note=note)
        return SysctlStep(
            resource, before, after, Phase.RELAX, note="restore the value before dsrctl"
        )


def per_interface(key: str) -> bool:
    """A ``net.ipv{4,6}.conf.<device>.*`` key of one device (not all/default), which
    exists only while its device does."""
    parts = split_key(key)
    return (
        len(parts) == 5
        and parts[:3] in (["net", "ipv4", "conf"], ["net", "ipv6", "conf"])
        and parts[3] not in ("all", "default")
    )


KIND = SysctlKind()
