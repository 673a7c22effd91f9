"""The ``[windows]`` table of the spec: parse, validate, canonicalise into a WindowsSpec.

Pure, like the rest of the spec: no host access. Whether the named adapters exist and
whether devcon is there is the provider's check (``providers.windows.host``), which runs
before anything is read or changed.

Names end up inside netsh keyword arguments (``name="LO"``), so anything netsh cannot
take inside double quotes is refused here, with the reason.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from dsrctl.errors import MISSING, SpecError
from dsrctl.schema import Table, type_name

PROFILES = ("2008+", "2003")
DEFAULT_PROFILE = "2008+"
DEFAULT_METRIC = 254
METRIC_RANGE = (1, 9999)
PROTOCOLS = ("tcp", "udp")
MAX_NAME = 255  # interface aliases and rule names: IF_MAX_STRING_SIZE less the NUL
# Windows refuses these in a network connection name (as in file names).
CONNECTION_NAME_FORBIDDEN = '\\/:*?"<>|'
_WINDOWS_ABSOLUTE = re.compile(r"^(?:[A-Za-z]:\\|\\\\[^\\]+\\[^\\]+\\)")


@dataclass(frozen=True)
class FirewallRule:
    name: str
    protocol: str  # "tcp" or "udp"
    ports: tuple[int, ...]  # sorted, unique


@dataclass(frozen=True)
class WindowsSpec:
    loopback: str
    uplinks: tuple[str, ...]
    profile: str = DEFAULT_PROFILE
    metric: int = DEFAULT_METRIC
    devcon: str | None = None
    firewall: tuple[FirewallRule, ...] = ()

    @property
    def legacy(self) -> bool:
        """Windows Server 2003: netsh 'interface ip', no weak-host keywords, no advfirewall."""
        return self.profile == "2003"


def parse_windows(table: Table, addresses: Sequence[IPv4Address | IPv6Address]) -> WindowsSpec:
    """The [windows] table; ``addresses`` are the spec's VIPs (the 2003 profile takes IPv4
    only). The VIPs come in as addresses so that this module needs nothing of dsrctl.spec,
    which imports it."""
    profile = _parse_profile(table)
    loopback = table.string("loopback", required=True)
    problem = connection_name_problem(loopback)
    if problem:
        raise table.error("loopback", loopback, problem)
    uplinks = _parse_uplinks(table, loopback, required=profile != "2003")
    metric = table.integer("metric", DEFAULT_METRIC)
    low, high = METRIC_RANGE
    if not low <= metric <= high:
        raise table.error(
            "metric",
            metric,
            f"out of range: an interface metric is {low}-{high} ({DEFAULT_METRIC} is recommended)",
        )
    devcon = table.optional_string("devcon")
    if devcon is not None:
        problem = devcon_problem(devcon)
        if problem:
            raise table.error("devcon", devcon, problem)
    firewall = _parse_firewall(table)
    table.finish()
    if profile == "2003":
        ipv6 = [address.compressed for address in addresses if address.version == 6]
        if ipv6:
            raise table.error(
                "profile",
                profile,
                "the 2003 profile manages IPv4 VIPs only (its netsh 'interface ip' context is "
                f'IPv4); remove the IPv6 VIP(s) {", ".join(ipv6)} or use "2008+"',
            )
    return WindowsSpec(
        loopback=loopback,
        uplinks=uplinks,
        profile=profile,
        metric=metric,
        devcon=devcon,
        firewall=firewall,
    )


def _parse_profile(table: Table) -> str:
    profile = table.string("profile", DEFAULT_PROFILE)
    if profile in PROFILES:
        return profile
    if re.fullmatch(r"20(0[89]|1[0-9]|2[0-9])(\s*r2)?\+?", profile.strip().lower()):
        hint = 'use "2008+" for Windows Server 2008 and every later version'
    else:
        close = difflib.get_close_matches(profile, PROFILES, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        hint += 'known profiles: "2008+" (default), "2003"'
    raise table.error("profile", profile, f"unknown profile; {hint}")


def _parse_uplinks(table: Table, loopback: str, *, required: bool) -> tuple[str, ...]:
    key = table.key("uplinks")
    value = table.raw("uplinks")
    if value is MISSING:
        if required:
            raise table.error(
                "uplinks",
                MISSING,
                "required key is missing (an array of the adapter names that receive VIP "
                'traffic, e.g. ["LAN"]): they need weak-host receive',
            )
        return ()
    if not isinstance(value, list):
        raise table.error("uplinks", value, f"must be an array of strings, not {type_name(value)}")
    if required and not value:
        raise table.error(
            "uplinks", value, "at least one uplink is needed: weak-host receive is set on it"
        )
    seen: dict[str, str] = {}
    for index, name in enumerate(value):
        where = f"{key}[{index}]"
        if not isinstance(name, str):
            raise SpecError(table.path, where, name, f"must be a string, not {type_name(name)}")
        problem = connection_name_problem(name)
        if problem:
            raise SpecError(table.path, where, name, problem)
        if name.lower() == loopback.lower():
            raise SpecError(
                table.path, where, name, "the loopback adapter cannot also be an uplink"
            )
        if name.lower() in seen:
            raise SpecError(
                table.path,
                where,
                name,
                f"duplicate uplink (already given as {seen[name.lower()]!r})",
            )
        seen[name.lower()] = name
    return tuple(value)


def _parse_firewall(table: Table) -> tuple[FirewallRule, ...]:
    rules: list[FirewallRule] = []
    seen: dict[str, str] = {}
    for rule_table in table.tables("firewall"):
        rule = _parse_rule(rule_table)
        if rule.name.lower() in seen:
            raise rule_table.error(
                "name",
                rule.name,
                f"duplicate rule name (already given at {seen[rule.name.lower()]}); netsh "
                "matches rule names without regard to case",
            )
        seen[rule.name.lower()] = rule_table.keypath
        rules.append(rule)
    return tuple(rules)


def _parse_rule(table: Table) -> FirewallRule:
    name = table.string("name", required=True)
    problem = rule_name_problem(name)
    if problem:
        raise table.error("name", name, problem)
    protocol = table.string("protocol", "tcp")
    if protocol.lower() not in PROTOCOLS:
        raise table.error("protocol", protocol, "must be 'tcp' or 'udp'")
    ports = _parse_ports(table)
    table.finish()
    return FirewallRule(name=name, protocol=protocol.lower(), ports=ports)


def _parse_ports(table: Table) -> tuple[int, ...]:
    value = table.raw("ports")
    if value is MISSING:
        raise table.error("ports", MISSING, "required key is missing (an array of port numbers)")
    if not isinstance(value, list) or not value:
        raise table.error("ports", value, "must be a non-empty array of port numbers")
    for port in value:
        if isinstance(port, bool) or not isinstance(port, int):
            raise table.error("ports", value, f"a port must be an integer, not {type_name(port)}")
        if not 1 <= port <= 65535:
            raise table.error("ports", value, f"port {port} is out of range (1-65535)")
    duplicates = sorted({port for port in value if value.count(port) > 1})
    if duplicates:
        raise table.error("ports", value, f"duplicate port(s): {duplicates}")
    return tuple(sorted(value))


def _name_problem(name: str, what: str) -> str | None:
    if not name:
        return f"{what} cannot be empty"
    if name != name.strip():
        return f"{what} cannot begin or end with a space (netsh would not see it)"
    if len(name) > MAX_NAME:
        return f"{what} is at most {MAX_NAME} characters"
    if '"' in name:
        return f'netsh cannot take a {what} with a double quote (") in it'
    if any(not char.isprintable() for char in name):
        return f"{what} cannot contain control characters"
    return None


def connection_name_problem(name: str) -> str | None:
    """Why netsh (or Windows itself) cannot take ``name`` as a network adapter name."""
    problem = _name_problem(name, "an adapter name")
    if problem:
        return problem
    bad = sorted({char for char in name if char in CONNECTION_NAME_FORBIDDEN})
    if bad:
        return (
            f"an adapter name cannot contain {' '.join(bad)} "
            f"(Windows refuses {' '.join(CONNECTION_NAME_FORBIDDEN)} in connection names)"
        )
    return None


def rule_name_problem(name: str) -> str | None:
    problem = _name_problem(name, "a rule name")
    if problem:
        return problem
    if name.lower() == "all":
        return "'all' means every firewall rule to netsh (delete rule name=all deletes them all)"
    if "|" in name:
        return "a rule name cannot contain '|' (the firewall store uses it as a separator)"
    return None


def devcon_problem(path: str) -> str | None:
    if not path or path != path.strip():
        return "give the path to devcon.exe without surrounding spaces"
    if '"' in path or any(not char.isprintable() for char in path):
        return "a path with double quotes or control characters cannot be run"
    if ("\\" in path or "/" in path) and not _WINDOWS_ABSOLUTE.match(path):
        return (
            "give an absolute Windows path (such as C:\\Tools\\devcon.exe) or a bare "
            "program name that is found on PATH"
        )
    return None
