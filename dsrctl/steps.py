"""Plan steps: small frozen objects that describe, apply and invert one change.

A step carries the value the resource had when the plan was made (``before``) and the
value it must get (``after``); ``None`` means absent. Its inverse is the same step with
the two swapped, which is how rollback restores exactly what was observed.

Execution order is explicit, by phase (nmstate habit), never by dict order:
  REMOVE_ADDRESSES -> HARDEN -> ADD_ADDRESSES -> RELAX -> PERSIST
ARP sysctls are hardened before any VIP is added, and VIPs are removed before any sysctl
is relaxed, so there is no moment in which the host answers ARP for a VIP.
Windows adds two phases around these (dsrctl.windows_steps): ADAPTER first (the loopback
adapter must exist before anything is set on it) and FIREWALL last.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from dsrctl.model import AddressState, FileState, SysctlValue, split_address_id, split_id
from dsrctl.sysctls import ARP_ANNOUNCE_KEY, ARP_IGNORE_KEY

if TYPE_CHECKING:
    from providers.linux.changes import AddressChange


class Phase(IntEnum):
    ADAPTER = 0  # Windows only: create the loopback adapter
    REMOVE_ADDRESSES = 1
    HARDEN = 2
    ADD_ADDRESSES = 3
    RELAX = 4
    PERSIST = 5
    PRUNE = 6  # remove directories dsrctl created, once the files in them are gone
    FIREWALL = 10  # Windows only: firewall rules for the VIPs

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


class SysctlWriter(Protocol):
    def set_sysctl(self, key: str, value: SysctlValue) -> None: ...


class AddressWriter(Protocol):
    def apply_addresses(self, steps: Sequence[AddressChange]) -> list[BaseException | None]: ...


class FileWriter(Protocol):
    def write_file(self, path: str, state: FileState) -> None: ...

    def remove_file(self, path: str) -> None: ...


class LinkWriter(Protocol):
    def write_symlink(self, path: str, target: str) -> None: ...

    def remove_symlink(self, path: str) -> None: ...


class DirWriter(Protocol):
    def make_dir(self, path: str) -> None: ...

    def remove_dir(self, path: str) -> None: ...


@dataclass(frozen=True)
class Step:
    resource: str
    before: Any
    after: Any
    phase: Phase
    note: str = ""

    kind: ClassVar[str] = "step"
    # Steps of a batchable kind that sit next to each other run as one host call.
    batchable: ClassVar[bool] = False

    @property
    def action(self) -> str:
        if self.before is None:
            return "create"
        if self.after is None:
            return "delete"
        return "update"

    @property
    def name(self) -> str:
        return split_id(self.resource)[1]

    def apply(self, host: Any) -> None:
        raise NotImplementedError

    def inverse(self) -> Step:
        return dataclasses.replace(self, before=self.after, after=self.before, note="rollback")

    def show(self, value: Any) -> Any:
        """A JSON-friendly rendering of ``before`` or ``after``."""
        return value

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "action": self.action,
            "resource": self.resource,
            "kind": self.kind,
            "phase": self.phase.label,
            "before": self.show(self.before),
            "after": self.show(self.after),
        }
        if self.note:
            data["note"] = self.note
        return data

    def to_record(self) -> dict[str, Any]:
        """What the journal keeps: enough to redo or undo the step after a crash."""
        return self.to_json()

    @classmethod
    def decode(cls, value: Any) -> Any:
        """The inverse of to_record() for one side (``before`` or ``after``)."""
        return value


@dataclass(frozen=True)
class SysctlStep(Step):
    kind: ClassVar[str] = "sysctl"

    def apply(self, host: SysctlWriter) -> None:
        if self.after is None:
            raise ValueError(f"{self.resource}: a sysctl cannot be deleted")
        host.set_sysctl(self.name, self.after)


@dataclass(frozen=True)
class AddressStep(Step):
    kind: ClassVar[str] = "address"
    batchable: ClassVar[bool] = True

    @property
    def interface(self) -> str:
        return split_address_id(self.resource)[0]

    @property
    def cidr(self) -> str:
        return split_address_id(self.resource)[1]

    def apply(self, host: AddressWriter) -> None:
        errors = host.apply_addresses([self])
        if errors and errors[0] is not None:
            raise errors[0]

    def show(self, value: Any) -> Any:
        if isinstance(value, AddressState):
            return value.to_record()
        return value

    @classmethod
    def decode(cls, value: Any) -> Any:
        if value is None:
            return None
        return AddressState(
            address=value["address"],
            prefix=int(value["prefix"]),
            label=value.get("label"),
            deprecated=bool(value.get("deprecated", False)),
            nodad=bool(value.get("nodad", False)),
        )


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


# kind -> "module:class", for steps read back from the journal (rollback, crash recovery).
STEP_KINDS: dict[str, str] = {
    "sysctl": "dsrctl.steps:SysctlStep",
    "address": "dsrctl.steps:AddressStep",
    "file": "dsrctl.steps:FileStep",
    "symlink": "dsrctl.steps:SymlinkStep",
    "dir": "dsrctl.steps:DirStep",
    "adapter": "dsrctl.windows_steps:AdapterStep",
    "netsh": "dsrctl.windows_steps:NetshSetStep",
    "dhcp": "dsrctl.windows_steps:DhcpStep",
    "vip": "dsrctl.windows_steps:VipStep",
    "firewall": "dsrctl.windows_steps:FirewallRuleStep",
    "manual": "dsrctl.windows_steps:ManualStep",
}


def step_from_record(record: dict[str, Any]) -> Step:
    """Rebuild a step from its journal record (the output of to_record())."""
    import importlib

    target = STEP_KINDS.get(record.get("kind", ""))
    if target is None:
        raise ValueError(f"unknown step kind {record.get('kind')!r} in the journal")
    module_name, _, class_name = target.partition(":")
    cls: type[Step] = getattr(importlib.import_module(module_name), class_name)
    phase = next(p for p in Phase if p.label == record["phase"])
    return cls(
        resource=record["resource"],
        before=cls.decode(record["before"]),
        after=cls.decode(record["after"]),
        phase=phase,
        note=record.get("note", ""),
    )


def sort_steps(steps: list[Step]) -> list[Step]:
    """Phase order; inside a phase the ARP keys first, then by resource name."""

    def key(step: Step) -> tuple[int, int, str]:
        arp_first = {ARP_IGNORE_KEY: 0, ARP_ANNOUNCE_KEY: 1}.get(step.name, 2)
        return (int(step.phase), arp_first, step.resource)

    return sorted(steps, key=key)
