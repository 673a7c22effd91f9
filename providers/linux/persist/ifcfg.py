"""The ``ifcfg`` backend: ``ifcfg-lo:N`` alias files for the legacy RHEL network-scripts.

At boot the ``network`` service runs ``ifup ifcfg-lo``; its last stage, ``ifup-aliases
lo``, adds an address for every ``/etc/sysconfig/network-scripts/ifcfg-lo:<name>`` file
(``ip addr add IPADDR/PREFIX brd ... dev lo label lo:<name>``) and **flushes every
running ``lo:*`` alias that has no such file**. So on such a host a labelled VIP must be
declared in an alias file, or the boot removes it after a oneshot unit added it.

One file per IPv4 VIP, mode 0644, owned whole by dsrctl; the operator's own alias files
are never written (a VIP one of them already configures is refused). The alias name is
the part of the VIP's label after the colon (``lo:1`` -> ``ifcfg-lo:1``); an unlabelled
VIP gets the lowest free number, kept from run to run (dsrctl's file for its address
keeps its name), and, since network-scripts add every alias with its label, its runtime
label is that alias (``lo:0``): the plan shows it, and drift after a reboot stays clean.

``PREFIX=32`` is always written: ``ifup-aliases`` starts from the *parent's* PREFIX and
NETMASK (``ifcfg-lo`` says 255.0.0.0), and an alias without its own PREFIX would come
back as a /8 that captures the whole subnet. ``IPV6INIT=no`` keeps ``ifup-ipv6`` off it.

VIP ranges (local routes) go into ``route-lo`` (IPv4) and ``route6-lo`` (IPv6), one
``local <range> dev lo table local`` line each: at boot ``ifup-routes`` (run by
``ifup-post`` for the interface) passes each line to ``ip -4 route add`` / ``ip -6 route
add``. Those files are dsrctl's whole: one of the operator's is refused, never rewritten.

Limits: network-scripts have no alias files for IPv6 and cannot add an address
deprecated (``preferred_lft 0``), so IPv6 VIPs are refused (IPv6 ranges are fine: a route
has no such flag); alias names are letters, digits and ``_`` (``ifup-aliases`` skips
other files). Files are read with shlex in POSIX mode, never executed.
"""

from __future__ import annotations

import posixpath
import re
import shlex

from providers.linux.persist import (
    MANAGED,
    Detection,
    IfcfgAlias,
    Rendered,
    RenderRequest,
    all_to_unit,
    default_label,
    managed_header,
    safe_name,
)
from providers.linux.persist.tree import Tree
from providers.model import AddressState, FileState, RouteState

SCRIPTS_DIR = "/etc/sysconfig/network-scripts"
ALIASES_SCRIPT = f"{SCRIPTS_DIR}/ifup-aliases"
ALIAS_NAME = re.compile(r"[0-9A-Za-z_]+")  # ifup-aliases: MATCH='^[0-9A-Za-z_]*$'
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IGNORED = ("~", ".bak", ".old", ".orig", ".rpmnew", ".rpmorig", ".rpmsave")


def parse(text: str) -> dict[str, str]:
    """The variables a file assigns, read like the shell reads it (quotes, escapes,
    comments); anything that is not a plain assignment is left out, nothing is run."""
    variables: dict[str, str] = {}
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        words = list(lexer)
    except ValueError:  # unbalanced quotes: the shell would fail on it too
        return variables
    for word in words:
        name, sep, value = word.partition("=")
        if sep and _VARIABLE.fullmatch(name):
            variables[name] = value
    return variables


def route_path(interface: str, version: int) -> str:
    return f"{SCRIPTS_DIR}/{'route' if version == 4 else 'route6'}-{interface}"


def foreign_route_files(tree: Tree, interface: str) -> list[str]:
    """The route files of ``interface`` under the root that dsrctl did not write."""
    found = []
    for version in (4, 6):
        path = route_path(interface, version)
        text = tree.read(path)
        if text is not None and not text.startswith(f"# {MANAGED}"):
            found.append(path)
    return found


def parent_path(interface: str) -> str:
    return f"{SCRIPTS_DIR}/ifcfg-{interface}"


def alias_path(label: str) -> str:
    return f"{SCRIPTS_DIR}/ifcfg-{label}"


def is_alias_file(name: str, interface: str) -> bool:
    """``ifcfg-<interface>:<name>``, not one that ifup-aliases ignores (``.bak``...)."""
    prefix = f"ifcfg-{interface}:"
    return name.startswith(prefix) and not name.endswith(_IGNORED)


def alias(path: str, text: str, interface: str) -> IfcfgAlias:
    name = posixpath.basename(path)[len(f"ifcfg-{interface}:") :]
    ours = text.startswith(f"# {MANAGED}")
    return IfcfgAlias(name, path, parse(text).get("IPADDR"), ours)


def aliases(tree: Tree, interface: str) -> list[IfcfgAlias]:
    """The ``ifcfg-<interface>:*`` files under the root, dsrctl's and the operator's."""
    found = []
    for name in tree.listdir(SCRIPTS_DIR):
        if is_alias_file(name, interface):
            path = f"{SCRIPTS_DIR}/{name}"
            text = tree.read(path)
            if text is not None:
                found.append(alias(path, text, interface))
    return found


