"""`dsrctl import`: describe a hand-configured server as a spec, and optionally adopt it.

The spec is built from what the host has: global addresses on the VIP interface, the ARP
sysctls, and whether a dsrctl sysctl file is already in place. With ``--adopt`` those
resources are recorded as managed but not created by dsrctl (so they are never deleted,
only restored), and the next `plan` shows no changes when the host is already safe.
Values dsrctl would refuse (arp_ignore 0, say) are not copied: the spec gets the safe
value and the output says what the next apply will change.
"""

from __future__ import annotations

import ipaddress
import os
from typing import TYPE_CHECKING, Any

from dsrctl import sysctls
from dsrctl.platforms import Imported, ImportRequest
from dsrctl.spec import DEFAULT_SYSCTL_FILE, address_problem, parse_spec
from state.ownership import Ownership

if TYPE_CHECKING:
    from providers.linux.host import LinuxHost

SYSCTL_DIRS = ("/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d")


def import_host(host: LinuxHost, request: ImportRequest) -> tuple[Imported, str]:
    """`dsrctl import` on Linux (the platform's importer: dsrctl.linux.PLATFORM)."""
    imported = import_linux(host, request.interface, request.spec_path)
    return imported, render_toml(imported)


def import_linux(provider: LinuxHost, interface: str = "lo", spec_path: str = "") -> Imported:
    from dsrctl.errors import DsrctlError
    from dsrctl.linux.desired import build_desired
    from providers.linux.addresses import read_interfaces

    notes: list[str] = []
    links, found = read_interfaces([interface])
    if interface not in links:
        raise DsrctlError(f"interface {interface} does not exist on this host (--interface)")
    vips: list[dict[str, Any]] = []
    for state in sorted(found.get(interface, {}).values(), key=lambda a: (a.version, a.address)):
        address = ipaddress.ip_address(state.address)
        if address.is_loopback or address.is_link_local:
            continue
        full = 32 if state.version == 4 else 128
        problem = address_problem(address)
        if problem or state.prefix != full:
            notes.append(f"left out {state.cidr} on {interface}: not a /{full} VIP")
            continue
        vip: dict[str, Any] = {"address": state.address}
        if state.version == 4 and state.label and state.label != interface:
            if state.label.startswith(interface):
                vip["label"] = state.label
            else:
                notes.append(
                    f"{state.cidr}: label {state.label!r} dropped (must start with {interface})"
                )
        vips.append(vip)
    vips += _ranges(provider, interface, notes)
    if not vips:
        notes.append(f"no VIP found on {interface}; the spec needs at least one [[vip]]")
    linux: dict[str, Any] = {}
    if interface != "lo":
        linux["interface"] = interface
    ignore = provider.sysctl.read(sysctls.ARP_IGNORE_KEY)
    announce = provider.sysctl.read(sysctls.ARP_ANNOUNCE_KEY)
    if ignore in (1, 2):
        linux["arp_ignore"] = ignore
    else:
        notes.append(
            f"{sysctls.ARP_IGNORE_KEY} is {ignore}: unsafe; the spec sets 1 (apply changes it)"
        )
    if announce != 2:
        notes.append(
            f"{sysctls.ARP_ANNOUNCE_KEY} is {announce}: unsafe; the spec sets 2 (apply changes it)"
        )
    spec: dict[str, Any] = {"version": 1, "vip": vips, "linux": linux}
    # Keep dsrctl's sysctl file only when it is already there as dsrctl would write it;
    # otherwise persistence stays off so that adopting changes nothing on disk.
    persist_on = False
    if vips and os.path.exists(DEFAULT_SYSCTL_FILE):
        candidate = parse_spec(
            {**spec, "linux": {**linux, "persist": {"enabled": True}}}, spec_path
        )
        wanted = build_desired(candidate, Ownership()).files.get(DEFAULT_SYSCTL_FILE)
        with open(DEFAULT_SYSCTL_FILE, "rb") as handle:
            persist_on = wanted is not None and handle.read() == wanted.content
    linux["persist"] = {"enabled": persist_on, "addresses": "none"}
    if not persist_on:
        others = _files_setting_arp()
        where = f" (found in {', '.join(others)})" if others else ""
        notes.append(
            "persistence is off in this spec so that adopting changes nothing on disk"
            f"{where}; set linux.persist.enabled = true to let dsrctl write "
            f"{DEFAULT_SYSCTL_FILE}"
        )
    return Imported(spec=spec, notes=notes)


def _ranges(provider: LinuxHost, interface: str, notes: list[str]) -> list[dict[str, Any]]:
    """The VIP ranges: local routes on the interface that someone added (AnyIP), not the
    kernel's own routes of addresses (dsrctl.linux.ranges)."""
    from dsrctl.linux.ranges import added_ranges

    found = added_ranges(provider.local_ranges())
    if not found:
        return []
    subnets = [
        (name, ipaddress.ip_interface(cidr).network)
        for name, cidr in provider.connected_networks(("lo", interface))
    ]
    taken: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for item in found:
        route = item.route
        network = ipaddress.ip_network(route.destination, strict=False)
        covered = [
            name
            for name, subnet in subnets
            if subnet.version == network.version and subnet.overlaps(network)
        ]
        overlapping = [other for other in taken if other.overlaps(network)]
        if route.device != interface:
            why: str | None = f"it is on {route.device}, not on {interface}"
        elif covered:
            why = f"it covers the subnet of {covered[0]}, where this host has neighbours"
        elif overlapping:
            why = f"it overlaps the range {overlapping[0].compressed}"
        else:
            why = address_problem(network.network_address)
        if why is not None:
            notes.append(f"left out the range {route.destination}: {why}")
            continue
        taken.append(network)
    return [
        {"address": network.network_address.compressed, "prefix": network.prefixlen}
        for network in sorted(taken, key=lambda n: (n.version, int(n.network_address)))
    ]


def _files_setting_arp() -> list[str]:
    found = []
    candidates = ["/etc/sysctl.conf"]
    for directory in SYSCTL_DIRS:
        try:
            candidates += [os.path.join(directory, n) for n in sorted(os.listdir(directory))]
        except OSError:
            continue
    for path in candidates:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        except OSError:
            continue
        if "arp_ignore" in text or "arp_announce" in text:
            found.append(path)
    return found


def render_toml(imported: Imported) -> str:
    import tomli_w

    header = "".join(f"# {note}\n" for note in imported.notes)
    spec = imported.spec
    # [[vip]] tables, as in the examples and docs (tomli_w would inline short ones).
    body = tomli_w.dumps({"version": spec["version"]})
    body += "".join("\n[[vip]]\n" + tomli_w.dumps(vip) for vip in spec["vip"])
    body += "\n" + tomli_w.dumps({"linux": spec["linux"]})
    return "# Imported by `dsrctl import` from this host's current configuration.\n" + header + body
