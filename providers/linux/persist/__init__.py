"""Persistence of the VIPs across a reboot, on Linux: detection and one module per backend.

The runtime part of dsrctl (sysctls through /proc, addresses through netlink) is gone after
a reboot. The sysctl file brings the ARP keys back (systemd-sysctl); the VIPs must be
declared to whatever configures ``linux.interface`` at boot, or they are lost, or worse,
removed again by a tool that "owns" the interface:

- ``systemd-networkd`` (alias ``networkd``): systemd-networkd drops addresses it was not
  told about when it configures a link it manages. dsrctl adds a drop-in to the .network
  file that matches the interface, or (for lo) writes a .network file of its own.
- ``networkmanager``: an active loopback profile can wipe foreign addresses on (re)apply.
  dsrctl adds the VIPs to that profile, or writes a loopback profile of its own.
- ``ifupdown``: ``iface lo:N inet static`` stanzas in ``/etc/network/interfaces.d/dsrctl``.
- ``netplan``: ``/etc/netplan/90-dsrctl.yaml``, merged by netplan into the interface's
  definition and rendered to systemd-networkd.
- ``ifcfg``: ``ifcfg-lo:N`` alias files for the legacy RHEL network-scripts, whose
  ``ifup-aliases`` removes ``lo:*`` aliases that have no such file.
- ``systemd-unit``: when nothing manages the interface, a oneshot unit that runs
  ``ip address replace`` after systemd-sysctl and before the network is set up.

The [[tunnel]] decap devices and fou ports come back through ifupdown's stanzas,
systemd-networkd's .netdev/.network files (all but vxlan-gpe and the fou ports) or
dsrctl-tunnels.service for the rest and with every other backend (:mod:`.decap`).

Layout: :mod:`.detect` reads the host (or a tree under ``linux.persist.root``) into a
:class:`Detection`; the backend modules parse their configuration formats and render
files from the desired address states; :mod:`dsrctl.linux.persistence` (pure) chooses the
backend and turns the rendering into desired resources. Reading and rendering never write.

Two host effects are not files, and they fit the step model as follows:

- The link that enables a unit (``*.wants/dsrctl-vips.service``) is a resource of its own
  kind (``symlink:<path>``, value: the link target), planned, journaled and inverted like
  a file. A directory dsrctl must create for a drop-in is a ``dir:<path>`` resource, so
  that dsrctl removes only directories it created.
- Reloading a daemon (``systemctl daemon-reload``, ``networkctl reload``...) is not a
  resource: there is nothing to compare and nothing to record. It is an effect of changing
  a file that a running daemon reads, so the provider runs it right after it writes,
  links or removes such a path (see :mod:`.reload`) and puts the file back if it fails,
  which keeps every step atomic. A rollback restores the file and reloads again, in the
  right order by construction; a separate "post-apply hook" step would be undone before
  the files it depends on are restored. Plans name the reload in the step's note.
"""

from __future__ import annotations

import string
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from providers.model import AddressState, FileState, RouteState, TunnelState


@dataclass(frozen=True)
class Claim:
    """Evidence that a tool configures the interface at boot."""

    backend: str
    path: str  # the file that shows it, as seen from the root
    detail: str  # e.g. "[Match] Name=lo"
    active: bool  # the tool runs at boot (enabled, or running on this host)
    inactive_reason: str = ""

    def describe(self) -> str:
        return f"{self.backend} ({self.path}: {self.detail})"

    def to_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "path": self.path,
            "detail": self.detail,
            "active": self.active,
            **({"inactive_reason": self.inactive_reason} if self.inactive_reason else {}),
        }


@dataclass(frozen=True)
class NmProfile:
    path: str  # as seen from the root
    content: bytes
    mode: int


@dataclass(frozen=True)
class IfcfgAlias:
    """An ``ifcfg-<interface>:<name>`` file of the network-scripts, as found under the root."""

    name: str  # what follows the colon: the alias is <interface>:<name>
    path: str  # as seen from the root
    ipaddr: str | None  # its IPADDR=
    ours: bool  # dsrctl wrote it (its first line is dsrctl's header)


