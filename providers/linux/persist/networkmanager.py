"""The ``networkmanager`` backend: the VIPs as addresses of the loopback profile.

NetworkManager (1.42 and later) manages ``lo`` only through a profile of
``type=loopback``; when it activates or reapplies that profile it sets the addresses the
profile lists, and foreign ones can go. Keyfile profiles have no drop-ins, so dsrctl adds
``addressN=`` entries to the ``[ipv4]`` group of the operator's profile, in place,
keeping every other line (and the file's mode: NetworkManager ignores keyfiles that are
not 0600). The first apply records the profile as it was; when the spec no longer asks
for persistence through NetworkManager, the next apply puts that content back, like any
file dsrctl changed. A VIP that dsrctl added and the spec drops also leaves the profile.

Limits, refused before anything changes: profiles keep neither address labels (IPv4
VIPs must keep the default label) nor lifetimes or DAD flags (no IPv6 VIP can stay
deprecated), so such VIPs need another backend. With no loopback profile NetworkManager
does not manage ``lo`` and ``auto`` picks the systemd unit instead.
"""

from __future__ import annotations

import re

from dsrctl.model import AddressState, FileState
from providers.linux.persist import Detection, NmProfile, Rendered, RenderRequest, default_label

PROFILE_DIRS = (
    "/etc/NetworkManager/system-connections",
    "/run/NetworkManager/system-connections",
    "/usr/lib/NetworkManager/system-connections",
)
_ADDRESS_KEY = re.compile(r"^address(\d+)$")


def groups(text: str) -> dict[str, dict[str, str]]:
    """The keyfile as {group: {key: value}} (GKeyFile syntax: '#' comments, no escapes)."""
    result: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = result.setdefault(line[1:-1], {})
        elif current is not None and "=" in line:
            key, _, value = line.partition("=")
            current[key.strip()] = value.strip()
    return result


def claims_interface(text: str, interface: str) -> bool:
    connection = groups(text).get("connection", {})
    name = connection.get("interface-name")
    if interface == "lo":
        return connection.get("type") == "loopback" and name in (None, "lo")
    return name == interface


def autoconnects(text: str) -> bool:
    value = groups(text).get("connection", {}).get("autoconnect", "true")
    return value.lower() not in ("false", "0", "no")


def requirement(detection: Detection) -> str | None:
    profiles = detection.nm_profiles
    if not profiles:
        return (
            f"no active NetworkManager profile configures {detection.interface}, so "
            "NetworkManager does not manage it (use 'systemd-unit')"
        )
    if len(profiles) > 1:
        names = ", ".join(profile.path for profile in profiles)
        return (
            f"several NetworkManager profiles configure {detection.interface} ({names}); "
            "dsrctl cannot tell which one NetworkManager activates: keep one"
        )
    return method_problem(profiles[0])


def limits(state: AddressState, interface: str) -> str | None:
    if state.version == 6:
        return (
            "NetworkManager profiles cannot keep an address deprecated (preferred_lft 0), "
            "so after a reboot the host could use the VIP as a source address"
        )
    if not default_label(state, interface):
        return "NetworkManager profiles do not keep address labels"
    return None


def method_problem(profile: NmProfile) -> str | None:
    method = groups(profile.content.decode("utf-8", "replace")).get("ipv4", {}).get("method")
    # "auto" (the default for a loopback profile) adds the listed addresses to its own.
    if method not in (None, "auto", "manual"):
        return (
            f"NetworkManager profile {profile.path} sets ipv4 method={method}, which does not "
            "configure the addresses it lists; set method=manual"
        )
    return None


def merge(text: str, wanted: list[str], dropped: frozenset[str]) -> str:
    """``text`` with every cidr of ``wanted`` in [ipv4] and none of ``dropped``."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "[ipv4]"), None)
    if start is None:
        if lines and lines[-1].strip():
            lines.append("")
        lines += ["[ipv4]", "method=manual"]
        start = len(lines) - 2
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].strip().startswith("[")),
        len(lines),
    )
    kept: list[str] = []
    present: set[str] = set()
    numbers = [0]
    insert = 0  # after the last address line, else after the group's last line
    for line in lines[start + 1 : end]:
        key, sep, value = line.strip().partition("=")
        found = _ADDRESS_KEY.match(key.strip()) if sep else None
        if found:
            cidr = value.split(",")[0].strip()
            if cidr in dropped and cidr not in wanted:
                continue
            present.add(cidr)
            numbers.append(int(found.group(1)))
        kept.append(line)
        if found or (line.strip() and not present):
            insert = len(kept)
    added = [
        f"address{max(numbers) + n}={cidr}"
        for n, cidr in enumerate((c for c in wanted if c not in present), start=1)
    ]
    kept[insert:insert] = added
    lines[start + 1 : end] = kept
    return "\n".join(lines) + "\n"


def render(request: RenderRequest) -> Rendered:
    profile = request.detection.nm_profiles[0]
    text = profile.content.decode("utf-8")
    wanted = [state.cidr for state in request.states]
    content = merge(text, wanted, request.dropped).encode()
    return Rendered(files={profile.path: FileState(content, profile.mode)})
