"""The ``ifupdown`` backend: stanzas in ``/etc/network/interfaces.d/dsrctl``.

Debian's ifupdown brings up every ``auto`` interface at boot (networking.service, after
systemd-sysctl). A labelled IPv4 VIP becomes an alias interface, ``iface lo:1 inet
static`` (ifupdown runs ``ip addr add ... dev lo label lo:1``); other VIPs become extra
``iface lo inet static`` / ``iface lo inet6 static`` stanzas, which ifupdown 0.8 applies
together with the interface's own stanza. IPv6 VIPs get ``preferred-lifetime 0``
(deprecated) and ``dad-attempts 0`` (ifupdown then adds them ``nodad``).

VIP ranges (local routes) are ``up``/``down`` commands of an ``iface <interface> inet
manual`` stanza of their own: ``ip -4 route replace local <range> dev lo table local``
(and ``-6``); ifupdown runs them after the interface's other stanzas.

The [[tunnel]] decap side (providers.linux.persist.decap) is an ``iface NAME inet manual``
stanza per device (``auto``): its ``pre-up`` creates a collect-metadata device unless it
exists (``ip link add NAME type ... external``), the ``manual`` method sets it up (``ip
link set dev NAME up``; a fallback device such as ``tunl0`` comes with its module, loaded
from modules-load.d before networking.service starts), a GUE port is a ``pre-up ip fou add
port N gue`` of its device (which fails harmlessly when the port exists), and ``post-down``
deletes what ``pre-up`` created.

The file is dsrctl's own; it names ``auto`` for every interface it configures, which is
harmless when /etc/network/interfaces says it too. It is read only if
/etc/network/interfaces sources the directory (``source /etc/network/interfaces.d/*``,
Debian's default, or ``source-directory``; the name has no dot so that both accept it):
dsrctl refuses otherwise rather than write a file nothing reads.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from dataclasses import dataclass, field

from providers.linux.persist import (
    Decap,
    Detection,
    Rendered,
    RenderRequest,
    decap,
    default_label,
    managed_header,
    no_check,
    no_labels,
    no_notes,
    safe_name,
)
from providers.linux.persist.tree import Tree
from providers.model import AddressState, FileState, RouteState, TunnelState

INTERFACES = "/etc/network/interfaces"
DROPIN_DIR = "/etc/network/interfaces.d"
DROPIN = f"{DROPIN_DIR}/dsrctl"


@dataclass
class Interfaces:
    """The parts of an interfaces(5) file dsrctl looks at."""

    auto: set[str] = field(default_factory=set)  # auto, allow-auto, allow-hotplug
    iface: dict[str, list[str]] = field(default_factory=dict)  # name -> ["inet static", ...]
    sources: list[str] = field(default_factory=list)  # absolute patterns, as written
    source_dirs: list[str] = field(default_factory=list)


def parse(text: str, path: str) -> Interfaces:
    """One file; ``source`` paths are made absolute against the file's directory."""
    found = Interfaces()
    here = posixpath.dirname(path)
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        keyword = words[0]
        if keyword in ("auto", "allow-auto", "allow-hotplug"):
            found.auto.update(words[1:])
        elif keyword == "iface" and len(words) >= 4:
            found.iface.setdefault(words[1], []).append(" ".join(words[2:4]))
        elif keyword == "source" and len(words) >= 2:
            found.sources.append(posixpath.join(here, words[1]))
        elif keyword == "source-directory" and len(words) >= 2:
            found.source_dirs.append(posixpath.normpath(posixpath.join(here, words[1])))
    return found


def reads_dropin(found: Interfaces) -> bool:
    """Whether the sourcing in ``found`` reaches /etc/network/interfaces.d/dsrctl."""
    if any(fnmatch.fnmatchcase(DROPIN, pattern) for pattern in found.sources):
        return True
    return any(fnmatch.fnmatchcase(DROPIN_DIR, pattern) for pattern in found.source_dirs)


def configures(found: Interfaces, interface: str) -> str | None:
    """A short description of how ``found`` brings ``interface`` up at boot, if it does."""
    if interface in found.auto and interface in found.iface:
        return f"auto {interface}, iface {interface} {found.iface[interface][0]}"
    return None


