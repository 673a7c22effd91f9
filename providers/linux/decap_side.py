"""The decap side of tunnel mode as ``show`` lists it: every tunnel-kind device of this
network namespace (and the devices named by the caller), the fou ports, the kernel
modules of the tunnel kinds and dsrctl's nftables table (the MSS clamp).

Reading changes nothing: the fou ports are asked for only when the fou module is loaded
(providers/linux/fou.py: asking for the family would load it), modules are looked up in
/sys/module and modules.builtin, never modprobe'd. What cannot be read without
CAP_NET_ADMIN (the fou dump, ``nft list table``) is said in a note instead of failing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

from providers.errors import HostError, PrivilegeError
from providers.linux import kmod, rtnl
from providers.linux.tunnels import module_users, read_tunnels, tunnel_state
from providers.model import ModuleState, MssClamp, TunnelState

# The link kinds of decap devices; a vxlan device counts in GPE mode only.
DECAP_KINDS = ("ipip", "gre", "ip6tnl", "ip6gre")
NEEDS_ROOT = "run dsrctl show as root (it needs CAP_NET_ADMIN)"


@dataclass(frozen=True)
class DecapSide:
    """What :func:`read_decap_side` found. ``fou_ports`` / ``mss_read`` say whether
    those could be read; the note beside each says why not."""

    devices: dict[str, TunnelState] = field(default_factory=dict)
    fou_ports: dict[int, str] | None = field(default_factory=dict)
    fou_note: str | None = None
    modules: dict[str, ModuleState] = field(default_factory=dict)
    mss: MssClamp | None = None
    mss_read: bool = True
    mss_note: str | None = None


def is_decap(link: rtnl.Link) -> bool:
    return link.kind in DECAP_KINDS or (link.kind == "vxlan" and link.gpe)


def device_module(state: TunnelState) -> str | None:
    """The kernel module that provides the device's link kind."""
    kind = "vxlan" if state.kind == "vxlan-gpe" else state.kind
    return next((name for name, kinds in kmod.LINK_KINDS.items() if kind in kinds), None)


def read_decap_side(names: Iterable[str], modules: Iterable[str]) -> DecapSide:
    """The decap devices of the host and ``names`` (a device of another kind by one of
    those names is reported with its own kind), the fou ports, the modules ``modules``
    and those of the devices found (and fou when there are fou ports), the MSS clamp."""
    links = rtnl.dump_links()
    devices: dict[str, TunnelState] = {}
    for link in links:
        state = tunnel_state(link) if is_decap(link) else None
        if state is not None:
            devices[link.name] = state
    devices.update(read_tunnels([name for name in names if name not in devices], links))
    ports, fou_note = _fou_ports()
    wanted = {kmod.canonical(name) for name in modules}
    wanted |= {found for state in devices.values() if (found := device_module(state))}
    if ports:
        wanted.add("fou")
    states = {}
    for name in sorted(wanted):
        module = kmod.module_state(name)
        users = module.users + module_users(name, links)
        if name == "fou" and ports:
            users += tuple(f"fou:{port}" for port in sorted(ports))
        states[name] = dataclasses.replace(module, users=users)
    clamp, mss_read, mss_note = _clamp()
    return DecapSide(devices, ports, fou_note, states, clamp, mss_read, mss_note)


def _fou_ports() -> tuple[dict[int, str] | None, str | None]:
    from providers.linux.fou import read_ports

    try:
        return read_ports(), None
    except PrivilegeError:
        return None, f"cannot read the fou ports: {NEEDS_ROOT}"
    except (HostError, OSError) as exc:
        return None, f"cannot read the fou ports: {exc}"


def _clamp() -> tuple[MssClamp | None, bool, str | None]:
    from providers.linux import nft

    program = nft.find_nft()
    if program is None:
        return None, False, "not read: nft (nftables) is not installed"
    try:
        return nft.read_clamp(program), True, None
    except PrivilegeError:
        return None, False, f"not read: {NEEDS_ROOT}"
    except HostError as exc:
        return None, False, f"not read: {exc}"
