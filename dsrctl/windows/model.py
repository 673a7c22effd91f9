"""Windows resource ids, and the canonical Windows host data of
``providers.windows.model`` re-exported.

The host data (``VipAddress``, ``FirewallRuleState``, ``WindowsState``,
``WindowsReadScope``, ``observe``) is the Windows provider's own; the names are
re-exported here so that dsrctl code imports its Windows model from one place. What is
dsrctl's only is here: the ids that key the diff, the journal and the ownership records
(stable across versions). ``split_setting_id`` and ``observe`` in providers.windows.model
read them back:
  ``adapter:LO``                          the loopback adapter exists
  ``netsh:ipv4:LAN:weakhostreceive``      a per-interface netsh setting
  ``address:LO:192.0.2.100/32``           a VIP on the loopback adapter
  ``firewall:dsr-web``                    an inbound allow rule for the VIPs
Adapter names cannot contain ':' (Windows refuses it), so the ids split unambiguously.
"""

from __future__ import annotations

from providers.windows.model import (
    ADAPTER_PRESENT,
    FirewallRuleState,
    SettingValue,
    VipAddress,
    WindowsReadScope,
    WindowsState,
    observe,
    split_setting_id,
)

__all__ = [
    "ADAPTER_PRESENT",
    "FirewallRuleState",
    "SettingValue",
    "VipAddress",
    "WindowsReadScope",
    "WindowsState",
    "adapter_id",
    "observe",
    "rule_id",
    "setting_id",
    "split_setting_id",
    "vip_id",
]


def adapter_id(name: str) -> str:
    return f"adapter:{name}"


def setting_id(family: int, interface: str, keyword: str) -> str:
    return f"netsh:ipv{family}:{interface}:{keyword}"


def vip_id(interface: str, cidr: str) -> str:
    return f"address:{interface}:{cidr}"


def rule_id(name: str) -> str:
    return f"firewall:{name}"
