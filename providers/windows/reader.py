"""Read a Windows host into WindowsState through netsh: only what the scope names.

``query`` runs one read command and returns its result once netsh's exit code and text
say it succeeded (providers.windows.host maps failures to errors). Each function here
turns one command's output into canonical values.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable

from providers.errors import HostError
from providers.windows import commands, parse
from providers.windows.model import (
    FirewallRuleState,
    SettingValue,
    VipAddress,
    WindowsReadScope,
    WindowsState,
)
from providers.windows.runner import CommandResult

Query = Callable[[commands.Argv], CommandResult]

WEAK_HOST_KEYS = {"weakhostsend": "Weak Host Sends", "weakhostreceive": "Weak Host Receives"}
# Fields of a rule dsrctl reads into FirewallRuleState; any other field with a value other
# than its default is something dsrctl could not re-create (program, service, policy...).
RULE_FIELDS = {
    "Rule Name", "Enabled", "Direction", "Profiles", "LocalIP", "RemoteIP", "Protocol",
    "LocalPort", "RemotePort", "Action",
}  # fmt: skip
RULE_DEFAULTS = {"", "any", "no", "notrequired", "local setting"}
# The device of a loopback adapter: "Microsoft Loopback Adapter" up to Windows Server 2008 R2,
# "Microsoft KM-TEST Loopback Adapter" since; " #2" and so on for a second one.
LOOPBACK_DEVICE = re.compile(r"Microsoft (?:KM-TEST )?Loopback Adapter(?: #\d+)?", re.IGNORECASE)


def read_state(query: Query, scope: WindowsReadScope) -> WindowsState:
    state = WindowsState(adapters=read_adapters(query))
    present = [name for name in scope.interfaces if name.lower() in state.adapters]
    if scope.profile != "2003":
        for family in scope.families:
            for name in present:
                spelled = state.adapters[name.lower()]
                state.settings[(family, name.lower())] = read_settings(query, family, spelled)
    if 4 in scope.families:
        configs = read_ipv4(query, scope.profile)
        for name in present:
            config = configs.get(name.lower(), parse.Ipv4Config())
            settings = state.settings.setdefault((4, name.lower()), {})
            if config.dhcp is not None:
                settings["dhcp"] = "enabled" if config.dhcp else "disabled"
            if scope.profile == "2003" and config.metric is not None:
                settings["metric"] = config.metric
            state.addresses[(4, name.lower())] = {
                f"{address}/{prefix}": VipAddress(address, prefix)
                for address, prefix in config.addresses
            }
            state.gateways[name.lower()] = tuple(config.gateways)
    if 6 in scope.families:
        found = read_ipv6(query)
        for name in present:
            state.addresses[(6, name.lower())] = {
                f"{address}/128": VipAddress(address, 128)
                for address in found.get(name.lower(), [])
            }
    if scope.profile != "2003":
        for rule in scope.firewall_rules:
            state.firewall[rule.lower()] = read_rule(query, rule)
    return state


def read_adapters(query: Query) -> dict[str, str]:
    result = query(commands.show_adapters())
    return {row.name.lower(): row.name for row in parse.adapters(result.output, result.command)}


def read_settings(query: Query, family: int, name: str) -> dict[str, SettingValue]:
    result = query(commands.show_interface(family, name))
    text, command = result.output, result.command
    values = parse.interface_detail(text, command, [*WEAK_HOST_KEYS.values(), "Metric"])
    settings: dict[str, SettingValue] = {
        keyword: parse.enabled(values[key], command, text)
        for keyword, key in WEAK_HOST_KEYS.items()
    }
    settings["metric"] = parse.metric(values["Metric"], command, text)
    if "Use Automatic Metric" in values:  # a fact for the plan's notes, not a managed setting
        settings["automatic_metric"] = parse.enabled(values["Use Automatic Metric"], command, text)
    return settings


def read_ipv4(query: Query, profile: str) -> dict[str, parse.Ipv4Config]:
    result = query(commands.show_addresses(profile, 4))
    if profile == "2003" and "Subnet Prefix:" in result.output:
        raise HostError(
            f"`{result.command}` printed the format of Windows Server 2008 and later: this "
            'host is not Windows Server 2003; set windows.profile = "2008+"'
        )
    configs = parse.ipv4_config(result.output, result.command)
    return {name.lower(): config for name, config in configs.items()}


def read_ipv6(query: Query) -> dict[str, list[str]]:
    result = query(commands.show_addresses("2008+", 6))
    found = parse.ipv6_addresses(result.output, result.command)
    return {name.lower(): addresses for name, addresses in found.items()}


def read_rule(query: Query, name: str) -> FirewallRuleState | None:
    result = query(commands.show_rule(name))
    rules = parse.firewall_rules(result.output, result.command)
    if not rules:
        return None
    state = rule_state(rules[0], result.command, result.output)
    if len(rules) > 1:
        state = dataclasses.replace(state, count=len(rules))
    return state


def read_rules(query: Query) -> list[tuple[str, FirewallRuleState]]:
    """Every firewall rule, (name as spelled, state), in netsh's order. Several rules can
    carry one name (netsh allows it): each is an entry of its own."""
    result = query(commands.show_rules())
    return [
        (fields["Rule Name"], rule_state(fields, result.command, result.output))
        for fields in parse.firewall_rules(result.output, result.command)
    ]


def read_loopback_adapters(query: Query) -> list[str]:
    """Names of the adapters whose device is a Microsoft loopback adapter (by the device
    description in ``ipconfig /all``), in the order ipconfig lists them."""
    result = query(commands.ipconfig_all())
    described = parse.ipconfig_descriptions(result.output, result.command)
    return [name for name, device in described.items() if LOOPBACK_DEVICE.fullmatch(device)]


def rule_state(fields: dict[str, str], command: str, text: str) -> FirewallRuleState:
    enabled = fields["Enabled"]
    if enabled not in ("Yes", "No"):
        raise parse.unreadable(command, text, f"Enabled: Yes or No (got {enabled!r})")
    return FirewallRuleState(
        enabled=enabled == "Yes",
        direction=fields["Direction"].lower(),
        action=fields["Action"].lower(),
        protocol=fields["Protocol"].lower(),
        localip=_addresses(fields["LocalIP"]),
        localport=_ports(fields.get("LocalPort", "Any")),
        remoteip=_addresses(fields["RemoteIP"]),
        remoteport=_ports(fields.get("RemotePort", "Any")),
        profiles=tuple(sorted(p.strip().lower() for p in fields["Profiles"].split(","))),
        unmanaged=tuple(
            (key, value)
            for key, value in fields.items()
            if key not in RULE_FIELDS and value.strip().lower() not in RULE_DEFAULTS
        ),
    )


def _addresses(value: str) -> tuple[str, ...]:
    items = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        try:
            network = ipaddress.ip_network(item, strict=False)
        except ValueError:
            items.append(item.lower())  # a keyword (LocalSubnet) or a range: kept as printed
            continue
        full = 32 if network.version == 4 else 128
        host = network.prefixlen == full
        items.append(network.network_address.compressed if host else network.compressed)
    if items == ["any"]:
        return ("any",)
    return tuple(sorted(items, key=_address_order))


def _address_order(item: str) -> tuple[int, int, str]:
    try:
        address = ipaddress.ip_address(item)
    except ValueError:
        return (9, 0, item)
    return (address.version, int(address), item)


def _ports(value: str) -> tuple[str, ...]:
    items = [part.strip().lower() for part in value.split(",") if part.strip()]
    if not items or items == ["any"]:
        return ("any",)
    return tuple(sorted(items, key=lambda p: (0, int(p), p) if p.isdigit() else (1, 0, p)))
