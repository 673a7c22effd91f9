"""The ``networkmanager`` backend: the VIPs as addresses of the loopback profile.

NetworkManager (1.42 and later) manages ``lo`` only through a profile of
``type=loopback``; when it activates or reapplies that profile it sets the addresses the
profile lists, and foreign ones can go. Keyfile profiles have no drop-ins, so dsrctl adds
``addressN=`` entries to the ``[ipv4]`` group of the operator's profile, in place,
keeping every other line (and the file's mode: NetworkManager ignores keyfiles that are
not 0600). The first apply records the profile as it was; when the spec no longer asks
for persistence through NetworkManager, the next apply puts that content back, like any
file dsrctl changed. A VIP that dsrctl added and the spec drops also leaves the profile.

With no loopback profile (``networkmanager`` chosen explicitly: ``auto`` picks the systemd
unit there, since NetworkManager then leaves ``lo`` alone), dsrctl writes a profile of its
own, ``dsrctl-lo.nmconnection`` (mode 0600, a UUID derived from the interface name so
that it is the same at every run), which keeps 127.0.0.1/8 and ::1.

NetworkManager older than 1.42 has no loopback profiles: refused, with ``systemd-unit``
suggested. The version comes from ``NetworkManager --version`` on the live host, or from
the dpkg database under the root; when neither tells, the plan says so.

A VIP range is a route of the profile, ``routeN=<range>`` with
``routeN_options=table=255,type=local`` in ``[ipv4]`` (or ``[ipv6]``); NetworkManager adds
it on the profile's device. In the operator's profile dsrctl adds and removes only its
own route lines, like its addresses.

Limits, refused before anything changes: profiles keep neither address labels (IPv4
VIPs must keep the default label) nor lifetimes or DAD flags (no IPv6 VIP can stay
deprecated), so such VIPs need another backend.
"""

from __future__ import annotations

import re
import uuid

from providers.linux.persist import (
    Detection,
    NmProfile,
    Rendered,
    RenderRequest,
    all_to_unit,
    default_label,
    managed_header,
    no_check,
    no_labels,
    safe_name,
)
from providers.model import AddressState, FileState, RouteState

PROFILE_DIRS = (
    "/etc/NetworkManager/system-connections",
    "/run/NetworkManager/system-connections",
    "/usr/lib/NetworkManager/system-connections",
)
OWN_DIR = PROFILE_DIRS[0]
MIN_VERSION = (1, 42)  # the first NetworkManager with loopback profiles
_ADDRESS_KEY = re.compile(r"^address(\d+)$")
_ROUTE_KEY = re.compile(r"^route(\d+)$")
ROUTE_TABLES = {"local": "255", "main": "254"}  # keyfiles take table numbers
_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


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


def own_profile(interface: str) -> str:
    return f"{OWN_DIR}/dsrctl-{interface}.nmconnection"


def version_tuple(version: str | None) -> tuple[int, ...] | None:
    found = _VERSION.search(version or "")
    if found is None:
        return None
    return tuple(int(part) for part in found.groups() if part is not None)


def too_old(detection: Detection) -> bool:
    """NetworkManager is known to predate loopback profiles (only ``lo`` needs them)."""
    found = version_tuple(detection.nm_version)
    return detection.interface == "lo" and found is not None and found[:2] < MIN_VERSION


def requirement(detection: Detection) -> str | None:
    profiles = detection.nm_profiles
    if too_old(detection):
        return (
            f"NetworkManager {detection.nm_version} has no loopback profiles (1.42 and "
            f"later have them), so it cannot bring the VIPs on {detection.interface} back "
            "after a reboot; use 'systemd-unit'"
        )
    if not profiles:
        if detection.interface == "lo":
            return None  # dsrctl writes a loopback profile of its own
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


def notes(detection: Detection) -> list[str]:
    result = []
    where = "this host" if detection.live else detection.root
    if detection.interface == "lo" and version_tuple(detection.nm_version) is None:
        result.append(
            f"the NetworkManager version on {where} is unknown: loopback profiles need "
            "NetworkManager 1.42 or later, and an older one would not bring the VIPs back "
            "after a reboot (check with 'NetworkManager --version')"
        )
    if "networkmanager" not in detection.services:
        path = detection.nm_profiles[0].path if detection.nm_profiles else own_profile("lo")
        result.append(
            f"WARNING: NetworkManager is not enabled on {where}: nothing activates {path} "
            "at boot; enable it (systemctl enable NetworkManager) or choose another backend"
        )
    return result


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


