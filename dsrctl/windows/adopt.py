"""`dsrctl import` on Windows: describe a hand-configured real server as a spec.

What the host has becomes a ``[windows]`` table: the Microsoft loopback adapter (found by
its device in ``ipconfig /all``, or named with ``--loopback``), its VIPs (every address
but the link-local/APIPA ones), the uplinks (adapters with weak-host receive on), the
profile (which netsh contexts exist), the loopback metric, and ``[[windows.firewall]]``
for each inbound allow rule whose local addresses are the VIPs. What the spec cannot
express is left out and said in a note (a ``#`` line of the output): a setting that is
off, which the spec turns on; an address that is not a host address; a firewall rule of
another shape. ``--adopt`` is :func:`dsrctl.engine.adopt_spec`, as on Linux.

Only reads, through the provider's query (netsh, and ipconfig for the device names).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from dsrctl.errors import DsrctlError, HostError
from dsrctl.platforms import Imported, ImportRequest
from dsrctl.spec import SPEC_VERSION, address_problem
from dsrctl.windows.model import FirewallRuleState, SettingValue
from dsrctl.windows.spec import (
    DEFAULT_METRIC,
    METRIC_RANGE,
    PROTOCOLS,
    connection_name_problem,
    rule_name_problem,
)
from providers.base import Provider
from providers.windows import commands, parse, reader
from providers.windows.host import WindowsHost
from providers.windows.reader import Query

ALL_PROFILES = ("domain", "private", "public")
WEAK_HOST = {"weakhostreceive": "weak-host receive", "weakhostsend": "weak-host send"}


def import_host(host: WindowsHost, request: ImportRequest) -> tuple[Imported, str]:
    """`dsrctl import` on Windows (the platform's importer: dsrctl.windows.PLATFORM)."""
    imported = import_windows(host, request.loopback)
    return imported, render_toml(imported)


def import_windows(provider: Provider, loopback: str | None = None) -> Imported:
    if not isinstance(provider, WindowsHost):
        raise DsrctlError(f"the Windows import needs the Windows provider, not {provider.platform}")
    query = provider.query
    notes: list[str] = []
    profile = provider.current_profile()
    listing = query(commands.show_adapters())
    rows = parse.adapters(listing.output, listing.command)
    adapters = {row.name.lower(): row.name for row in rows}
    name, loopbacks = _find_loopback(query, adapters, loopback)
    configs = reader.read_ipv4(query, profile)
    vips = _vips(query, profile, name, configs, notes)
    families = sorted({6 if ":" in vip["address"] else 4 for vip in vips}) or [4]
    windows: dict[str, Any] = {"loopback": name}
    if profile == "2003":
        metric = configs.get(name.lower(), parse.Ipv4Config()).metric
        windows["profile"] = profile
        windows["metric"] = _metric_2003(name, metric, notes)
        notes.append(
            "Windows Server 2003 has no netsh advfirewall: firewall rules are not imported "
            "(see docs/windows.md, The 2003 profile)"
        )
    else:
        settings = {family: reader.read_settings(query, family, name) for family in families}
        _loopback_weak_host(name, settings, notes)
        candidates = [
            row.name
            for row in rows
            if row.admin_state.lower() == "enabled" and row.name.lower() not in loopbacks
        ]
        windows["uplinks"] = _uplinks(query, name, candidates, families, configs, notes)
        windows["profile"] = profile
        windows["metric"] = _metric(name, settings, notes)
    if any(":" not in vip["address"] for vip in vips):
        config = configs.get(name.lower(), parse.Ipv4Config())
        if config.dhcp:
            notes.append(
                f"DHCP is on for {name}: the spec turns it off (apply switches the adapter to "
                "static addressing; check the plan before applying)"
            )
    if profile != "2003" and vips:
        rules = _firewall(query, [vip["address"] for vip in vips], notes)
        if rules:
            windows["firewall"] = rules
    spec: dict[str, Any] = {"version": SPEC_VERSION, "vip": vips, "windows": windows}
    return Imported(spec=spec, notes=notes)


def _find_loopback(
    query: Query, adapters: dict[str, str], given: str | None
) -> tuple[str, set[str]]:
    """The loopback adapter's name as spelled, and the lower-cased names of every adapter
    whose device is a loopback adapter (none of them can be an uplink)."""
    known = ", ".join(sorted(adapters.values())) or "none"
    try:
        found = [n for n in reader.read_loopback_adapters(query) if n.lower() in adapters]
    except HostError as exc:
        if given is None:
            raise HostError(
                f"cannot tell which adapter is the loopback adapter: {exc}; name it with "
                "--loopback NAME"
            ) from exc
        found = []  # named by the operator: the devices only keep other loopbacks out
    loopbacks = {name.lower() for name in found}
    if given is not None:
        spelled = adapters.get(given.lower())
        if spelled is None:
            raise DsrctlError(
                f"no network adapter named {given!r} on this host (--loopback; adapters: {known})"
            )
        return _checked_name(spelled), loopbacks | {spelled.lower()}
    if not found:
        raise DsrctlError(
            "no Microsoft loopback adapter on this host (`ipconfig /all` shows no "
            "'Microsoft KM-TEST Loopback Adapter' or 'Microsoft Loopback Adapter'; adapters: "
            f"{known}): a DSR real server holds its VIPs on one (see docs/windows.md); if "
            "another adapter holds them, name it with --loopback NAME"
        )
    if len(found) > 1:
        raise DsrctlError(
            f"{len(found)} loopback adapters on this host ({', '.join(found)}): name the one "
            "that holds the VIPs with --loopback NAME"
        )
    return _checked_name(adapters[found[0].lower()]), loopbacks


def _checked_name(name: str) -> str:
    problem = connection_name_problem(name)
    if problem:
        raise DsrctlError(f"the loopback adapter {name!r} cannot go into a spec: {problem}")
    return name


def _vips(
    query: Query,
    profile: str,
    name: str,
    configs: dict[str, parse.Ipv4Config],
    notes: list[str],
) -> list[dict[str, Any]]:
    held = [(a, p) for a, p in configs.get(name.lower(), parse.Ipv4Config()).addresses]
    if profile != "2003":  # the 2003 profile manages IPv4 only
        held += [(a, 128) for a in reader.read_ipv6(query).get(name.lower(), [])]
    found = []
    for text, prefix in held:
        address = ipaddress.ip_address(text)
        if address.is_link_local or address.is_loopback:
            continue  # APIPA (169.254/16) and fe80::/10: not configured by anyone
        full = 32 if address.version == 4 else 128
        problem = address_problem(address)
        if problem or prefix != full:
            why = problem or f"not a /{full} VIP"
            notes.append(
                f"left out {address.compressed}/{prefix} on {name}: {why} (plan reports it as "
                "an address the spec does not name)"
            )
            continue
        found.append(address)
    if not found:
        notes.append(f"no VIP found on {name}; the spec needs at least one [[vip]]")
    ordered = sorted(set(found), key=lambda a: (a.version, int(a)))
    return [{"address": address.compressed} for address in ordered]


def _off(settings: dict[int, dict[str, SettingValue]], keyword: str) -> list[int]:
    return [family for family, values in settings.items() if values.get(keyword) != "enabled"]


def _families(families: Sequence[int]) -> str:
    return " and ".join(f"IPv{family}" for family in families)


def _loopback_weak_host(
    name: str, settings: dict[int, dict[str, SettingValue]], notes: list[str]
) -> None:
    for keyword, words in WEAK_HOST.items():
        off = _off(settings, keyword)
        if off:
            notes.append(
                f"{words} is off on {name} for {_families(off)}: the spec turns it on "
                "(apply changes it)"
            )


def _uplinks(
    query: Query,
    loopback: str,
    candidates: list[str],
    families: list[int],
    configs: dict[str, parse.Ipv4Config],
    notes: list[str],
) -> list[str]:
    """Adapters with weak-host receive on (for any VIP family); failing those, the ones
    with a default gateway, which the spec then turns it on for."""
    uplinks: list[str] = []
    unreadable: dict[str, list[int]] = {}
    for adapter in candidates:
        if adapter.lower() == loopback.lower() or connection_name_problem(adapter):
            continue
        settings: dict[int, dict[str, SettingValue]] = {}
        for family in families:
            try:
                settings[family] = reader.read_settings(query, family, adapter)
            except parse.NetshOutputError:
                raise
            except HostError:  # IPv6 not bound to it, say: not an uplink for that family
                unreadable.setdefault(adapter, []).append(family)
        off = _off(settings, "weakhostreceive")
        if len(off) == len(settings):
            continue
        uplinks.append(adapter)
        if off:
            notes.append(
                f"weak-host receive is off on {adapter} for {_families(off)}: the spec turns "
                "it on (apply changes it)"
            )
        if adapter in unreadable:
            notes.append(
                f"netsh cannot read the {_families(unreadable[adapter])} settings of "
                f"{adapter} (is the protocol bound to it?); plan and apply will fail the same "
                "way until it is, or until the spec has no VIP of that family"
            )
    if uplinks:
        return uplinks
    routed = [
        adapter
        for adapter in candidates
        if adapter.lower() != loopback.lower()
        and configs.get(adapter.lower(), parse.Ipv4Config()).gateways
        and not connection_name_problem(adapter)
    ]
    if routed:
        notes.append(
            f"no adapter has weak-host receive on; {', '.join(routed)} (with the default "
            "gateway) is the spec's uplink: the spec turns weak-host receive on for it "
            "(apply changes it)"
        )
    else:
        notes.append(
            "no uplink found (no adapter has weak-host receive on or a default gateway): put "
            "the adapters that receive VIP traffic into windows.uplinks"
        )
    return routed


def _metric(name: str, settings: dict[int, dict[str, SettingValue]], notes: list[str]) -> int:
    values = {family: values.get("metric") for family, values in settings.items()}
    first = min(values)
    metric = values[first]
    low, high = METRIC_RANGE
    if not isinstance(metric, int) or not low <= metric <= high:
        notes.append(
            f"the IPv{first} metric of {name} is {metric}, outside {low}-{high}: the spec sets "
            f"{DEFAULT_METRIC} (apply changes it)"
        )
        return DEFAULT_METRIC
    for family, value in sorted(values.items()):
        if value != metric:
            notes.append(
                f"the IPv{family} metric of {name} is {value}, the IPv{first} one {metric}: "
                f"the spec sets {metric} for both (apply changes IPv{family})"
            )
    automatic = [f for f, v in sorted(settings.items()) if v.get("automatic_metric") == "enabled"]
    if automatic:
        advice = f" (dsrctl recommends {DEFAULT_METRIC})" if metric != DEFAULT_METRIC else ""
        notes.append(
            f"the {_families(automatic)} metric of {name} is automatic; the spec gives the "
            f"number {metric}{advice}: netsh turns 'Automatic metric' off when it sets a "
            "metric, and cannot turn it on again"
        )
    return metric


def _metric_2003(name: str, metric: int | None, notes: list[str]) -> int:
    low, high = METRIC_RANGE
    if metric is not None and low <= metric <= high:
        return metric
    shown = "automatic (netsh shows 0)" if metric == 0 else f"{metric}"
    notes.append(
        f"the interface metric of {name} is {shown}: the spec sets {DEFAULT_METRIC}, which "
        "netsh on Windows Server 2003 cannot set; the plan shows it as a manual step"
    )
    return DEFAULT_METRIC


def _firewall(query: Query, vips: list[str], notes: list[str]) -> list[dict[str, Any]]:
    """``[[windows.firewall]]`` for each inbound allow rule whose local addresses include
    a VIP and that dsrctl would create exactly so; a note for the others."""
    wanted = tuple(vips)  # sorted as the reader sorts a rule's addresses
    named: dict[str, list[tuple[str, FirewallRuleState]]] = {}
    for name, rule in reader.read_rules(query):
        named.setdefault(name.lower(), []).append((name, rule))
    rules: list[dict[str, Any]] = []
    for _, entries in sorted(named.items()):
        allowing = [
            (name, rule)
            for name, rule in entries
            if rule.direction == "in" and rule.action == "allow" and set(rule.localip) & set(vips)
        ]
        if not allowing:
            continue
        name, rule = allowing[0]
        if len(entries) > 1:
            problems = [f"{len(entries)} rules carry this name; dsrctl manages one rule per name"]
        else:
            problems = _rule_problems(name, rule, wanted)
        if problems:
            notes.append(
                f"firewall rule {name!r} ({rule}) is left out: {'; '.join(problems)}. dsrctl "
                "leaves rules that are not in the spec alone"
            )
            continue
        ports = [int(port) for port in rule.localport]
        rules.append({"name": name, "protocol": rule.protocol, "ports": ports})
    return rules


def _rule_problems(name: str, rule: FirewallRuleState, vips: tuple[str, ...]) -> list[str]:
    """Why dsrctl's rule of this name would differ from ``rule`` (empty: it would not)."""
    problem = rule_name_problem(name)
    if problem:
        return [problem]
    problems = []
    if rule.localip != vips:
        others = [ip for ip in rule.localip if ip not in vips]
        missing = [ip for ip in vips if ip not in rule.localip]
        if others:
            problems.append(f"it also allows {', '.join(others)}, not a VIP of this host")
        if missing:
            problems.append(
                f"it does not allow {', '.join(missing)} (a spec's rule allows every VIP)"
            )
    if rule.protocol not in PROTOCOLS:
        problems.append(f"protocol {rule.protocol} (a spec's rule is tcp or udp)")
    elif not all(port.isdigit() and 1 <= int(port) <= 65535 for port in rule.localport):
        problems.append(f"local ports {','.join(rule.localport)} (a spec lists port numbers)")
    if rule.remoteip != ("any",):
        problems.append(f"it is limited to remote addresses {','.join(rule.remoteip)}")
    if rule.remoteport != ("any",):
        problems.append(f"it is limited to remote ports {','.join(rule.remoteport)}")
    if rule.profiles != ALL_PROFILES:
        problems.append(f"it applies to the {','.join(rule.profiles)} profile(s) only")
    if not rule.enabled:
        problems.append("it is disabled (the spec's rule would be enabled)")
    if rule.unmanaged:
        fields = ", ".join(f"{key}: {value}" for key, value in rule.unmanaged)
        problems.append(f"it has settings a spec cannot express ({fields})")
    return problems


def render_toml(imported: Imported) -> str:
    """The spec as TOML, with ``[[vip]]`` and ``[[windows.firewall]]`` tables written out
    (tomli_w would inline short ones) and the notes as ``#`` lines first."""
    import tomli_w

    header = "".join(f"# {' '.join(note.split())}\n" for note in imported.notes)
    spec = imported.spec
    windows = dict(spec["windows"])
    rules = windows.pop("firewall", [])
    body = tomli_w.dumps({"version": spec["version"]})
    body += "".join("\n[[vip]]\n" + tomli_w.dumps(vip) for vip in spec["vip"])
    body += "\n" + tomli_w.dumps({"windows": windows})
    body += "".join("\n[[windows.firewall]]\n" + tomli_w.dumps(rule) for rule in rules)
    return "# Imported by `dsrctl import` from this host's current configuration.\n" + header + body
