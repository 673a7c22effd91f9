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
  rendered yet;
- network-scripts (ifcfg): ``/etc/sysconfig/network-scripts/ifcfg-<interface>``.

A claim is *active* when the tool runs at boot: its service is enabled under the root
(a ``*.wants/`` link, as ``systemctl is-enabled`` sees it, or a SysV ``S*`` link for the
network-scripts) or, on the live host, it runs. Inactive claims are reported, not acted
on. dsrctl's own files never count as claims. On the live host the same is done for the
uplink (the interface of the default route), which ``show`` reports and ``auto`` uses on
hosts that systemd does not boot.
"""

from __future__ import annotations

import os

from providers.linux.persist import (
    Claim,
    Detection,
    NmProfile,
    ifcfg,
    ifupdown,
    netplan,
    networkd,
    networkmanager,
    probe,
)
from providers.linux.persist.tree import Tree, boots_with_systemd, first_by_name, is_live
from providers.model import under_root as under

__all__ = ["Tree", "boots_with_systemd", "detect", "first_by_name", "is_live", "running_daemons"]

UNIT_DIRS = ("/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")
_DAEMONS = {"systemd-network": "networkd", "NetworkManager": "networkmanager"}
_SYSV_NETWORK = ("/etc/rc.d/rc{}.d/S*network", "/etc/rc{}.d/S*network")


class Scan:
    """One detection run: the tree, what runs, and what has been found so far."""

    def __init__(self, root: str, interface: str, running: frozenset[str]) -> None:
        self.tree = Tree(root)
        self.interface = interface
        self.live = is_live(root)
        self.running = running
        self.systemd = (
            "systemd" in self.running
            if self.live
            else self.tree.exists("/etc/systemd/system", "dir")
        )
        self.claims: list[Claim] = []
        self.facts: dict[str, str] = {}
        self.profiles: list[NmProfile] = []
        self.services: set[str] = set()
        self.nm_version = probe.nm_version(root, self.live)
        self.link_type = probe.link_type(interface) if self.live else None

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


def detect(root: str, interface: str, proc: str = "/proc", uplink: str | None = None) -> Detection:
    """What configures ``interface`` (and, if given, ``uplink``) at boot under ``root``."""
    running = running_daemons(root, proc) if is_live(root) else frozenset()
    scan = Scan(root, interface, running)
    found = _scan_claims(scan)
    notes = [
        f"{claim.describe()} is ignored: {claim.inactive_reason}"
        for claim in scan.claims
        if not claim.active
    ]
    notes += [
        f"cannot read {path} (permission denied): detection may have missed what it "
        "configures; run as root"
        for path in dict.fromkeys(scan.tree.unreadable)
    ]
    uplink_claims: tuple[Claim, ...] = ()
    if uplink is not None and uplink != interface:
        uplink_claims = tuple(_scan_claims_only(Scan(root, uplink, running)))
    return Detection(
        root=root,
        interface=interface,
        live=scan.live,
        systemd=scan.systemd,
        claims=tuple(scan.claims),
        running=scan.running,
        services=frozenset(scan.services),
        networkd_network=scan.facts.get("networkd_network"),
        networkd_keep=scan.facts.get("networkd_keep"),
        netplan_id=scan.facts.get("netplan_id"),
        netplan_renderer=scan.facts.get("netplan_renderer"),
        nm_profiles=tuple(scan.profiles),
        ifupdown_sources_dropins=ifupdown.reads_dropin(found),
        nm_version=scan.nm_version,
        ifcfg_parent=scan.tree.exists(ifcfg.parent_path(interface), "file"),
        ifcfg_aliases=tuple(ifcfg.aliases(scan.tree, interface)),
        ifcfg_route_files=tuple(ifcfg.foreign_route_files(scan.tree, interface)),
        uplink=uplink,
        uplink_claims=uplink_claims,
        notes=tuple(notes),
    )


def _scan_claims(scan: Scan) -> ifupdown.Interfaces:
    _networkd(scan)
    _networkmanager(scan)
    found = ifupdown.read_all(scan.tree)
    _ifupdown(scan, found)
    _ifcfg(scan)
    if not any(claim.backend == "netplan" for claim in scan.claims):
        declared = netplan.declares(scan.tree, scan.interface)
        if declared is not None:
            scan.claim("netplan", declared, f"declares {scan.interface}, not rendered yet", [])
    return found


def _scan_claims_only(scan: Scan) -> list[Claim]:
    _scan_claims(scan)
    return scan.claims


def _networkd(scan: Scan) -> None:
    enabled = scan.enabled("systemd-networkd.service", "networkd")
    if enabled:
        scan.services.add("systemd-networkd")
    why_not = [(not enabled, "systemd-networkd is not enabled")]
    own = networkd.own_network(scan.interface)
    for path, text in first_by_name(scan.tree, networkd.NETWORK_DIRS, ".network"):
        if path == own or not networkd.matches(text, scan.interface, scan.link_type):
            continue
        netplan_id = netplan.rendered_id(path.rsplit("/", 1)[-1])
        if netplan_id is not None and path.startswith(netplan.RENDERED_NETWORKD):
            detail = f"renders id {netplan_id!r} for networkd"
            scan.claim("netplan", path, detail, why_not)
            scan.facts.update(netplan_id=netplan_id, netplan_renderer="networkd")
        else:
            scan.claim("systemd-networkd", path, _match_line(text), why_not)
        scan.facts["networkd_network"] = path
        keep = networkd.keep_configuration([text, *_networkd_dropins(scan.tree, path)])
        if keep is not None:
            scan.facts["networkd_keep"] = keep
        return  # networkd uses the first matching file only


def _networkd_dropins(tree: Tree, network: str) -> list[str]:
    """The texts of a .network file's drop-ins in the order networkd reads them."""
    name = network.rsplit("/", 1)[-1]
    directories = tuple(f"{directory}/{name}.d" for directory in networkd.NETWORK_DIRS)
    own = f"{networkd.dropin_dir(network)}/{networkd.DROPIN_NAME}"
    return [text for path, text in first_by_name(tree, directories, ".conf") if path != own]


