"""Detection: which tool configures the interface at boot, read from the files under a root.

Everything is read from files, so that a root other than "/" (an image, a test tree)
is detected exactly like the live host; only when the root is "/" does dsrctl also look
at what is running (``/proc/*/comm``, ``/run/systemd/system``). A tool "claims" the
interface when its configuration selects it:

- systemd-networkd: the first .network file, by name, whose [Match] selects it
  (netplan's generated ``/run/systemd/network/10-netplan-<id>.network`` counts as netplan);
- NetworkManager: a keyfile profile of ``type=loopback`` (for lo) or with
  ``interface-name=`` the interface (netplan's ``netplan-<id>.nmconnection`` counts as netplan);
- ifupdown: ``auto`` plus an ``iface`` stanza for it in /etc/network/interfaces or a file
  it sources;
- netplan: a rendered file as above, or a YAML file that names it when nothing is
  rendered yet.

A claim is *active* when the tool runs at boot: its service is enabled under the root
(a ``*.wants/`` link, as ``systemctl is-enabled`` sees it) or, on the live host, it runs.
Inactive claims are reported, not acted on. dsrctl's own files never count as claims.
"""

from __future__ import annotations

import glob
import os
import re

from dsrctl.model import under_root as under
from providers.linux.persist import (
    Claim,
    Detection,
    NmProfile,
    ifupdown,
    netplan,
    networkd,
    networkmanager,
)

UNIT_DIRS = ("/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")
_DAEMONS = {"systemd-network": "networkd", "NetworkManager": "networkmanager"}


