"""Canonical Windows host data: what the Windows provider reads and its writers take.

The provider turns netsh output into these objects at the boundary (addresses in
compressed form, prefixes as ints, ports and profiles sorted, keywords lower case), so
the planner compares plain values. Plain data and the standard library only: this module
imports nothing of ``dsrctl``; ``dsrctl.windows.model`` re-exports these names and adds
the ids it builds (``adapter_id``, ``setting_id``, ``vip_id``, ``rule_id``).

``observe`` and ``split_setting_id`` read the resource ids the provider is asked to
observe (see dsrctl.windows.model for the ids):
  ``adapter:LO``                          the loopback adapter exists
  ``netsh:ipv4:LAN:weakhostreceive``      a per-interface netsh setting
  ``address:LO:192.0.2.100/32``           a VIP on the loopback adapter
  ``firewall:dsr-web``                    an inbound allow rule for the VIPs
Adapter names cannot contain ':' (Windows refuses it), so the ids split unambiguously.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

SettingValue = str | int
ADAPTER_PRESENT = "present"


def split_setting_id(resource: str) -> tuple[int, str, str]:
    """``netsh:ipv4:LAN:metric`` -> (4, "LAN", "metric")."""
    _, family, rest = resource.split(":", 2)
    interface, _, keyword = rest.rpartition(":")
    return int(family.removeprefix("ipv")), interface, keyword


@dataclass(frozen=True)
class VipAddress:
    """A host address on the loopback adapter (mask 255.255.255.255 or /128)."""

    address: str  # compressed
    prefix: int
    # Set when dsrctl adds the address; None when read (netsh's address lists omit it), so
    # it takes no part in comparisons.
    skipassource: bool | None = field(default=None, compare=False)

    @property
    def version(self) -> int:
        return 6 if ":" in self.address else 4

    @property
    def cidr(self) -> str:
        return f"{self.address}/{self.prefix}"

    @property
    def mask(self) -> str:
        return str(ipaddress.IPv4Network(f"0.0.0.0/{self.prefix}").netmask)

    def plain(self) -> dict[str, Any]:
        return {"address": self.address, "prefix": self.prefix}

    def to_record(self) -> dict[str, Any]:
        return {**self.plain(), "skipassource": self.skipassource}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> VipAddress:
        skip = record.get("skipassource")
        return cls(
            str(record["address"]), int(record["prefix"]), None if skip is None else bool(skip)
        )

    def __str__(self) -> str:
        parts = [f"mask {self.mask}" if self.version == 4 else f"/{self.prefix}"]
        if self.skipassource:
            parts.append("skipassource")
        return ", ".join(parts)


@dataclass(frozen=True)
class FirewallRuleState:
    """One named inbound rule, as far as dsrctl can read it back and re-create it."""

    enabled: bool = True
    direction: str = "in"
    action: str = "allow"
    protocol: str = "tcp"
    localip: tuple[str, ...] = ("any",)
    localport: tuple[str, ...] = ("any",)
    remoteip: tuple[str, ...] = ("any",)
    remoteport: tuple[str, ...] = ("any",)
    profiles: tuple[str, ...] = ("domain", "private", "public")
    # Fields set to something dsrctl cannot re-create (program, service, group policy...).
    unmanaged: tuple[tuple[str, str], ...] = ()
    count: int = 1  # rules that carry this name (netsh allows duplicates)

    def plain(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "direction": self.direction,
            "action": self.action,
            "protocol": self.protocol,
            "localip": list(self.localip),
            "localport": list(self.localport),
            "remoteip": list(self.remoteip),
            "remoteport": list(self.remoteport),
            "profiles": list(self.profiles),
            "unmanaged": [list(pair) for pair in self.unmanaged],
            "count": self.count,
        }

    def to_record(self) -> dict[str, Any]:
        return self.plain()

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> FirewallRuleState:
        def strings(key: str) -> tuple[str, ...]:
            return tuple(str(item) for item in record.get(key, ["any"]))

        return cls(
            enabled=bool(record.get("enabled", True)),
            direction=str(record.get("direction", "in")),
            action=str(record.get("action", "allow")),
            protocol=str(record.get("protocol", "any")),
            localip=strings("localip"),
            localport=strings("localport"),
            remoteip=strings("remoteip"),
            remoteport=strings("remoteport"),
            profiles=tuple(str(p) for p in record.get("profiles", ["domain", "private", "public"])),
            unmanaged=tuple((str(k), str(v)) for k, v in record.get("unmanaged", [])),
            count=int(record.get("count", 1)),
        )

    def __str__(self) -> str:
        if self.count != 1:
            return f"{self.count} rules carry this name"
        text = (
            f"{self.action} {self.direction} {self.protocol} port {','.join(self.localport)} "
            f"to {','.join(self.localip)}"
        )
        if self.remoteip != ("any",):
            text += f" from {','.join(self.remoteip)}"
        if self.profiles != ("domain", "private", "public"):
            text += f", profiles {','.join(self.profiles)}"
        if not self.enabled:
            text += ", disabled"
        for key, value in self.unmanaged:
            text += f", {key}: {value}"
        return text


@dataclass(frozen=True)
class WindowsReadScope:
    """What the Windows provider must read: only what the spec and the records name."""

    profile: str
    interfaces: tuple[str, ...]  # adapters whose netsh settings matter
    families: tuple[int, ...]  # address families in play (4, 6)
    firewall_rules: tuple[str, ...] = ()


@dataclass
class WindowsState:
    """The DSR-relevant part of a Windows host at one moment. Keys are lower-cased names
    (Windows compares adapter and rule names without regard to case)."""

    adapters: dict[str, str] = field(default_factory=dict)  # lower name -> name as spelled
    # (family, lower name) -> keyword -> value ("enabled"/"disabled", metric int)
    settings: dict[tuple[int, str], dict[str, SettingValue]] = field(default_factory=dict)
    # (family, lower name) -> cidr -> address
    addresses: dict[tuple[int, str], dict[str, VipAddress]] = field(default_factory=dict)
    gateways: dict[str, tuple[str, ...]] = field(default_factory=dict)  # IPv4, lower name
    firewall: dict[str, FirewallRuleState | None] = field(default_factory=dict)  # lower name
    facts: dict[str, Any] = field(default_factory=dict)


def observe(state: WindowsState, resource: str) -> Any:
    """The current value of one resource in ``state``, or None when it is absent."""
    kind, _, name = resource.partition(":")
    if kind == "adapter":
        return ADAPTER_PRESENT if name.lower() in state.adapters else None
    if kind == "netsh":
        family, interface, keyword = split_setting_id(resource)
        return state.settings.get((family, interface.lower()), {}).get(keyword)
    if kind == "address":
        interface, _, cidr = name.partition(":")
        family = 6 if ":" in cidr else 4
        return state.addresses.get((family, interface.lower()), {}).get(cidr)
    if kind == "firewall":
        return state.firewall.get(name.lower())
    raise ValueError(f"unknown resource kind in {resource!r}")
