"""Windows plan steps: netsh settings, VIPs, firewall rules, the loopback adapter, manual steps.

Each step calls one WindowsHost method (providers.windows.host), which runs netsh or
devcon. As on Linux, a step carries the observed ``before`` and the wanted ``after``, and
its inverse swaps them, which is how rollback restores the observed values.

Phases (dsrctl.steps.Phase):
  ADAPTER           create the loopback adapter (devcon), or the manual step for it
  REMOVE_ADDRESSES  VIPs dropped from the spec (dsrctl added them)
  HARDEN            weak-host settings and the interface metric
  ADD_ADDRESSES     the loopback to static addressing, then the VIPs
  RELAX             settings dropped from the spec back to their value before dsrctl
  FIREWALL          rules that allow the service ports to the VIPs

A manual step is what netsh cannot do. A *blocking* one (the adapter is missing and no
devcon is configured) stops apply in the provider's preflight, before anything changes;
a non-blocking one (the 2003 interface metric, an address on the loopback adapter that
dsrctl did not add) is left to the operator, and drift keeps reporting it until it is done.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from dsrctl.errors import HostError
from dsrctl.model import split_address_id
from dsrctl.steps import Step
from dsrctl.windows.model import (
    FirewallRuleState,
    SettingValue,
    VipAddress,
    split_setting_id,
)
from providers.windows import changes


class WindowsWriter(Protocol):
    def set_interface(
        self, family: int, interface: str, keyword: str, value: SettingValue
    ) -> None: ...

    def disable_dhcp(self, interface: str, vip: VipAddress) -> None: ...

    def enable_dhcp(self, interface: str) -> None: ...

    def add_address(self, interface: str, vip: VipAddress) -> None: ...

    def delete_address(self, interface: str, vip: VipAddress) -> None: ...

    def add_rule(self, name: str, rule: FirewallRuleState) -> None: ...

    def delete_rule(self, name: str) -> None: ...

    def create_loopback(self, name: str, devcon: str) -> None: ...

    def remove_loopback(self, name: str, devcon: str) -> None: ...

    def defer_manual(self, resource: str) -> None: ...


@dataclass(frozen=True)
class AdapterStep(Step):
    """Create the loopback adapter with devcon; its inverse removes what this run created."""

    devcon: str = ""
    kind: ClassVar[str] = changes.ADAPTER

    def apply(self, host: WindowsWriter) -> None:
        if self.before is None and self.after is not None:
            host.create_loopback(self.name, self.devcon)
        elif self.before is not None and self.after is None:
            host.remove_loopback(self.name, self.devcon)

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "devcon": self.devcon}


@dataclass(frozen=True)
class NetshSetStep(Step):
    """``netsh interface ipv4|ipv6 set interface interface="X" <keyword>=<value>``."""

    kind: ClassVar[str] = "netsh"

    def apply(self, host: WindowsWriter) -> None:
        if self.after is None:
            # The interface did not exist when planned (dsrctl creates the adapter in the
            # same run): removing the adapter undoes the setting, there is no value to put back.
            return
        family, interface, keyword = split_setting_id(self.resource)
        host.set_interface(family, interface, keyword, self.after)


@dataclass(frozen=True)
class DhcpStep(Step):
    """Switch the loopback from DHCP (the default of a new adapter) to static addressing.

    netsh turns DHCP off only with ``set address source=static`` and an address: the
    step sets ``vip`` that way and deletes it again, so that every VIP is then added the
    same way (with skipassource). The inverse turns DHCP back on.
    """

    vip: str = ""  # the CIDR used for the switch
    kind: ClassVar[str] = "dhcp"

    def apply(self, host: WindowsWriter) -> None:
        _, interface, _ = split_setting_id(self.resource)
        if self.after == "disabled":
            address, _, prefix = self.vip.partition("/")
            host.disable_dhcp(interface, VipAddress(address, int(prefix)))
        elif self.after == "enabled":
            host.enable_dhcp(interface)

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "vip": self.vip}


@dataclass(frozen=True)
class VipStep(Step):
    """Add a VIP to the loopback adapter, or delete it."""

    kind: ClassVar[str] = changes.VIP

    @property
    def interface(self) -> str:
        return split_address_id(self.resource)[0]

    def apply(self, host: WindowsWriter) -> None:
        if self.after is not None and self.before is None:
            host.add_address(self.interface, self.after)
        elif self.after is None and self.before is not None:
            host.delete_address(self.interface, self.before)

    def show(self, value: Any) -> Any:
        return value.to_record() if isinstance(value, VipAddress) else value

    @classmethod
    def decode(cls, value: Any) -> Any:
        return None if value is None else VipAddress.from_record(value)


@dataclass(frozen=True)
class FirewallRuleStep(Step):
    """Add, replace or delete the inbound rule with this name."""

    kind: ClassVar[str] = changes.FIREWALL

    def apply(self, host: WindowsWriter) -> None:
        if self.before is not None:
            host.delete_rule(self.name)  # every rule of that name: netsh allows duplicates
        if self.after is not None:
            host.add_rule(self.name, self.after)

    def show(self, value: Any) -> Any:
        return value.plain() if isinstance(value, FirewallRuleState) else value

    @classmethod
    def decode(cls, value: Any) -> Any:
        return None if value is None else FirewallRuleState.from_record(value)


@dataclass(frozen=True)
class ManualStep(Step):
    """What netsh cannot do, with the exact instructions for the operator."""

    blocking: bool = False
    instructions: str = ""
    kind: ClassVar[str] = changes.MANUAL

    def apply(self, host: WindowsWriter) -> None:
        if self.blocking:  # preflight refuses these first; this is the last line of defence
            raise HostError(f"{self.resource} needs a manual step: {self.instructions}")
        if self.note != "rollback":
            host.defer_manual(self.resource)

    def to_json(self) -> dict[str, Any]:
        return {
            **super().to_json(),
            "manual": True,
            "blocking": self.blocking,
            "instructions": self.instructions,
        }


# Inside a phase: weak host before the metric, DHCP off before the first VIP.
_RANK = {"dhcp": 0, "weakhostreceive": 0, "weakhostsend": 0, "metric": 1}


def sort_windows_steps(steps: list[Step]) -> list[Step]:
    def key(step: Step) -> tuple[int, int, str]:
        rank = 1
        if step.resource.startswith("netsh:"):
            rank = _RANK.get(split_setting_id(step.resource)[2], 1)
        return (int(step.phase), rank, step.resource)

    return sorted(steps, key=key)


# The journal kinds of this module (dsrctl.kinds.registry imports it by name, on use).
STEPS: tuple[type[Step], ...] = (
    AdapterStep,
    NetshSetStep,
    DhcpStep,
    VipStep,
    FirewallRuleStep,
    ManualStep,
)


# WindowsHost.preflight reads the steps of these kinds through the Protocols of
# providers.windows.changes: mypy checks here that each class gives what they name.
PREFLIGHT: tuple[
    type[changes.AdapterChange],
    type[changes.VipChange],
    type[changes.RuleChange],
    type[changes.ManualChange],
] = (AdapterStep, VipStep, FirewallRuleStep, ManualStep)