def _networkmanager(scan: Scan) -> None:
    nm_on = scan.enabled("NetworkManager.service", "networkmanager")
    if nm_on:
        scan.services.add("networkmanager")
    own = networkmanager.own_profile(scan.interface)
    old = f"NetworkManager {scan.nm_version} has no loopback profiles (1.42 and later have them)"
    for path, text in first_by_name(scan.tree, networkmanager.PROFILE_DIRS, ".nmconnection"):
        if path == own or not networkmanager.claims_interface(text, scan.interface):
            continue
        too_old = scan.interface == "lo" and _nm_too_old(scan.nm_version)
        why_not = [
            (too_old, old),
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
        scan.claim("networkmanager", path, detail, why_not)
        # The profile NetworkManager would activate, even while it is not enabled.
        if networkmanager.autoconnects(text) and not too_old:
            found = scan.tree.read_bytes(path)
            if found is not None:
                scan.profiles.append(NmProfile(path, *found))


def _ifupdown(scan: Scan, found: ifupdown.Interfaces) -> None:
    how = ifupdown.configures(found, scan.interface)
    if how is None:
        return
    tree = scan.tree
    installed = any(tree.exists(p) for p in ("/sbin/ifup", "/usr/sbin/ifup"))
    booted = scan.live and tree.exists("/run/network/ifstate")
    started = not scan.systemd or booted or scan.enabled("networking.service")
    why_not = [
        (not installed, "ifupdown is not installed"),
        (not started, "networking.service is not enabled"),
    ]
    if scan.claim("ifupdown", ifupdown.INTERFACES, how, why_not):
        scan.services.add("ifupdown")


def _ifcfg(scan: Scan) -> None:
    """network-scripts: ifcfg-<interface>, the scripts, and the SysV ``network`` service."""
    tree = scan.tree
    installed = tree.exists(ifcfg.ALIASES_SCRIPT)
    sysv = any(tree.glob(pattern.format(level)) for pattern in _SYSV_NETWORK for level in "2345")
    enabled = installed and (sysv or scan.enabled("network.service"))
    if enabled:
        scan.services.add("ifcfg")
    path = ifcfg.parent_path(scan.interface)
    text = tree.read(path)
    if text is None:
        return
    device = ifcfg.parse(text).get("DEVICE", scan.interface)
    why_not = [
        (not installed, "the network-scripts are not installed"),
        (not enabled, "the network-scripts 'network' service is not enabled"),
    ]
    scan.claim("ifcfg", path, f"DEVICE={device}", why_not)


def _nm_too_old(version: str | None) -> bool:
    found = networkmanager.version_tuple(version)
    return found is not None and found[:2] < networkmanager.MIN_VERSION


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


def _match_line(text: str) -> str:
    keys = [f"{k}={v}" for section, k, v in networkd.parse(text) if section == "Match"]
    return "[Match] " + (" ".join(keys) if keys else "(empty: matches every link)")
