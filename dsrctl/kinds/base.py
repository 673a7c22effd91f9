"""The desired state and the shape of a resource kind (the registry lists the kinds).

A kind fills the flat maps the diff compares, ``resource id -> value``: the *plain*
value is what is compared (plain data: 1 and True differ), the *rich* value is what the
step carries (``before``/``after``). Each kind fills them in one loop of its own, so the
diff of 10,000 VIPs pays no per-resource dispatch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from dsrctl.model import (
    AddressState,
    FileState,
    HostState,
    MssClamp,
    ReadScope,
    RouteState,
    SysctlValue,
    TunnelState,
)
from dsrctl.steps import Step
from state.ownership import Ownership, OwnershipRecord

# What a step carries: a sysctl value, an address, a file, a link target or DIRECTORY
# (the last two are strings, like a string sysctl value), a route, a decap device (a
# module's LOADED and a fou port's type are strings too), or dsrctl's nftables table.
Value = SysctlValue | AddressState | FileState | RouteState | TunnelState | MssClamp
# What the diff compares: a sysctl value or link target as is; an address's or a file's
# managed attributes as a dict of plain data.
PlainValue = SysctlValue | dict[str, object]
Plain = dict[str, PlainValue]  # resource id -> compared value
Rich = dict[str, Value]  # resource id -> the value a step carries


@dataclass
class Desired:
    sysctls: dict[str, SysctlValue] = field(default_factory=dict)
    # sysctls the spec dropped: restore to the value recorded before dsrctl changed them
    restores: dict[str, SysctlValue] = field(default_factory=dict)
    # interface -> cidr -> state; dropped addresses dsrctl created are simply not here
    addresses: dict[str, dict[str, AddressState]] = field(default_factory=dict)
    # path -> wanted file; None means the file must not exist (dsrctl created it)
    files: dict[str, FileState | None] = field(default_factory=dict)
    # resources dsrctl once managed, owns no longer and leaves as they are
    released: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # resources the spec itself names (not restores): recorded on apply
    spec_resources: set[str] = field(default_factory=set)
    # path -> link target, or None: the link must not exist (dsrctl created it)
    symlinks: dict[str, str | None] = field(default_factory=dict)
    # path -> DIRECTORY, or None: the directory must go (dsrctl created it)
    dirs: dict[str, str | None] = field(default_factory=dict)
    # resource -> what its step does besides (e.g. "then systemctl daemon-reload")
    step_notes: dict[str, str] = field(default_factory=dict)
    # route key (RouteState.key) -> wanted route: the VIP ranges; dropped routes dsrctl
    # created are simply not here
    routes: dict[str, RouteState] = field(default_factory=dict)
    # nftables table of dsrctl's -> wanted clamp, or None: the table must go (dsrctl
    # created it); only "mss" (dsrctl/kinds/mss.py)
    mss: dict[str, MssClamp | None] = field(default_factory=dict)
    # [[tunnel]]: kernel module -> LOADED, or None: unload it (dsrctl loaded it)
    modules: dict[str, str | None] = field(default_factory=dict)
    # decap device -> wanted state, or None: delete it (dsrctl created it)
    tunnels: dict[str, TunnelState | None] = field(default_factory=dict)
    # fou port -> "gue", or None: remove it (dsrctl added it)
    fou_ports: dict[int, str | None] = field(default_factory=dict)


class ResourceKind(Protocol):
    """One sort of resource. Resource ids are ``"<name>:<rest>"``; ``name`` is also the
    journal kind of ``step`` (``step.kind``), whose ``decode`` reads a value back from a
    journal record and whose ``inverse`` undoes it. Kinds subclass this Protocol to inherit
    the no-op defaults; mypy refuses a kind that lacks one of the rest."""

    @property
    def name(self) -> str: ...

    @property
    def step(self) -> type[Step]: ...

    def way_back(self, desired: Desired, name: str, record: OwnershipRecord) -> None:
        """A resource of this kind that dsrctl managed and the spec no longer names
        (``name``: the id without its prefix): put in ``desired`` what undoes dsrctl's
        change (delete what it created, restore the recorded original) or release it."""
        ...

    def scope(self, scope: ReadScope, desired: Desired, ownership: Ownership) -> ReadScope:
        """``scope`` with what the provider must read for this kind."""
        ...

    def leave_removed(self, desired: Desired, current: HostState) -> None:
        """Before the maps: drop from ``desired`` what the host no longer has and dsrctl
        must not bring back."""
        return None

    def add_desired(self, desired: Desired, plain: Plain, rich: Rich) -> None:
        """The wanted resources of this kind that must exist, into both maps."""
        ...

    def add_current(
        self, current: HostState, desired: Desired, ownership: Ownership, plain: Plain, rich: Rich
    ) -> None:
        """The host's resources of this kind that dsrctl manages, into both maps."""
        ...

    def make_step(
        self, resource: str, before: Value | None, after: Value | None, desired: Desired
    ) -> Step:
        """The step for one differing resource: its class, phase and note."""
        ...

    def warnings(self, desired: Desired, current: HostState) -> list[str]:
        """Plan notes about the host beyond the steps."""
        return []


def persisted_note(kind: str, resource: str, after: Value | None, desired: Desired) -> str:
    """The note of a file, link or directory step: where a resource outside the spec comes
    from, and what the step does besides (a reload)."""
    notes = [desired.step_notes.get(resource, "")]
    if resource not in desired.spec_resources:
        what = "content" if kind == "file" else "link"
        notes.insert(0, f"restore the {what} before dsrctl" if after else "created by dsrctl")
    return "; ".join(n for n in notes if n)
