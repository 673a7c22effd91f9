"""The ``netplan`` backend: ``/etc/netplan/90-dsrctl.yaml``, merged into the definition
that already configures the interface.

netplan reads every YAML file in /etc/netplan (and /run, /lib) in name order and merges
definitions with the same id; sequences such as ``addresses`` are concatenated. At boot
its systemd generator renders the result to /run/systemd/network/10-netplan-<id>.network
for systemd-networkd. dsrctl writes the VIPs under the id that netplan renders for the
interface (found from that rendered file), so they join the operator's definition
instead of starting a second one.

A VIP range is a route of the same definition: ``to: <range>``, ``type: local``,
``table: 255`` (netplan takes table numbers only) and ``scope: host``.

Limits: netplan has a per-address ``label`` (networkd renderer only) and ``lifetime: 0``,
but no way to turn off duplicate address detection, so an IPv6 VIP cannot come back
exactly as dsrctl adds it (deprecated, nodad); such specs are refused with a pointer to
the ``networkd`` backend, whose drop-in applies to netplan's rendered file too. With the
NetworkManager renderer, netplan 0.106 renders ``lo`` as an ethernet profile that
NetworkManager cannot activate, so dsrctl refuses that as well.
"""

from __future__ import annotations

import json
import re

from providers.linux.persist import (
    Detection,
    Rendered,
    RenderRequest,
    all_to_unit,
    default_label,
    managed_header,
    no_check,
    no_labels,
    no_notes,
)
from providers.linux.persist.tree import Tree
from providers.model import AddressState, FileState

NETPLAN_DIRS = ("/etc/netplan", "/run/netplan", "/lib/netplan", "/usr/lib/netplan")
RENDERED_NETWORKD = "/run/systemd/network"
RENDERED_NM = "/run/NetworkManager/system-connections"
DROPIN = "/etc/netplan/90-dsrctl.yaml"
TABLES = {"local": "255", "main": "254"}  # netplan's table: takes a number only


def requirement(detection: Detection) -> str | None:
    if detection.netplan_renderer == "NetworkManager":
        return (
            f"netplan renders {detection.interface} for NetworkManager, as an ethernet "
            "profile NetworkManager cannot activate on a loopback device"
        )
    if detection.netplan_id is None:
        return (
            f"netplan renders nothing for {detection.interface} (no "
            f"{RENDERED_NETWORKD}/10-netplan-*.network selects it): declare it in your "
            "netplan YAML and run 'netplan generate'"
        )
    return None


def limits(state: AddressState, interface: str) -> str | None:
    if state.version == 6:
        return (
            "netplan cannot turn off duplicate address detection for an address (nodad); "
            "use linux.persist.addresses = 'systemd-networkd', whose drop-in also applies to "
            "netplan's rendered .network file"
        )
    return None


def rendered_id(name: str) -> str | None:
    """The netplan id behind a generated file name, if it is one of netplan's."""
    if name.startswith("10-netplan-") and name.endswith(".network"):
        return name[len("10-netplan-") : -len(".network")]
    if name.startswith("netplan-") and name.endswith(".nmconnection"):
        return name[len("netplan-") : -len(".nmconnection")]
    return None


def _quote(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid double-quoted YAML scalar


def render(request: RenderRequest) -> Rendered:
    netplan_id = request.detection.netplan_id or request.interface
    lines = [
        *managed_header(request.spec_path),
        "network:",
        "  version: 2",
        "  ethernets:",
        f"    {_quote(netplan_id)}:",
    ]
    if request.states:
        lines.append("      addresses:")
    for state in request.states:
        if default_label(state, request.interface):
            lines.append(f"        - {_quote(state.cidr)}")
        else:
            lines += [
                f"        - {_quote(state.cidr)}:",
                f"            label: {_quote(str(state.label))}",
            ]
    if request.routes:
        lines.append("      routes:")
    for route in request.routes:
        lines += [
            f"        - to: {_quote(route.destination)}",
            f"          type: {_quote(route.type)}",
            f"          table: {TABLES.get(route.table, route.table)}",
            '          scope: "host"',
        ]
    content = ("\n".join(lines) + "\n").encode()
    return Rendered(files={DROPIN: FileState(content, 0o600)})


def declares(tree: Tree, interface: str) -> str | None:
    """A YAML file (not dsrctl's) that names ``interface``, when nothing is rendered yet."""
    pattern = re.compile(rf"^\s+[\"']?{re.escape(interface)}[\"']?\s*:", re.MULTILINE)
    for directory in NETPLAN_DIRS:
        for path in tree.glob(f"{directory}/*.yaml"):
            text = tree.read(path)
            if path != DROPIN and text is not None and pattern.search(text):
                return path
    return None


# What this backend does not need of the Backend Protocol (providers.linux.persist.backends).
notes = no_notes
labels = no_labels
check = no_check
unit_part = all_to_unit