@dataclass(frozen=True)
class Detection:
    """What configures ``interface`` under ``root`` at boot; read-only facts."""

    root: str
    interface: str
    live: bool  # root is "/": running daemons were looked at
    systemd: bool  # systemd boots this root
    claims: tuple[Claim, ...] = ()
    running: frozenset[str] = frozenset()  # "systemd", "networkd", "networkmanager"
    # backends whose boot service is enabled under the root (or runs on the live host)
    services: frozenset[str] = frozenset()
    networkd_network: str | None = None  # the .network networkd uses for the interface
    # KeepConfiguration= of that file and its drop-ins (dsrctl's left out); None: not set
    networkd_keep: str | None = None
    netplan_id: str | None = None  # the netplan definition rendered for the interface
    netplan_renderer: str | None = None  # "networkd" or "NetworkManager"
    nm_profiles: tuple[NmProfile, ...] = ()
    ifupdown_sources_dropins: bool = False  # interfaces reads /etc/network/interfaces.d
    nm_version: str | None = None  # NetworkManager's version, when it can be found
    ifcfg_parent: bool = False  # /etc/sysconfig/network-scripts/ifcfg-<interface> exists
    ifcfg_aliases: tuple[IfcfgAlias, ...] = ()  # ifcfg-<interface>:* files
    # route-<interface>/route6-<interface> files that are not dsrctl's (as seen from the root)
    ifcfg_route_files: tuple[str, ...] = ()
    uplink: str | None = None  # the interface of the default route (live host only)
    uplink_claims: tuple[Claim, ...] = ()  # what configures the uplink at boot
    notes: tuple[str, ...] = ()

    def active_claims(self) -> list[Claim]:
        return [claim for claim in self.claims if claim.active]

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "root": self.root,
            "interface": self.interface,
            "systemd": self.systemd,
            "running": sorted(self.running),
            "claims": [claim.to_json() for claim in self.claims],
            "notes": list(self.notes),
        }
        if self.nm_version is not None:
            result["networkmanager_version"] = self.nm_version
        if self.uplink is not None:
            result["uplink"] = {
                "interface": self.uplink,
                "claims": [claim.to_json() for claim in self.uplink_claims],
            }
        return result


@dataclass(frozen=True)
class RenderRequest:
    """What a backend renders from: the desired VIP states and the detected host."""

    states: tuple[AddressState, ...]
    interface: str
    spec_path: str
    detection: Detection
    # VIPs dsrctl added that the spec no longer names (cidr): out of a shared file too
    dropped: frozenset[str] = frozenset()
    # the VIP ranges: local routes in table local on the interface (AnyIP), and the
    # ranges dsrctl added that the spec no longer names (cidr)
    routes: tuple[RouteState, ...] = ()
    dropped_routes: frozenset[str] = frozenset()
    # the [[tunnel]] decap devices (name, state) and GUE ports, for a backend that brings
    # them back itself (ifupdown, systemd-networkd some kinds; what the backend's
    # ``unit_part`` returns is left to dsrctl-tunnels.service, see
    # providers.linux.persist.decap)
    tunnels: tuple[tuple[str, TunnelState], ...] = ()
    fou_ports: tuple[int, ...] = ()


@dataclass
class Rendered:
    """What a backend writes, by path as seen from the root."""

    files: dict[str, FileState] = field(default_factory=dict)
    symlinks: dict[str, str] = field(default_factory=dict)
    dirs: tuple[str, ...] = ()  # directories the files need, parents first


MANAGED = "Managed by dsrctl from "  # how every file dsrctl owns whole begins (after "# ")


# Characters that end a line for some reader of these files (systemd ends lines at \r
# and NUL too, YAML 1.1 at NEL and U+2028/9), hide text (bidi overrides) or cannot be
# written as UTF-8 (the surrogates of an undecodable file name). dsrctl.spec refuses
# them in the spec's path; the header escapes them anyway, as the last line of defence.
_CONTROL_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# What an interface name or label may hold to be written into any backend's file as is
# (dsrctl.spec.LABEL_CHARACTERS refuses the rest at validate): no quoting, no specifier,
# no shell or glob character, no whitespace.
SAFE_NAME = frozenset(string.ascii_letters + string.digits + "_.-:")


def comment_text(text: str) -> str:
    """``text`` made safe inside a '#' comment line: control characters as escapes."""
    return "".join(
        repr(char)[1:-1] if unicodedata.category(char) in _CONTROL_CATEGORIES else char
        for char in text
    )


def safe_name(text: str) -> str:
    """``text`` if it can go into any backend's file unquoted; raise otherwise.

    The spec refuses every other name at validate, so this raising is a bug (a caller
    that skipped the spec's checks), never a user error: better no file than a wrong one.
    """
    if not text or any(char not in SAFE_NAME for char in text) or text[0] == "-":
        raise ValueError(f"refusing to write the name {text!r} into a configuration file")
    return text


def managed_header(spec_path: str, comment: str = "#") -> list[str]:
    return [
        f"{comment} {MANAGED}{comment_text(spec_path)}; edits here are reverted by 'dsrctl apply'.",
        f"{comment} The DSR VIPs, configured again at boot (see dsrctl docs/persistence).",
    ]


def default_label(state: AddressState, interface: str) -> bool:
    """True when the address carries the label the kernel gives it anyway."""
    return state.version == 6 or state.label in (None, interface)


# The defaults of the optional parts of a backend (providers.linux.persist.backends.Backend):
# a backend module that has nothing to add binds them (``notes = no_notes``...).
def no_notes(detection: Detection) -> list[str]:
    return []


def no_labels(request: RenderRequest) -> dict[str, str]:
    return {}  # every unlabelled VIP comes back as the kernel labels it


def no_check(request: RenderRequest) -> str | None:
    return None


Decap = tuple[tuple[tuple[str, TunnelState], ...], tuple[int, ...]]  # devices, GUE ports


def all_to_unit(tunnels: tuple[tuple[str, TunnelState], ...], ports: tuple[int, ...]) -> Decap:
    return tunnels, ports  # the backend brings back nothing of the decap side itself