def requirement(detection: Detection) -> str | None:
    if detection.ifcfg_parent:
        return None
    return (
        f"there is no {parent_path(detection.interface)}: network-scripts bring up the "
        f"aliases of {detection.interface} only when they bring up {detection.interface} "
        "itself (use 'systemd-unit')"
    )


def notes(detection: Detection) -> list[str]:
    if "ifcfg" in detection.services:
        return []
    where = "this host" if detection.live else detection.root
    return [
        f"WARNING: the network-scripts 'network' service is not enabled on {where}: nothing "
        f"reads the ifcfg-{detection.interface}:N files at boot; enable it (chkconfig "
        "network on) or choose another backend"
    ]


def limits(state: AddressState, interface: str) -> str | None:
    if state.version == 6:
        return (
            "network-scripts have no alias files for IPv6 addresses and cannot add one "
            "deprecated (preferred_lft 0); use linux.persist.addresses = 'systemd-unit' "
            f"(network-scripts leave IPv6 addresses on {interface} alone)"
        )
    if default_label(state, interface):
        return None
    name = str(state.label)[len(interface) + 1 :]
    if str(state.label).startswith(f"{interface}:") and ALIAS_NAME.fullmatch(name):
        return None
    return (
        f"network-scripts name an alias {interface}:<letters, digits, _>; label "
        f"{state.label!r} is not of that form"
    )


def labels(request: RenderRequest) -> dict[str, str]:
    """The alias (= runtime label) of each IPv4 VIP; an unlabelled one gets the name of
    dsrctl's file for its address if there is one, else the lowest free number. Names
    the operator's own alias files use are never given out."""
    interface = request.interface
    ours = [a for a in request.detection.ifcfg_aliases if a.ours]
    result: dict[str, str] = {}
    unlabelled = []
    for state in request.states:
        if state.version != 4:
            continue
        if default_label(state, interface):
            unlabelled.append(state)
        else:
            result[state.cidr] = str(state.label)
    taken = {label.split(":", 1)[1] for label in result.values()}
    taken |= {a.name for a in request.detection.ifcfg_aliases if not a.ours}
    for state in unlabelled:
        name = next(
            (a.name for a in ours if a.ipaddr == state.address and ALIAS_NAME.fullmatch(a.name)),
            None,
        )
        if name is not None and name not in taken:
            result[state.cidr] = f"{interface}:{name}"
            taken.add(name)
    number = 0
    for state in unlabelled:
        if state.cidr in result:
            continue
        while str(number) in taken:
            number += 1
        result[state.cidr] = f"{interface}:{number}"
        taken.add(str(number))
    return result


def check(request: RenderRequest) -> str | None:
    """dsrctl writes its own alias files and never the operator's: a VIP that one of them
    configures already, or an alias name one of them uses, is refused."""
    versions = {route.version for route in request.routes}
    for path in request.detection.ifcfg_route_files:
        if any(path == route_path(request.interface, version) for version in versions):
            return (
                f"{path} is not dsrctl's, and dsrctl writes the VIP ranges into that file "
                "whole: move its routes elsewhere (an ifcfg file of another interface), or "
                "choose linux.persist.addresses = 'systemd-unit'"
            )
    seen: dict[str, str] = {}
    theirs = [a for a in request.detection.ifcfg_aliases if not a.ours]
    for state in request.states:
        if state.version != 4:
            continue
        label = str(state.label)
        if label in seen:
            return (
                f"VIPs {seen[label]} and {state.cidr} both have label {label}: "
                "network-scripts keep one address per alias"
            )
        seen[label] = state.cidr
        for found in theirs:
            if found.ipaddr == state.address:
                return (
                    f"{found.path} already configures VIP {state.address}, and network-scripts "
                    "would add it twice at boot: remove that file (dsrctl writes its own "
                    "alias for the VIP) or remove the VIP from the spec"
                )
            if found.name == label.split(":", 1)[1]:
                return (
                    f"{found.path} exists and configures {found.ipaddr or 'no IPADDR'}, not VIP "
                    f"{state.cidr} (label {label}): give the VIP another label or remove that "
                    "file"
                )
    return None


def alias_text(state: AddressState, spec_path: str) -> str:
    # The file is sourced by sh: DEVICE= is written unquoted, so only a safe name passes.
    lines = [
        *managed_header(spec_path),
        f"DEVICE={safe_name(str(state.label))}",
        f"IPADDR={state.address}",
        "NETMASK=255.255.255.255",
        "PREFIX=32",
        "ONBOOT=yes",
        "IPV6INIT=no",
    ]
    return "\n".join(lines) + "\n"


def route_text(routes: list[RouteState], interface: str, spec_path: str) -> str:
    # ifup-routes runs `ip -4|-6 route add <line>` for each line: words only, no quoting.
    lines = [
        *managed_header(spec_path),
        *(
            f"{route.type} {route.destination} dev {safe_name(interface)} table {route.table}"
            for route in routes
        ),
    ]
    return "\n".join(lines) + "\n"


def render(request: RenderRequest) -> Rendered:
    files = {
        alias_path(safe_name(str(state.label))): FileState(
            alias_text(state, request.spec_path).encode(), 0o644
        )
        for state in request.states
        if state.version == 4
    }
    for version in (4, 6):
        routes = [route for route in request.routes if route.version == version]
        if routes:
            text = route_text(routes, request.interface, request.spec_path)
            files[route_path(request.interface, version)] = FileState(text.encode(), 0o644)
    return Rendered(files=files)


unit_part = all_to_unit
