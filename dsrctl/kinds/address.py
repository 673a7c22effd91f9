"""Addresses on an interface (``address:<interface>:<cidr>``), the VIPs: added in
ADD_ADDRESSES after the ARP sysctls are hardened, removed in REMOVE_ADDRESSES before
they are relaxed. The one batchable kind: neighbouring steps run as one netlink batch."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from dsrctl.kinds.base import Desired, Plain, ResourceKind, Rich, Value
from dsrctl.model import AddressState, HostState, ReadScope, address_id, split_address_id
from dsrctl.steps import Phase, Step
from state.ownership import Ownership, OwnershipRecord

if TYPE_CHECKING:
    from providers.linux.changes import AddressChange


class AddressWriter(Protocol):
    def apply_addresses(self, steps: Sequence[AddressChange]) -> list[BaseException | None]: ...


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


class AddressKind(ResourceKind):
    name = "address"
    step = AddressStep

    def way_back(self, desired: Desired, name: str, record: OwnershipRecord) -> None:
        # created addresses are absent from desired.addresses: the diff deletes them
        if not record.created:
            interface, _, cidr = name.partition(":")
            desired.released.append(address_id(interface, cidr))
            desired.notes.append(
                f"{cidr} on {interface} is no longer in the spec but was there before "
                "dsrctl; it is left in place"
            )

    def scope(self, scope: ReadScope, desired: Desired, ownership: Ownership) -> ReadScope:
        interfaces = sorted(
            {split_address_id(r)[0] for r in ownership.records if r.startswith("address:")}
            - {scope.interface}
        )
        return dataclasses.replace(scope, interfaces=tuple(interfaces))

    def add_desired(self, desired: Desired, plain: Plain, rich: Rich) -> None:
        for interface, addresses in desired.addresses.items():
            for cidr, state in addresses.items():
                resource = address_id(interface, cidr)
                plain[resource] = state.attributes()
                rich[resource] = state

    def add_current(
        self, current: HostState, desired: Desired, ownership: Ownership, plain: Plain, rich: Rich
    ) -> None:
        """Only the addresses dsrctl manages: the spec's and those it created."""
        # resource id -> (interface, cidr), without splitting 10,000 ids back apart
        managed = {
            address_id(iface, cidr): (iface, cidr)
            for iface, cidrs in desired.addresses.items()
            for cidr in cidrs
        }
        for resource in ownership.records:
            owned = resource.startswith("address:") and ownership.created(resource)
            if owned and resource not in managed:
                managed[resource] = split_address_id(resource)
        empty: dict[str, AddressState] = {}
        for resource in sorted(managed):
            interface, cidr = managed[resource]
            state = current.addresses.get(interface, empty).get(cidr)
            if state is not None:
                plain[resource] = state.attributes()
                rich[resource] = state

    def make_step(
        self, resource: str, before: Value | None, after: Value | None, desired: Desired
    ) -> Step:
        phase = Phase.REMOVE_ADDRESSES if after is None else Phase.ADD_ADDRESSES
        note = "added by dsrctl, no longer in the spec" if after is None else ""
        return AddressStep(resource, before, after, phase, note=note)

    def warnings(self, desired: Desired, current: HostState) -> list[str]:
        """A VIP held with a wider prefix captures a whole subnet: say so loudly."""
        warnings = []
        for interface, addresses in desired.addresses.items():
            wanted = {state.address for state in addresses.values()}
            for state in current.addresses.get(interface, {}).values():
                full = 32 if state.version == 4 else 128
                if state.address in wanted and state.prefix != full:
                    warnings.append(
                        f"WARNING: {interface} holds {state.cidr}: a prefix wider than /{full} "
                        f"on {interface} captures the whole subnet; dsrctl did not add it and "
                        f"will not remove it; remove it by hand (ip addr del {state.cidr} dev "
                        f"{interface})"
                    )
        return warnings


KIND = AddressKind()