class Tree:
    """Read-only access to the files under a root, by their path as seen from the root.

    A file that exists but cannot be read is remembered, so that the plan can say that
    detection is incomplete instead of quietly guessing."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.unreadable: list[str] = []

    def path(self, logical: str) -> str:
        return under(self.root, logical)

    def read(self, logical: str) -> str | None:
        try:
            with open(self.path(logical), encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except PermissionError:
            self.unreadable.append(logical)
        except OSError:
            pass
        return None

    def glob(self, pattern: str) -> list[str]:
        return sorted("/" + os.path.relpath(p, self.root) for p in glob.glob(self.path(pattern)))

    def listdir(self, logical: str) -> list[str]:
        try:
            return sorted(os.listdir(self.path(logical)))
        except OSError:
            return []


class Scan:
    """One detection run: the tree, what runs, and what has been found so far."""

    def __init__(self, root: str, interface: str, proc: str) -> None:
        self.tree = Tree(root)
        self.interface = interface
        self.live = os.path.realpath(root) == "/"
        self.running = running_daemons(root, proc) if self.live else frozenset()
        self.systemd = (
            "systemd" in self.running
            if self.live
            else os.path.isdir(self.tree.path("/etc/systemd/system"))
        )
        self.claims: list[Claim] = []
        self.facts: dict[str, str] = {}
        self.profiles: list[NmProfile] = []

    def enabled(self, unit: str, daemon: str = "") -> bool:
        """Running (live root), or enabled the way `systemctl is-enabled` sees it."""
        return daemon in self.running or any(
            os.path.lexists(self.tree.path(link))
            for directory in UNIT_DIRS
            for kind in ("wants", "requires")
            for link in self.tree.glob(f"{directory}/*.{kind}/{unit}")
        )

    def claim(self, backend: str, path: str, detail: str, why_not: list[tuple[bool, str]]) -> bool:
        """Record a claim; it is active unless one of ``why_not`` holds."""
        reason = next((text for failed, text in why_not if failed), "")
        self.claims.append(Claim(backend, path, detail, not reason, reason))
        return not reason


def detect(root: str, interface: str, proc: str = "/proc") -> Detection:
    scan = Scan(root, interface, proc)
    _networkd(scan)
    _networkmanager(scan)
    found = _read_interfaces(scan.tree)
    _ifupdown(scan, found)
    if not any(claim.backend == "netplan" for claim in scan.claims):
        declared = _netplan_declares(scan.tree, interface)
        if declared is not None:
            scan.claim("netplan", declared, f"declares {interface}, not rendered yet", [])
    notes = [
        f"{claim.describe()} is ignored: {claim.inactive_reason}"
        for claim in scan.claims
        if not claim.active
    ]
    notes += [
        f"cannot read {path} (permission denied): detection may have missed what it "
        "configures; run as root"
        for path in scan.tree.unreadable
    ]
    legacy = f"/etc/sysconfig/network-scripts/ifcfg-{interface}"
    if os.path.exists(scan.tree.path(legacy)):
        notes.append(
            f"{legacy} exists: legacy network-scripts do not remove addresses they did not "
            "add, so they need no VIP configuration of their own"
        )
    return Detection(
        root=root,
        interface=interface,
        live=scan.live,
        systemd=scan.systemd,
        claims=tuple(scan.claims),
        running=scan.running,
        networkd_network=scan.facts.get("networkd_network"),
        netplan_id=scan.facts.get("netplan_id"),
        netplan_renderer=scan.facts.get("netplan_renderer"),
        nm_profiles=tuple(scan.profiles),
        ifupdown_sources_dropins=ifupdown.reads_dropin(found),
        notes=tuple(notes),
    )


def _networkd(scan: Scan) -> None:
    why_not = [
        (
            not scan.enabled("systemd-networkd.service", "networkd"),
            "systemd-networkd is not enabled",
        )
    ]
    for path, text in first_by_name(scan.tree, networkd.NETWORK_DIRS, ".network"):
        if not networkd.matches(text, scan.interface):
            continue
        netplan_id = netplan.rendered_id(path.rsplit("/", 1)[-1])
        if netplan_id is not None and path.startswith(netplan.RENDERED_NETWORKD):
            detail = f"renders id {netplan_id!r} for networkd"
            scan.claim("netplan", path, detail, why_not)
            scan.facts.update(netplan_id=netplan_id, netplan_renderer="networkd")
        else:
            scan.claim("networkd", path, _match_line(text), why_not)
        scan.facts["networkd_network"] = path
        return  # networkd uses the first matching file only


def _networkmanager(scan: Scan) -> None:
    nm_on = scan.enabled("NetworkManager.service", "networkmanager")
    for path, text in first_by_name(scan.tree, networkmanager.PROFILE_DIRS, ".nmconnection"):
        if not networkmanager.claims_interface(text, scan.interface):
            continue
        why_not = [
            (not nm_on, "NetworkManager is not enabled"),
            (not networkmanager.autoconnects(text), "the profile has autoconnect=false"),
        ]
        netplan_id = netplan.rendered_id(path.rsplit("/", 1)[-1])
        if netplan_id is not None and path.startswith(netplan.RENDERED_NM):
            detail = f"renders id {netplan_id!r} for NetworkManager"
            scan.claim("netplan", path, detail, why_not)
            scan.facts.update(netplan_id=netplan_id, netplan_renderer="NetworkManager")
            continue
        lo = scan.interface == "lo"
        detail = "type=loopback" if lo else f"interface-name={scan.interface}"
        if scan.claim("networkmanager", path, detail, why_not):
            with open(scan.tree.path(path), "rb") as handle:
                mode = os.fstat(handle.fileno()).st_mode & 0o7777
                scan.profiles.append(NmProfile(path, handle.read(), mode))


def _ifupdown(scan: Scan, found: ifupdown.Interfaces) -> None:
    how = ifupdown.configures(found, scan.interface)
    if how is None:
        return
    tree = scan.tree
    installed = any(os.path.exists(tree.path(p)) for p in ("/sbin/ifup", "/usr/sbin/ifup"))
    booted = scan.live and os.path.exists(tree.path("/run/network/ifstate"))
    started = not scan.systemd or booted or scan.enabled("networking.service")
    why_not = [
        (not installed, "ifupdown is not installed"),
        (not started, "networking.service is not enabled"),
    ]
    scan.claim("ifupdown", ifupdown.INTERFACES, how, why_not)


def running_daemons(root: str, proc: str) -> frozenset[str]:
    """The network daemons running on the live host, and "systemd" if it booted it."""
    seen = {"systemd"} if os.path.isdir(under(root, "/run/systemd/system")) else set()
    try:
        entries = [entry.name for entry in os.scandir(proc) if entry.name.isdigit()]
    except OSError:
        return frozenset(seen)
    for pid in entries:
        try:
            with open(os.path.join(proc, pid, "comm"), encoding="utf-8") as handle:
                name = _DAEMONS.get(handle.read().strip())
        except OSError:
            continue  # the process is gone, or hidden from us
        if name:
            seen.add(name)
    return frozenset(seen)


def first_by_name(tree: Tree, directories: tuple[str, ...], suffix: str) -> list[tuple[str, str]]:
    """(path, text) of each config file, one per name (the first directory wins), by name."""
    chosen: dict[str, str] = {}
    for directory in directories:
        for name in tree.listdir(directory):
            if name.endswith(suffix) and name not in chosen:
                chosen[name] = f"{directory}/{name}"
    result = []
    for name in sorted(chosen):
        text = tree.read(chosen[name])
        if text is not None:  # a dangling link masks the name, as for systemd
            result.append((chosen[name], text))
    return result


def _read_interfaces(tree: Tree) -> ifupdown.Interfaces:
    """/etc/network/interfaces and what it sources, dsrctl's own file left out."""
    total = ifupdown.Interfaces()
    queue, seen = [ifupdown.INTERFACES], set()
    while queue:
        path = queue.pop(0)
        if path in seen or path == ifupdown.DROPIN:
            continue
        seen.add(path)
        text = tree.read(path)
        if text is None:
            continue
        found = ifupdown.parse(text, path)
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


def _netplan_declares(tree: Tree, interface: str) -> str | None:
    pattern = re.compile(rf"^\s+[\"']?{re.escape(interface)}[\"']?\s*:", re.MULTILINE)
    for directory in netplan.NETPLAN_DIRS:
        for path in tree.glob(f"{directory}/*.yaml"):
            text = tree.read(path)
            if path != netplan.DROPIN and text is not None and pattern.search(text):
                return path
    return None


def _match_line(text: str) -> str:
    keys = [f"{k}={v}" for section, k, v in networkd.parse(text) if section == "Match"]
    return "[Match] " + (" ".join(keys) if keys else "(empty: matches every link)")