def route_options(route: RouteState) -> str:
    return f"table={ROUTE_TABLES.get(route.table, route.table)},type={route.type}"


def route_lines(routes: list[RouteState], first: int) -> list[str]:
    lines = []
    for number, route in enumerate(routes, start=first):
        lines += [
            f"route{number}={route.destination}",
            f"route{number}_options={route_options(route)}",
        ]
    return lines


def merge_routes(text: str, group: str, wanted: list[RouteState], dropped: frozenset[str]) -> str:
    """``text`` with a route line (and its options) for each of ``wanted`` in ``group``
    and none for ``dropped`` (cidr); the operator's own route lines are kept."""
    if not wanted and not dropped:
        return text
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == f"[{group}]"), None)
    if start is None:
        if not wanted:
            return text
        if lines and lines[-1].strip():
            lines.append("")
        lines += [f"[{group}]"]
        start = len(lines) - 1
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].strip().startswith("[")),
        len(lines),
    )
    drop = {cidr for cidr in dropped if cidr not in {route.destination for route in wanted}}
    numbers = [0]
    present: set[str] = set()
    removed: set[str] = set()
    for line in lines[start + 1 : end]:
        key, sep, value = line.strip().partition("=")
        found = _ROUTE_KEY.match(key.strip()) if sep else None
        if found:
            cidr = value.split(",")[0].strip()
            numbers.append(int(found.group(1)))
            if cidr in drop:
                removed.add(found.group(1))
            else:
                present.add(cidr)
    kept = []
    for line in lines[start + 1 : end]:
        key = line.strip().partition("=")[0].strip()
        number = key.removeprefix("route").removesuffix("_options")
        if not (key.startswith("route") and number in removed):
            kept.append(line)
    # after the group's last line that is not blank (blank lines stay before the next group)
    insert = max((i + 1 for i, line in enumerate(kept) if line.strip()), default=0)
    added = route_lines([r for r in wanted if r.destination not in present], max(numbers) + 1)
    kept[insert:insert] = added
    lines[start + 1 : end] = kept
    return "\n".join(lines) + "\n"


def own_profile_text(request: RenderRequest) -> str:
    # GKeyFile values keep no escapes here: a safe name has no '\\', ';' or whitespace.
    interface = safe_name(request.interface)
    stable = uuid.uuid5(uuid.NAMESPACE_URL, f"dsrctl:networkmanager:{interface}")
    lines = [
        *managed_header(request.spec_path),
        "[connection]",
        f"id=dsrctl-{interface}",
        f"uuid={stable}",
        "type=loopback",
        f"interface-name={interface}",
        "",
        "[loopback]",
        "",
        "[ipv4]",
        "method=manual",
        "address1=127.0.0.1/8",
        *(f"address{number}={state.cidr}" for number, state in enumerate(request.states, start=2)),
        *route_lines([r for r in request.routes if r.version == 4], 1),
        "",
        "[ipv6]",
        "method=manual",
        "address1=::1/128",
        *route_lines([r for r in request.routes if r.version == 6], 1),
    ]
    return "\n".join(lines) + "\n"


def render(request: RenderRequest) -> Rendered:
    if not request.detection.nm_profiles:
        text = own_profile_text(request)
        return Rendered(files={own_profile(request.interface): FileState(text.encode(), 0o600)})
    profile = request.detection.nm_profiles[0]
    text = profile.content.decode("utf-8")
    wanted = [state.cidr for state in request.states]
    merged = merge(text, wanted, request.dropped)
    for group, version in (("ipv4", 4), ("ipv6", 6)):
        routes = [route for route in request.routes if route.version == version]
        dropped = frozenset(c for c in request.dropped_routes if (":" in c) == (version == 6))
        merged = merge_routes(merged, group, routes, dropped)
    content = merged.encode()
    return Rendered(files={profile.path: FileState(content, profile.mode)})


# What this backend does not need of the Backend Protocol (providers.linux.persist.backends).
labels = no_labels
check = no_check
unit_part = all_to_unit
