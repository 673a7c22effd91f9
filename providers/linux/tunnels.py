"""Decap devices through rtnetlink, standard library only: read them from the link dump,
create a collect-metadata device, set one up or down, delete one.

A collect-metadata (``external``) device accepts tunnelled packets from any remote; the
kernel allows one per link kind and namespace. The fallback devices (``tunl0``, ``gre0``,
``ip6tnl0``, ``ip6gre0``) come with the module and cannot be deleted: "deleting" one sets
it down; unloading its module removes it.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterable

from providers.errors import HostError, PrivilegeError
from providers.linux import kmod, rtnl
from providers.model import TunnelState

RTM_NEWLINK, RTM_DELLINK = 16, 17
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x01, 0x04, 0x200, 0x400
IFINFOMSG = struct.Struct("=BxHiII")
IFF_UP = 0x1
IPPROTO_IPV6 = 41
IFLA_IPTUN_PROTO = 9
IFLA_VXLAN_LEARNING, IFLA_VXLAN_PORT = 7, 15
VXLAN_GPE_PORT = 4790


def tunnel_state(link: rtnl.Link) -> TunnelState | None:
    """The device as a TunnelState, or None when it is no tunnel of a known kind."""
    if link.kind not in rtnl.COLLECT_METADATA:
        return None
    kind = "vxlan-gpe" if link.gpe else link.kind
    return TunnelState(kind=kind, external=link.external, up=link.up)


def read_tunnels(
    names: Iterable[str], links: list[rtnl.Link] | None = None
) -> dict[str, TunnelState]:
    """The named devices that exist. A device of that name that is not a tunnel is
    reported with its own link kind (never external), so that the diff replaces nothing
    silently: the spec check refuses it first."""
    wanted = set(names)
    found = {}
    for link in rtnl.dump_links() if links is None else links:
        if link.name in wanted:
            state = tunnel_state(link)
            found[link.name] = state or TunnelState(link.kind or "device", False, link.up)
    return found


def module_users(module: str, links: list[rtnl.Link]) -> tuple[str, ...]:
    """The devices of this namespace that unloading ``module`` would destroy (its fallback
    devices do not count: they come and go with it)."""
    kinds = kmod.LINK_KINDS.get(kmod.canonical(module), ())
    return tuple(
        sorted(
            link.name
            for link in links
            if link.kind in kinds and link.name not in kmod.FALLBACK_DEVICES
        )
    )


def change_tunnel(name: str, before: TunnelState | None, after: TunnelState | None) -> None:
    """Make the device ``name`` as ``after`` says (None: gone, or down for a fallback)."""
    fallback = name in kmod.FALLBACK_DEVICES
    index = _index(name)
    if after is None:
        if index is None:
            return
        if fallback:
            _send(_set_flags(index, 0), f"cannot set {name} down")
        else:
            _send(
                _header(RTM_DELLINK, 0, IFINFOMSG.pack(0, 0, index, 0, 0)), f"cannot delete {name}"
            )
        return
    if fallback:
        if index is None:
            raise HostError(f"{name} does not exist: it appears when its kernel module is loaded")
        _send(_set_flags(index, IFF_UP if after.up else 0), f"cannot set {name} up")
        return
    if index is not None and before is not None and _same_device(before, after):
        _send(_set_flags(index, IFF_UP if after.up else 0), f"cannot set {name} up")
        return
    if index is not None:
        _send(_header(RTM_DELLINK, 0, IFINFOMSG.pack(0, 0, index, 0, 0)), f"cannot replace {name}")
    _send(_create(name, after), f"cannot create {after.kind} device {name}")


def _same_device(before: TunnelState, after: TunnelState) -> bool:
    return (before.kind, before.external) == (after.kind, after.external)


def _create(name: str, state: TunnelState) -> bytes:
    if state.kind == "vxlan-gpe":
        kind = "vxlan"
        data = (
            _attr(rtnl.IFLA_VXLAN_COLLECT_METADATA, b"\1")
            + _attr(rtnl.IFLA_VXLAN_GPE, b"")
            + _attr(IFLA_VXLAN_LEARNING, b"\0")
            + _attr(IFLA_VXLAN_PORT, struct.pack("!H", VXLAN_GPE_PORT))
        )
    elif state.kind in ("ipip", "ip6tnl"):
        kind = state.kind
        data = _attr(rtnl.IFLA_IPTUN_COLLECT_METADATA, b"") if state.external else b""
        if kind == "ip6tnl":  # ip6ip6 only (iproute2's `mode ip6ip6`)
            data += _attr(IFLA_IPTUN_PROTO, bytes([IPPROTO_IPV6]))
    elif state.kind in ("gre", "ip6gre"):
        kind = state.kind
        data = _attr(rtnl.IFLA_GRE_COLLECT_METADATA, b"") if state.external else b""
    else:
        raise HostError(f"cannot create a device of kind {state.kind!r}")
    info = _attr(rtnl.IFLA_INFO_KIND, kind.encode()) + _attr(rtnl.IFLA_INFO_DATA, data)
    flags = IFF_UP if state.up else 0
    body = (
        IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, flags, IFF_UP)
        + _attr(rtnl.IFLA_IFNAME, name.encode() + b"\0")
        + _attr(rtnl.IFLA_LINKINFO, info)
    )
    return _header(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body)


def _set_flags(index: int, flags: int) -> bytes:
    return _header(RTM_NEWLINK, 0, IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, flags, IFF_UP))


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _header(kind: int, flags: int, body: bytes) -> bytes:
    return (
        rtnl.NLMSG_HDR.pack(
            rtnl.NLMSG_HDR.size + len(body), kind, NLM_F_REQUEST | NLM_F_ACK | flags, 0, 0
        )
        + body
    )


def _index(name: str) -> int | None:
    return next((link.index for link in rtnl.dump_links() if link.name == name), None)


def _send(message: bytes, what: str) -> None:
    try:
        outcome = rtnl.send_requests([[message]])
    except PermissionError:
        raise PrivilegeError(f"{what}: netlink refused the request; run as root") from None
    except OSError as exc:
        raise HostError(f"{what}: cannot open a netlink socket: {exc}") from None
    if outcome.failure is not None:
        raise HostError(f"{what}: {outcome.failure}")
    code = outcome.codes[0]
    if code is None:
        raise HostError(f"{what}: the kernel did not answer")
    if code in (errno.EPERM, errno.EACCES):
        raise PrivilegeError(f"{what}: {os.strerror(code)}; run as root")
    if code:
        raise HostError(f"{what}: {os.strerror(code)}")
