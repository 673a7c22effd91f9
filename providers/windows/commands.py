"""The netsh and devcon command lines dsrctl runs, per profile, in netsh's keyword syntax.

Every name is passed as ``keyword="name"``: the spec refuses names with a double quote,
so the quotes always delimit the whole name, spaces and non-ASCII characters included.
Windows Server 2003 has only the ``interface ip`` context, with ``addr=`` instead of
``address=``, no ``skipassource``, no weak-host keywords and no ``advfirewall``.
"""

from __future__ import annotations

import os

from providers.windows.model import FirewallRuleState, SettingValue, VipAddress

NETSH = "netsh"
IPCONFIG = "ipconfig"
LOOPBACK_HARDWARE_ID = "*MSLOOP"
Argv = tuple[str, ...]


def quoted(name: str) -> str:
    return f'"{name}"'


def _context(profile: str, family: int) -> Argv:
    if family == 6:
        return (NETSH, "interface", "ipv6")
    return (NETSH, "interface", "ip") if profile == "2003" else (NETSH, "interface", "ipv4")


def _name_keyword(profile: str, family: int) -> str:
    # ipv4 address commands take name=, ipv6 ones interface= (netsh's own inconsistency).
    return "interface" if family == 6 else "name"


def show_adapters() -> Argv:
    return (NETSH, "interface", "show", "interface")


def show_interface(family: int, name: str) -> Argv:
    return (NETSH, "interface", f"ipv{family}", "show", "interfaces", f"interface={quoted(name)}")


def show_addresses(profile: str, family: int) -> Argv:
    verb = "address" if profile == "2003" else "addresses"
    return (*_context(profile, family), "show", verb)


def set_interface(family: int, name: str, keyword: str, value: SettingValue) -> Argv:
    return (
        NETSH,
        "interface",
        f"ipv{family}",
        "set",
        "interface",
        f"interface={quoted(name)}",
        f"{keyword}={value}",
    )


def add_address(profile: str, name: str, vip: VipAddress) -> Argv:
    words = [*_context(profile, vip.version), "add", "address"]
    words.append(f"{_name_keyword(profile, vip.version)}={quoted(name)}")
    if vip.version == 6:
        words.append(f"address={vip.cidr}")
    elif profile == "2003":
        words += [f"addr={vip.address}", f"mask={vip.mask}"]
    else:
        words += [f"address={vip.address}", f"mask={vip.mask}"]
    if profile != "2003":
        words.append("skipassource=true")  # never pick the VIP as a source address
    return tuple(words)


def delete_address(profile: str, name: str, vip: VipAddress) -> Argv:
    keyword = "addr" if profile == "2003" and vip.version == 4 else "address"
    return (
        *_context(profile, vip.version),
        "delete",
        "address",
        f"{_name_keyword(profile, vip.version)}={quoted(name)}",
        f"{keyword}={vip.address}",
    )


def set_static(profile: str, name: str, vip: VipAddress) -> Argv:
    keyword = "addr" if profile == "2003" else "address"
    return (
        *_context(profile, 4),
        "set",
        "address",
        f"name={quoted(name)}",
        "source=static",
        f"{keyword}={vip.address}",
        f"mask={vip.mask}",
        "gateway=none",
    )


def set_dhcp(profile: str, name: str) -> Argv:
    return (*_context(profile, 4), "set", "address", f"name={quoted(name)}", "source=dhcp")


def rename_adapter(old: str, new: str) -> Argv:
    return (NETSH, "interface", "set", "interface", f"name={quoted(old)}", f"newname={quoted(new)}")


def show_rule(name: str) -> Argv:
    return (NETSH, "advfirewall", "firewall", "show", "rule", f"name={quoted(name)}", "verbose")


def show_rules() -> Argv:
    """Every firewall rule: `dsrctl import` looks for the ones that allow traffic to the VIPs."""
    return (NETSH, "advfirewall", "firewall", "show", "rule", "name=all", "verbose")


def ipconfig_all() -> Argv:
    """Adapter names with their device descriptions (how `dsrctl import` finds the loopback
    adapter: netsh does not show which device an adapter is)."""
    return (IPCONFIG, "/all")


def delete_rule(name: str) -> Argv:
    return (NETSH, "advfirewall", "firewall", "delete", "rule", f"name={quoted(name)}")


def add_rule(name: str, rule: FirewallRuleState) -> Argv:
    words = [
        NETSH,
        "advfirewall",
        "firewall",
        "add",
        "rule",
        f"name={quoted(name)}",
        f"dir={rule.direction}",
        f"action={rule.action}",
        f"protocol={rule.protocol.upper() if rule.protocol in ('tcp', 'udp') else rule.protocol}",
    ]
    for keyword, values in (
        ("localip", rule.localip),
        ("localport", rule.localport),
        ("remoteip", rule.remoteip),
        ("remoteport", rule.remoteport),
    ):
        if values != ("any",):
            words.append(f"{keyword}={','.join(values)}")
    profiles = (
        "any" if rule.profiles == ("domain", "private", "public") else ",".join(rule.profiles)
    )
    words += [f"profile={profiles}", f"enable={'yes' if rule.enabled else 'no'}"]
    return tuple(words)


def netloop_inf() -> str:
    """%windir%\\inf\\netloop.inf, expanded here because no shell runs the command."""
    # Windows environment names are case-insensitive; os.environ upper-cases them there.
    windir = os.environ.get("SYSTEMROOT") or os.environ.get("WINDIR") or r"C:\Windows"
    return windir.rstrip("\\") + r"\inf\netloop.inf"


def devcon_install(devcon: str) -> Argv:
    return (devcon, "install", netloop_inf(), LOOPBACK_HARDWARE_ID)


def devcon_find(devcon: str) -> Argv:
    return (devcon, "find", LOOPBACK_HARDWARE_ID)


def devcon_remove(devcon: str, instance: str) -> Argv:
    return (devcon, "remove", f"@{instance}")
