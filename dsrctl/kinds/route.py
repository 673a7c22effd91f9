"""Routes (``route:<table>:<type>:<cidr>``): the VIP ranges, each a local route in table
local on the interface (``route:local:local:198.18.5.0/24``, AnyIP: every address of
the range is local). Added in ADD_ADDRESSES after the ARP sysctls are hardened and
removed in REMOVE_ADDRESSES before they are relaxed, exactly like single VIPs: with
``arp_ignore=0`` the host would answer ARP for every address of the range."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from dsrctl.kinds.base import Desired, Plain, ResourceKind, Rich, Value
from dsrctl.model import HostState, ReadScope, RouteState, route_id, split_id
from dsrctl.steps import Phase, Step
from state.ownership import Ownership, OwnershipRecord

if TYPE_CHECKING:
    from providers.linux.changes import RouteChange


class RouteWriter(Protocol):
    def apply_route(self, step: RouteChange) -> None: ...


@dataclass(frozen=True)
class RouteStep(Step):
    kind: ClassVar[str] = "route"

    def apply(self, host: RouteWriter) -> None:
        host.apply_route(self)

    def show(self, value: Any) -> Any:
        if isinstance(value, RouteState):
            return value.to_record()
        return value

    @classmethod
    def decode(cls, value: Any) -> Any:
        if value is None:
            return None
        priority = value.get("priority")
        return RouteState(
            destination=value["destination"],
            device=value["device"],
            table=value.get("table", "local"),
            type=value.get("type", "local"),
            priority=None if priority is None else int(priority),
        )


def route_state(cidr: str, device: str) -> RouteState:
    """The local route that serves the range ``cidr`` on ``device``."""
    return RouteState(destination=cidr, device=device)


class RouteKind(ResourceKind):
    name = "route"
    step = RouteStep

    def way_back(self, desired: Desired, name: str, record: OwnershipRecord) -> None:
        # created routes are absent from desired.routes: the diff deletes them
        if not record.created:
            desired.released.append(route_id(name))
            cidr = name.rsplit(":", 1)[-1]
            desired.notes.append(
                f"the local route {cidr} is no longer in the spec but was there before "
                "dsrctl; it is left in place"
            )

    def scope(self, scope: ReadScope, desired: Desired, ownership: Ownership) -> ReadScope:
        keys = set(desired.routes)
        keys |= {split_id(r)[1] for r in ownership.records if r.startswith("route:")}
        return dataclasses.replace(scope, routes=tuple(sorted(keys)))

    def add_desired(self, desired: Desired, plain: Plain, rich: Rich) -> None:
        for key, state in desired.routes.items():
            resource = route_id(key)
            plain[resource] = state.attributes()
            rich[resource] = state

    def add_current(
        self, current: HostState, desired: Desired, ownership: Ownership, plain: Plain, rich: Rich
    ) -> None:
        """Only the routes dsrctl manages: the spec's and those it created."""
        keys = set(desired.routes)
        keys |= {
            split_id(r)[1]
            for r in ownership.records
            if r.startswith("route:") and ownership.created(r)
        }
        for key in sorted(keys):
            state = current.routes.get(key)
            if state is not None:
                resource = route_id(key)
                plain[resource] = state.attributes()
                rich[resource] = state

    def make_step(
        self, resource: str, before: Value | None, after: Value | None, desired: Desired
    ) -> Step:
        phase = Phase.REMOVE_ADDRESSES if after is None else Phase.ADD_ADDRESSES
        note = "added by dsrctl, no longer in the spec" if after is None else ""
        return RouteStep(resource, before, after, phase, note=note)


KIND = RouteKind()
