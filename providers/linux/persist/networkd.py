"""The ``systemd-networkd`` backend (alias ``networkd``): the VIPs declared to networkd.

systemd-networkd applies to a link the *first* .network file, by file name across
/etc, /run, /usr/local/lib and /usr/lib, whose ``[Match]`` section matches it; on a link
it manages it removes addresses it was not told about when it (re)configures the link.
So when such a file exists the VIPs go into a drop-in of exactly that file,
``/etc/systemd/network/<name>.network.d/90-dsrctl.conf`` (drop-ins in /etc apply to a
.network file in any of those directories, netplan's generated ones in /run included).
A separate .network file of dsrctl's would either be ignored (sorted after) or take the
interface away from the operator's file (sorted before).

When no file selects ``lo``, dsrctl writes its own ``10-dsrctl-lo.network`` that keeps
127.0.0.1/8 and ::1 and declares the VIPs. dsrctl's own file never counts as the
operator's: if one of theirs appears, the next plan moves the VIPs to a drop-in for it.

``KeepConfiguration=yes`` (in dsrctl's file, and in the drop-in unless the operator's
configuration sets the key) stops networkd from dropping addresses it did not configure
when it (re)configures the link: ``static`` would not do, since networkd counts an
address with a finite preferred lifetime (an IPv6 VIP, ``preferred_lft 0``) as dynamic.

Every VIP attribute has a key: ``Label=`` for IPv4, ``PreferredLifetime=0`` (deprecated)
and ``DuplicateAddressDetection=none`` (nodad, systemd 243 and later) for IPv6.
A VIP range is a ``[Route]`` section: ``Destination=``, ``Type=local``, ``Table=local``
(networkd gives a local route scope host by itself).
networkd starts after systemd-sysctl, so the ARP keys are in place before the VIPs.

The [[tunnel]] decap side (providers.linux.persist.decap): a collect-metadata ipip, gre,
ip6tnl or ip6gre device is a ``.netdev`` (``[Tunnel] External=yes``, which implies
``Independent=``: networkd creates it at start, with no underlying link), and each device
of these kinds, a module's fallback device (``tunl0``...) included, gets a ``.network``
that brings it up and configures nothing else (no link-local address, no router
advertisements: apply adds nothing to it either). networkd leaves a link that no
``.network`` file matches alone, down as its module made it: the fallback device needs
its ``.network``, not only the module. Proven on Debian 12 (systemd 252, kernel 6.1) in
the VM tier (tests/vm/test_tunnel_reboot.py).

dsrctl-tunnels.service keeps the rest, because systemd-networkd 252 cannot express it:

- a vxlan-gpe device: 252 has no collect-metadata mode for VXLAN (``External=`` is a
  [Tunnel] key only; [VXLAN] has ``GenericProtocolExtension=`` but no ``External=``);
- a GUE port: ``Kind=fou`` with ``Encapsulation=GenericUDPEncapsulation`` parses, but
  networkd 252 always sends ``FOU_ATTR_IPPROTO``, 0 for GUE, and kernels with the fix
  "fou: Don't allow 0 for FOU_ATTR_IPPROTO" (January 2026, in the 6.1 stable series:
  Debian's 6.1.0-57 has it) refuse that value: networkd logs ``dsrfou19523: netdev could
  not be created: Numerical result out of range`` (the kernel's extended ack: "integer
  out of range" at that attribute), and no port comes back. ``ip fou add ... gue`` leaves
  the attribute out and works. This is the earlier VM run's "timeout, undiagnosed": its
  step polled up to 600 times for the port (about 0.45 s a round in the guest) under a
  300 s step limit, and printed networkd's log only after the loop.
"""

from __future__ import annotations

import fnmatch

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
    safe_name,
)
from providers.model import AddressState, FileState, RouteState

NETWORK_DIRS = (
    "/etc/systemd/network",
    "/run/systemd/network",
    "/usr/local/lib/systemd/network",
    "/usr/lib/systemd/network",
    "/lib/systemd/network",
)
DROPIN_DIR = "/etc/systemd/network"
DROPIN_NAME = "90-dsrctl.conf"
KEEP = "KeepConfiguration=yes"
KEEPS_ALL = ("yes", "true", "on", "1")  # KeepConfiguration= values that keep every address
# [Match] keys that test a property the loopback device does not have.
_LINK_PROPERTIES = {
    "macaddress",
    "permanentmacaddress",
    "path",
    "driver",
    "property",
    "wlaninterfacetype",
    "ssid",
    "bssid",
}
_WLAN_PROPERTIES = {"wlaninterfacetype", "ssid", "bssid"}


