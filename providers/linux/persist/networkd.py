"""The ``networkd`` backend: a drop-in for the .network file that configures the interface.

systemd-networkd applies to a link the *first* .network file, by file name across
/etc, /run, /usr/local/lib and /usr/lib, whose ``[Match]`` section matches it; on a link
it manages it removes addresses it was not told about when it (re)configures the link.
So the VIPs go into a drop-in of exactly that file,
``/etc/systemd/network/<name>.network.d/90-dsrctl.conf`` (drop-ins in /etc apply to a
.network file in any of those directories, netplan's generated ones in /run included).
A separate .network file of dsrctl's would either be ignored (sorted after) or take the
interface away from the operator's file (sorted before).

Every VIP attribute has a key: ``Label=`` for IPv4, ``PreferredLifetime=0`` (deprecated)
and ``DuplicateAddressDetection=none`` (nodad, systemd 243 and later) for IPv6.
networkd starts after systemd-sysctl, so the ARP keys are in place before the VIPs.
"""

from __future__ import annotations

import fnmatch

from dsrctl.model import AddressState, FileState
from providers.linux.persist import (
    Detection,
    Rendered,
    RenderRequest,
    default_label,
    managed_header,
)

NETWORK_DIRS = (
    "/etc/systemd/network",
    "/run/systemd/network",
    "/usr/local/lib/systemd/network",
    "/usr/lib/systemd/network",
    "/lib/systemd/network",
)
DROPIN_DIR = "/etc/systemd/network"
DROPIN_NAME = "90-dsrctl.conf"
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


def matches(text: str, interface: str) -> bool:
    """Whether the file's [Match] section selects ``interface``.

    Name=, OriginalName= and Type= are evaluated; keys about link properties the loopback
    device lacks (MACAddress=, Driver=, Path=...) never match ``lo``; anything else
    (Host=, Virtualization=...) is assumed to match, so that a doubt is reported as a
    claim on the interface rather than missed.
    """
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
            if interface == "lo" and not _glob_list(words, "loopback"):
                return False
        elif key in _LINK_PROPERTIES and interface == "lo":
            return False
    return True


def _glob_list(words: list[str], value: str) -> bool:
    invert = words[0].startswith("!")
    patterns = [words[0][1:], *words[1:]] if invert else words
    found = any(fnmatch.fnmatchcase(value, pattern) for pattern in patterns if pattern)
    return found != invert


def dropin_dir(network_path: str) -> str:
    return f"{DROPIN_DIR}/{network_path.rsplit('/', 1)[-1]}.d"


def requirement(detection: Detection) -> str | None:
    if detection.networkd_network is None:
        return (
            f"no .network file selects {detection.interface}, so systemd-networkd does not "
            f"manage it (use 'systemd-unit', or add a .network file for {detection.interface})"
        )
    return None


def limits(state: AddressState, interface: str) -> str | None:
    return None


def address_section(state: AddressState, interface: str) -> list[str]:
    lines = ["[Address]", f"Address={state.cidr}"]
    if not default_label(state, interface):
        lines.append(f"Label={state.label}")
    if state.version == 6:
        if state.deprecated:
            lines.append("PreferredLifetime=0")
        if state.nodad:
            lines.append("DuplicateAddressDetection=none")
    return lines


def render(request: RenderRequest) -> Rendered:
    states, interface = request.states, request.interface
    network = request.detection.networkd_network
    if network is None:
        raise ValueError("no .network file configures the interface")
    directory = dropin_dir(network)
    lines = managed_header(request.spec_path)
    for state in states:
        lines += ["", *address_section(state, interface)]
    content = ("\n".join(lines) + "\n").encode()
    return Rendered(
        files={f"{directory}/{DROPIN_NAME}": FileState(content, 0o644)}, dirs=(directory,)
    )
