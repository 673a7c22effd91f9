"""Plan steps: small frozen objects that describe, apply and invert one change.

A step carries the value the resource had when the plan was made (``before``) and the
value it must get (``after``); ``None`` means absent. Its inverse is the same step with
the two swapped, which is how rollback restores exactly what was observed.

Execution order is explicit, by phase (nmstate habit), never by dict order:
  REMOVE_ADDRESSES -> LOAD_MODULES -> ADD_TUNNELS -> HARDEN -> ADD_ADDRESSES -> RELAX
  -> REMOVE_TUNNELS -> UNLOAD_MODULES -> PERSIST -> PRUNE
ARP sysctls are hardened before any VIP is added, and VIPs are removed before any sysctl
is relaxed, so there is no moment in which the host answers ARP for a VIP. Decap devices
([[tunnel]]) exist before the sysctls that name them are set and before the VIPs are
added, and go only after the VIPs are removed and those sysctls restored; their modules
are loaded first and unloaded last.
Windows adds two phases around these (dsrctl.windows.steps): ADAPTER first (the loopback
adapter must exist before anything is set on it) and FIREWALL last.

The step of each Linux resource kind is in its kind's module (dsrctl.kinds); the registry
(dsrctl.kinds.registry) finds a step class by its journal kind.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar

from dsrctl.model import split_id
from dsrctl.sysctls import ARP_ANNOUNCE_KEY, ARP_IGNORE_KEY


class Phase(IntEnum):
    ADAPTER = 0  # Windows only: create the loopback adapter
    REMOVE_ADDRESSES = 1
    LOAD_MODULES = 2  # kernel modules of the [[tunnel]] kinds
    ADD_TUNNELS = 3  # decap devices (created, set up) and fou ports
    HARDEN = 4
    ADD_ADDRESSES = 5
    RELAX = 6
    REMOVE_TUNNELS = 7  # decap devices and fou ports dsrctl no longer manages
    UNLOAD_MODULES = 8
    PERSIST = 9
    PRUNE = 10  # remove directories dsrctl created, once the files in them are gone
    FIREWALL = 20  # Windows only: firewall rules for the VIPs

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


@dataclass(frozen=True)
class Step:
    """One change. A kind's step class subclasses it without ``@dataclass`` and adds no
    field: it inherits ``__init__``, ``__eq__`` and ``__hash__`` (equal only to a step of
    the same class with equal fields) and ``__repr__`` (which names the subclass), and
    the decorator would cost about 1 ms of start-up per class (exec of the generated
    code) on every drift. A step is immutable whatever its class: see _refuse_set."""

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


def _refuse_set(self: Step, name: str, value: object) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")


def _refuse_delete(self: Step, name: str) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")


# The frozen dataclass's own __setattr__ refuses only its fields on an instance of a
# subclass; these refuse any attribute, as for a decorated subclass with __slots__. The
# generated __init__ and dataclasses.replace set fields with object.__setattr__.
Step.__setattr__ = _refuse_set  # type: ignore[method-assign,assignment]
Step.__delattr__ = _refuse_delete  # type: ignore[method-assign,assignment]


def sort_steps(steps: list[Step]) -> list[Step]:
    """Phase order; inside a phase the ARP keys first, then by resource name."""

    def key(step: Step) -> tuple[int, int, str]:
        arp_first = {ARP_IGNORE_KEY: 0, ARP_ANNOUNCE_KEY: 1}.get(step.name, 2)
        return (int(step.phase), arp_first, step.resource)

    return sorted(steps, key=key)
