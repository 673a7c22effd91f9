"""fou/GUE receive ports of gue tunnels (``fou:<port>``, IPv4): added in ADD_TUNNELS
after the fou module is loaded, removed in REMOVE_TUNNELS when dsrctl added them and the
spec no longer names them. The value is the port's encapsulation, "gue"."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Protocol

from dsrctl.kinds.base import Desired, Plain, ResourceKind, Rich, Value
from dsrctl.model import HostState, ReadScope
from dsrctl.steps import Phase, Step
from state.ownership import Ownership, OwnershipRecord


def fou_id(port: int) -> str:
    return f"fou:{port}"


class FouWriter(Protocol):
    def add_fou_port(self, port: int, kind: str) -> None: ...

    def remove_fou_port(self, port: int) -> None: ...


class FouStep(Step):
    kind: ClassVar[str] = "fou"

    @property
    def port(self) -> int:
        return int(self.name)

    def apply(self, host: FouWriter) -> None:
        if self.before is not None:  # a port of another type is replaced
            host.remove_fou_port(self.port)
        if self.after is not None:
            host.add_fou_port(self.port, str(self.after))


class FouKind(ResourceKind):
    name = "fou"
    step = FouStep

    def way_back(self, desired: Desired, name: str, record: OwnershipRecord) -> None:
        if record.created and name.isdigit():
            desired.fou_ports[int(name)] = None

    def scope(self, scope: ReadScope, desired: Desired, ownership: Ownership) -> ReadScope:
        return dataclasses.replace(scope, fou_ports=tuple(desired.fou_ports))

    def add_desired(self, desired: Desired, plain: Plain, rich: Rich) -> None:
        for port, kind in desired.fou_ports.items():
            if kind is not None:
                plain[fou_id(port)] = rich[fou_id(port)] = kind

    def add_current(
        self, current: HostState, desired: Desired, ownership: Ownership, plain: Plain, rich: Rich
    ) -> None:
        for port in desired.fou_ports:
            kind = current.fou_ports.get(port)
            if kind is not None:
                plain[fou_id(port)] = rich[fou_id(port)] = kind

    def make_step(
        self, resource: str, before: Value | None, after: Value | None, desired: Desired
    ) -> Step:
        if after is None:
            note = "added by dsrctl, no longer in the spec"
            return FouStep(resource, before, after, Phase.REMOVE_TUNNELS, note=note)
        return FouStep(resource, before, after, Phase.ADD_TUNNELS)


KIND = FouKind()
