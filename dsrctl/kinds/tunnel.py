"""Decap devices of the [[tunnel]] tables (``tunnel:<name>``): {kind, external, up}.

Created (or, for a module's fallback device such as tunl0, set up) in ADD_TUNNELS, after
the modules are loaded and before the sysctls that name the device and the VIPs; a
device dsrctl created is deleted in REMOVE_TUNNELS, after the VIPs are removed and those
sysctls restored. A fallback device cannot be deleted: its way back is down, and it goes
with its module when dsrctl unloads that."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Protocol

from dsrctl.kinds.base import Desired, Plain, ResourceKind, Rich, Value
from dsrctl.model import HostState, ReadScope, TunnelState
from dsrctl.steps import Phase, Step
from state.ownership import Ownership, OwnershipRecord

# The module whose loading creates each fallback device (and whose unloading removes it).
FALLBACK_MODULES = {
    "tunl0": "ipip",
    "gre0": "ip_gre",
    "ip6tnl0": "ip6_tunnel",
    "ip6gre0": "ip6_gre",
}


def tunnel_id(name: str) -> str:
    return f"tunnel:{name}"


class TunnelWriter(Protocol):
    def change_tunnel(
        self, name: str, before: TunnelState | None, after: TunnelState | None
    ) -> None: ...


class TunnelStep(Step):
    kind: ClassVar[str] = "tunnel"

    def apply(self, host: TunnelWriter) -> None:
        host.change_tunnel(self.name, self.before, self.after)

    def show(self, value: Any) -> Any:
        return value.to_record() if isinstance(value, TunnelState) else value

    @classmethod
    def decode(cls, value: Any) -> Any:
        return None if value is None else TunnelState.from_record(value)


class TunnelKind(ResourceKind):
    name = "tunnel"
    step = TunnelStep

    def way_back(self, desired: Desired, name: str, record: OwnershipRecord) -> None:
        if record.created:
            desired.tunnels[name] = None
        elif record.original is not None:
            desired.tunnels[name] = TunnelState.from_record(record.original)

    def scope(self, scope: ReadScope, desired: Desired, ownership: Ownership) -> ReadScope:
        return dataclasses.replace(scope, tunnels=tuple(desired.tunnels))

    def leave_removed(self, desired: Desired, current: HostState) -> None:
        """A fallback device dsrctl brought (by loading its module) goes with the module;
        while the module stays loaded, the device stays too, down."""
        for name, value in list(desired.tunnels.items()):
            module = FALLBACK_MODULES.get(name)
            state = current.tunnels.get(name)
            if value is not None or module is None or state is None:
                continue
            if desired.modules.get(module, "stays") is not None:
                desired.tunnels[name] = dataclasses.replace(state, up=False)

    def add_desired(self, desired: Desired, plain: Plain, rich: Rich) -> None:
        for name, state in desired.tunnels.items():
            if state is not None:
                plain[tunnel_id(name)] = state.attributes()
                rich[tunnel_id(name)] = state

    def add_current(
        self, current: HostState, desired: Desired, ownership: Ownership, plain: Plain, rich: Rich
    ) -> None:
        for name in desired.tunnels:
            state = current.tunnels.get(name)
            if state is not None:
                plain[tunnel_id(name)] = state.attributes()
                rich[tunnel_id(name)] = state

    def make_step(
        self, resource: str, before: Value | None, after: Value | None, desired: Desired
    ) -> Step:
        if resource in desired.spec_resources:
            return TunnelStep(resource, before, after, Phase.ADD_TUNNELS)
        note = "created by dsrctl, no longer in the spec"
        if after is not None:
            note = "restore the state before dsrctl (or down until its module goes)"
        return TunnelStep(resource, before, after, Phase.REMOVE_TUNNELS, note=note)


KIND = TunnelKind()
