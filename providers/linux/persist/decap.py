"""The decap side of tunnel mode after a reboot: the devices and fou ports of [[tunnel]].

The modules come back through /etc/modules-load.d/dsrctl.conf (dsrctl.linux.tunnels);
what loading them does not give back is rendered here or by the VIP backend:

- a fallback device (``tunl0``, ``gre0``, ``ip6tnl0``, ``ip6gre0``) comes back with its
  module, but down: it must be set up;
- a collect-metadata device dsrctl created (``ip link add NAME type ipip external``,
  ``vxlan gpe external``...) does not exist: it must be created and set up;
- a fou/GUE receive port does not exist: it must be added.

What each backend writes for them (docs/persistence/*.md):

- ``ifupdown``: an ``iface NAME inet manual`` stanza per device whose ``pre-up`` creates
  it unless it exists (:mod:`.ifupdown`);
- ``systemd-networkd``: a ``.netdev`` per collect-metadata ipip, gre, ip6tnl or ip6gre
  device (``[Tunnel] External=yes``) and a ``.network`` per device of those kinds that
  brings it up (:mod:`.networkd`); the unit below for a vxlan-gpe device (systemd 252
  has no collect-metadata VXLAN) and for the GUE ports (networkd 252's ``Kind=fou`` sends
  an IP protocol of 0, which current kernels refuse: see :mod:`.networkd`);
  each backend's ``unit_part`` says what it leaves to the unit;
- every other backend, and ``none``: ``dsrctl-tunnels.service``, a oneshot unit of
  dsrctl's own with the very ``ip`` commands apply's netlink requests amount to.
  NetworkManager's ip-tunnel profiles have no collect-metadata mode and no fou; netplan's
  ``tunnels:`` have neither (nor VXLAN-GPE); the network-scripts (ifcfg) have no such
  device type. Proven on a distribution kernel in the VM tier
  (tests/vm/test_tunnel_reboot.py), the networkd backend's files too.

The unit runs after systemd-modules-load.service (the modules, hence the fallback devices
and the fou family, are there) and before network-pre.target (the decap side is ready
before the network and the services on the VIPs). ``ip link add`` fails when the device
exists, and ``ip fou add`` when the port does: those lines carry systemd's ``-`` prefix
(a failure does not fail the unit), and the ``ip link set NAME up`` that follows every
device, unprefixed, fails the unit when the device is not there after all. So a restart
of the unit, or a device created earlier by someone else, is harmless; a device of
another kind under that name stays as it is and ``dsrctl drift`` reports it.

The per-device ``rp_filter`` key stays in dsrctl's sysctl.d file: systemd-sysctl skips a
key whose device does not exist yet, and udev (99-systemd.rules) runs systemd-sysctl for
the device's keys when it appears.
"""

from __future__ import annotations

from providers.linux.persist import MANAGED, Rendered, comment_text, safe_name
from providers.model import FileState, TunnelState

UNIT_NAME = "dsrctl-tunnels.service"
UNIT_DIR = "/etc/systemd/system"
UNIT_PATH = f"{UNIT_DIR}/{UNIT_NAME}"
WANTS_LINK = f"{UNIT_DIR}/multi-user.target.wants/{UNIT_NAME}"
IP = "/sbin/ip"  # as dsrctl-vips.service: /sbin is /usr/sbin on merged-/usr systems
VXLAN_GPE_PORT = 4790

Tunnel = tuple[str, TunnelState]  # the device name and what it must be


def fallback(state: TunnelState) -> bool:
    """The device is the one its module creates (dsrctl only sets it up)."""
    return not state.external and state.kind != "vxlan-gpe"


def link_type(state: TunnelState) -> list[str]:
    """The ``type ...`` words of ``ip link add`` for a collect-metadata device: what
    providers.linux.tunnels sends through netlink."""
    if state.kind == "vxlan-gpe":
        return ["type", "vxlan", "gpe", "external", "dstport", str(VXLAN_GPE_PORT), "nolearning"]
    if state.kind == "ip6tnl":
        return ["type", "ip6tnl", "external", "mode", "ip6ip6"]
    if state.kind in ("ipip", "gre", "ip6gre"):
        return ["type", state.kind, "external"]
    raise ValueError(f"no decap device of kind {state.kind!r}")


def add_command(name: str, state: TunnelState) -> list[str]:
    return ["link", "add", safe_name(name), *link_type(state)]


def up_command(name: str) -> list[str]:
    return ["link", "set", safe_name(name), "up"]


def fou_command(port: int) -> list[str]:
    return ["fou", "add", "port", str(int(port)), "gue"]


def commands(tunnels: tuple[Tunnel, ...], ports: tuple[int, ...]) -> list[tuple[bool, list[str]]]:
    """(may fail, the ``ip`` arguments) in the order the boot runs them."""
    found: list[tuple[bool, list[str]]] = []
    for name, state in tunnels:
        if not fallback(state):
            found.append((True, add_command(name, state)))
        found.append((False, up_command(name)))
    found += [(True, fou_command(port)) for port in ports]
    return found


def header(spec_path: str) -> list[str]:
    return [
        f"# {MANAGED}{comment_text(spec_path)}; edits here are reverted by 'dsrctl apply'.",
        "# The decap devices and fou ports of tunnel-mode DSR, again at boot "
        "(see dsrctl docs/tunnel-mode.md).",
    ]


def unit_text(tunnels: tuple[Tunnel, ...], ports: tuple[int, ...], spec_path: str) -> str:
    lines = [
        *header(spec_path),
        "# '-': the device or port may exist already; the 'up' after each device may not fail.",
        "[Unit]",
        "Description=DSR tunnel decap devices (dsrctl)",
        "Documentation=man:ip-link(8) man:ip-fou(8)",
        "DefaultDependencies=no",
        "After=systemd-modules-load.service systemd-sysctl.service local-fs.target",
        "Before=network-pre.target shutdown.target",
        "Wants=network-pre.target",
        "Conflicts=shutdown.target",
        "",
        "[Service]",
        "Type=oneshot",
        "RemainAfterExit=yes",
        *(
            f"ExecStart={'-' if may_fail else ''}{IP} {' '.join(words)}"
            for may_fail, words in commands(tunnels, ports)
        ),
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"


def render_unit(tunnels: tuple[Tunnel, ...], ports: tuple[int, ...], spec_path: str) -> Rendered:
    """The unit and its wants link (paths as seen from the root); nothing without tunnels."""
    if not tunnels and not ports:
        return Rendered()
    return Rendered(
        files={UNIT_PATH: FileState(unit_text(tunnels, ports, spec_path).encode(), 0o644)},
        symlinks={WANTS_LINK: UNIT_PATH},
        dirs=(WANTS_LINK.rsplit("/", 1)[0],),
    )


def merge(into: Rendered, other: Rendered) -> Rendered:
    """``into`` with ``other``'s files, links and directories added (none repeated)."""
    into.files.update(other.files)
    into.symlinks.update(other.symlinks)
    into.dirs += tuple(d for d in other.dirs if d not in into.dirs)
    return into