def parse(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) for each assignment, in order (systemd's INI dialect)."""
    entries: list[tuple[str, str, str]] = []
    section = ""
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        key, sep, value = line.partition("=")
        if sep:
            entries.append((section, key.strip(), value.strip()))
    return entries


def matches(text: str, interface: str, link_type: str | None = None) -> bool:
    """Whether the file's [Match] section selects ``interface``.

    Name=, OriginalName= and Type= are evaluated (Type= when the link type is known:
    ``lo`` is "loopback", another interface's comes from sysfs on the live host); keys
    about link properties the loopback device lacks (MACAddress=, Driver=, Path=...)
    never match ``lo``, and Wi-Fi keys match only a "wlan" link; anything else (Host=,
    Virtualization=...) is assumed to match, so that a doubt is reported as a claim on
    the interface rather than missed.
    """
    if interface == "lo":
        link_type = "loopback"
    lists: dict[str, list[str]] = {}
    for section, key, value in parse(text):
        if section != "Match":
            continue
        words = lists.setdefault(key.lower(), [])
        if value:
            words.extend(value.split())
        else:
            words.clear()
    for key, words in lists.items():
        if not words:
            continue
        if key in ("name", "originalname"):
            if not _glob_list(words, interface):
                return False
        elif key == "type":
            if link_type is not None and not _glob_list(words, link_type):
                return False
        elif key in _LINK_PROPERTIES and _lacks(key, interface, link_type):
            return False
    return True


def _lacks(key: str, interface: str, link_type: str | None) -> bool:
    """The link certainly lacks the property ``key`` tests."""
    return interface == "lo" or (key in _WLAN_PROPERTIES and link_type not in (None, "wlan"))


def _glob_list(words: list[str], value: str) -> bool:
    invert = words[0].startswith("!")
    patterns = [words[0][1:], *words[1:]] if invert else words
    found = any(fnmatch.fnmatchcase(value, pattern) for pattern in patterns if pattern)
    return found != invert


def dropin_dir(network_path: str) -> str:
    return f"{DROPIN_DIR}/{network_path.rsplit('/', 1)[-1]}.d"


def own_network(interface: str) -> str:
    """The .network file dsrctl writes when no file of the operator's selects ``lo``."""
    return f"{DROPIN_DIR}/10-dsrctl-{interface}.network"


def keep_configuration(texts: list[str]) -> str | None:
    """The KeepConfiguration= in force after a .network file and its drop-ins, in order."""
    value = None
    for text in texts:
        for section, key, found in parse(text):
            if section == "Network" and key == "KeepConfiguration":
                value = found.lower() or None  # an empty assignment resets it
    return value


def requirement(detection: Detection) -> str | None:
    if detection.networkd_network is None and detection.interface != "lo":
        return (
            f"no .network file selects {detection.interface}, so systemd-networkd does not "
            f"manage it (use 'systemd-unit', or add a .network file for {detection.interface})"
        )
    return None


def notes(detection: Detection) -> list[str]:
    if "systemd-networkd" in detection.services:
        return []
    where = "this host" if detection.live else detection.root
    path = detection.networkd_network or own_network(detection.interface)
    return [
        f"WARNING: systemd-networkd is not enabled on {where}: nothing applies {path} at "
        "boot; enable it (systemctl enable systemd-networkd) or choose another backend"
    ]


def limits(state: AddressState, interface: str) -> str | None:
    return None


def address_section(state: AddressState, interface: str) -> list[str]:
    lines = ["[Address]", f"Address={state.cidr}"]
    if not default_label(state, interface):
        lines.append(f"Label={safe_name(str(state.label))}")
    if state.version == 6:
        if state.deprecated:
            lines.append("PreferredLifetime=0")
        if state.nodad:
            lines.append("DuplicateAddressDetection=none")
    return lines


def route_section(route: RouteState) -> list[str]:
    return [
        "[Route]",
        f"Destination={route.destination}",
        f"Type={route.type}",
        f"Table={route.table}",
    ]


def render(request: RenderRequest) -> Rendered:
    states, interface = request.states, request.interface
    network = request.detection.networkd_network
    lines = managed_header(request.spec_path)
    if network is None:  # lo only (requirement): a file of dsrctl's own
        # Name= takes a list of globs: a safe name has no space or glob character.
        lines += ["", "[Match]", f"Name={safe_name(interface)}", "", "[Network]", KEEP]
        lines += ["Address=127.0.0.1/8", "Address=::1/128"]
    elif request.detection.networkd_keep is None:
        lines += ["", "[Network]", "# keep addresses networkd did not configure", KEEP]
    for state in states:
        lines += ["", *address_section(state, interface)]
    for route in request.routes:
        lines += ["", *route_section(route)]
    content = _file(lines)
    if network is None:
        return Rendered(files={own_network(interface): content, **decap_files(request)})
    directory = dropin_dir(network)
    files = {f"{directory}/{DROPIN_NAME}": content, **decap_files(request)}
    return Rendered(files=files, dirs=(directory,))


# The decap device kinds networkd creates or brings up itself (TunnelState.kind; a gue
# tunnel's device is ipip's). The others, and every fou port, are the unit's (docstring).
NATIVE_KINDS = frozenset({"ipip", "gre", "ip6tnl", "ip6gre"})


def unit_part(tunnels: tuple[decap.Tunnel, ...], ports: tuple[int, ...]) -> Decap:
    return tuple(tunnel for tunnel in tunnels if tunnel[1].kind not in NATIVE_KINDS), ports


def decap_prefix(name: str) -> str:
    return f"{DROPIN_DIR}/10-dsrctl-tunnel-{safe_name(name)}"


def decap_files(request: RenderRequest) -> dict[str, FileState]:
    """The .netdev and .network files of the decap devices networkd brings back."""
    files = {}
    header = decap.header(request.spec_path)
    for name, state in request.tunnels:
        if state.kind not in NATIVE_KINDS:
            continue
        if state.external:
            lines = [*header, "", "[NetDev]", f"Name={safe_name(name)}", f"Kind={state.kind}"]
            lines += ["", "[Tunnel]", "External=yes"]
            if state.kind == "ip6tnl":
                lines.append("Mode=ip6ip6")
            files[f"{decap_prefix(name)}.netdev"] = _file(lines)
        network = [*header, "", "[Match]", f"Name={safe_name(name)}", "", "[Link]"]
        network += ["RequiredForOnline=no", "", "[Network]", "LinkLocalAddressing=no"]
        network += ["IPv6AcceptRA=no", "ConfigureWithoutCarrier=yes"]
        files[f"{decap_prefix(name)}.network"] = _file(network)
    return files


def _file(lines: list[str]) -> FileState:
    return FileState(("\n".join(lines) + "\n").encode(), 0o644)


# What this backend does not need of the Backend Protocol (providers.linux.persist.backends).
labels = no_labels
check = no_check