def requirement(detection: Detection) -> str | None:
    if detection.ifupdown_sources_dropins:
        return None
    return (
        f"{INTERFACES} does not source {DROPIN_DIR}, so ifupdown would not read {DROPIN}; "
        f"add 'source {DROPIN_DIR}/*' to it"
    )


def limits(state: AddressState, interface: str) -> str | None:
    if default_label(state, interface) or (state.label or "").startswith(f"{interface}:"):
        return None
    return (
        f"ifupdown gives an IPv4 address a label through an alias interface named "
        f"{interface}:<name>; label {state.label!r} is not of that form"
    )


def stanza(state: AddressState, interface: str) -> list[str]:
    # ifupdown pastes interface names into the `sh -c` commands it runs (ip addr add ...
    # dev %iface% label %label%) and has no quoting: only safe names are written.
    interface = safe_name(interface)
    if state.version == 4:
        name = interface if default_label(state, interface) else safe_name(str(state.label))
        head = [f"auto {name}"] if name != interface else []
        return [*head, f"iface {name} inet static", f"    address {state.cidr}"]
    lines = [f"iface {interface} inet6 static", f"    address {state.cidr}"]
    if state.deprecated:
        lines.append("    preferred-lifetime 0")
    if state.nodad:
        lines.append("    dad-attempts 0")
    return lines


def route_stanza(routes: tuple[RouteState, ...], interface: str) -> list[str]:
    interface = safe_name(interface)
    lines = [f"iface {interface} inet manual"]
    for route in routes:
        words = f"{route.type} {route.destination} dev {interface} table {route.table}"
        lines += [
            f"    up ip -{route.version} route replace {words}",
            f"    down ip -{route.version} route del {words} || true",
        ]
    return lines


def decap_stanza(name: str, state: TunnelState, ports: tuple[int, ...]) -> list[str]:
    """The device's stanza: created if missing, set up by the manual method."""
    name = safe_name(name)
    lines = [f"auto {name}", f"iface {name} inet manual"]
    if not decap.fallback(state):
        add = " ".join(decap.add_command(name, state))
        lines.append(f"    pre-up ip link show dev {name} >/dev/null 2>&1 || ip {add}")
    for port in ports:
        lines.append(f"    pre-up ip {' '.join(decap.fou_command(port))} 2>/dev/null || true")
    if not decap.fallback(state):
        lines.append(f"    post-down ip link del dev {name} || true")
    return lines


def render(request: RenderRequest) -> Rendered:
    lines = [*managed_header(request.spec_path), f"auto {safe_name(request.interface)}"]
    for state in request.states:
        lines += ["", *stanza(state, request.interface)]
    if request.routes:
        lines += ["", *route_stanza(request.routes, request.interface)]
    # the GUE ports go with the ipip device (GUE hands its inner IPIP packet to it)
    ipip = [name for name, tunnel in request.tunnels if tunnel.kind == "ipip"]
    for name, tunnel in request.tunnels:
        ports = request.fou_ports if name == (ipip or [request.tunnels[0][0]])[0] else ()
        lines += ["", *decap_stanza(name, tunnel, ports)]
    content = ("\n".join(lines) + "\n").encode()
    return Rendered(files={DROPIN: FileState(content, 0o644)})


def read_all(tree: Tree) -> Interfaces:
    """/etc/network/interfaces and what it sources, dsrctl's own file left out."""
    total = Interfaces()
    queue, seen = [INTERFACES], set()
    while queue:
        path = queue.pop(0)
        if path in seen or path == DROPIN:
            continue
        seen.add(path)
        text = tree.read(path)
        if text is None:
            continue
        found = parse(text, path)
        total.auto |= found.auto
        for name, methods in found.iface.items():
            total.iface.setdefault(name, []).extend(methods)
        total.sources += found.sources
        total.source_dirs += found.source_dirs
        for pattern in found.sources:
            queue += tree.glob(pattern)
        for pattern in found.source_dirs:
            for directory in tree.glob(pattern):
                names = [n for n in tree.listdir(directory) if re.fullmatch(r"[A-Za-z0-9_-]+", n)]
                queue += [f"{directory}/{name}" for name in names]
    return total


# What this backend does not need of the Backend Protocol (providers.linux.persist.backends).
notes = no_notes
labels = no_labels
check = no_check


def unit_part(tunnels: tuple[tuple[str, TunnelState], ...], ports: tuple[int, ...]) -> Decap:
    return (), ()  # its stanzas create the devices and add the ports themselves
