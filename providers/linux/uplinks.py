"""The uplink of tunnel-mode DSR and its MTU, read through rtnetlink (standard library).

Where the encapsulated packets arrive: the interface the spec names, or the device of
the main table's default route of the outer IP version. Its MTU is where the MSS clamp's
arithmetic starts (providers/linux/nft.py, dsrctl/linux/mss.py).

Kept apart from the link and address dumps of :mod:`providers.linux.rtnl` (whose
``_dump`` it reuses) so that the MTU and the default route cost nothing on a plan without
tunnels.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from providers.linux.rtnl import IFINFOMSG, RTM_GETLINK, RTM_NEWLINK, _attributes, _dump

IFLA_IFNAME, IFLA_MTU = 3, 4
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
# family, dst_len, src_len, tos, table, protocol, scope, type, flags
RTMSG = struct.Struct("=BBBBBBBBI")
RTA_OIF, RTA_MULTIPATH, RTA_TABLE = 4, 9, 15
RTNEXTHOP = struct.Struct("=HBBi")  # len, flags, hops, ifindex
RT_TABLE_MAIN, RTN_UNICAST = 254, 1
_FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}


@dataclass(frozen=True)
class Uplink:
    name: str
    mtu: int | None  # None: no such interface
    default_route: bool  # found as the device of the default route (not named)


def link_mtus() -> dict[str, int]:
    """Every interface's name -> MTU."""
    mtus = {}
    for kind, payload in _dump(RTM_GETLINK, IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)):
        if kind != RTM_NEWLINK:
            continue
        attrs = _attributes(payload, IFINFOMSG.size)
        name = attrs.get(IFLA_IFNAME, b"").split(b"\0", 1)[0].decode("utf-8", "replace")
        if IFLA_MTU in attrs and len(attrs[IFLA_MTU]) >= 4:
            mtus[name] = struct.unpack_from("=I", attrs[IFLA_MTU])[0]
    return mtus


def default_route_index(version: int) -> int | None:
    """The interface index of the main table's default route of IP ``version`` (the first
    next hop of a multipath route), or None."""
    family = _FAMILIES[version]
    for kind, payload in _dump(RTM_GETROUTE, RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)):
        if kind != RTM_NEWROUTE or len(payload) < RTMSG.size:
            continue
        msg_family, dst_len, _, _, table, _, _, route_type, _ = RTMSG.unpack_from(payload, 0)
        attrs = _attributes(payload, RTMSG.size)
        if RTA_TABLE in attrs:
            table = struct.unpack_from("=I", attrs[RTA_TABLE])[0]
        if msg_family != family or dst_len != 0 or table != RT_TABLE_MAIN:
            continue
        if route_type != RTN_UNICAST:
            continue
        if RTA_OIF in attrs:
            return int(struct.unpack_from("=i", attrs[RTA_OIF])[0])
        hops = attrs.get(RTA_MULTIPATH, b"")
        if len(hops) >= RTNEXTHOP.size:
            return int(RTNEXTHOP.unpack_from(hops, 0)[3])
    return None


def find_uplink(version: int, name: str | None) -> Uplink | None:
    """The uplink named ``name``, or the default route's device of IP ``version``; None
    when ``name`` is None and there is no default route."""
    if name is not None:
        return Uplink(name, link_mtus().get(name), default_route=False)
    index = default_route_index(version)
    if index is None:
        return None
    for kind, payload in _dump(RTM_GETLINK, IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)):
        if kind != RTM_NEWLINK or IFINFOMSG.unpack_from(payload, 0)[2] != index:
            continue
        attrs = _attributes(payload, IFINFOMSG.size)
        found = attrs.get(IFLA_IFNAME, b"").split(b"\0", 1)[0].decode("utf-8", "replace")
        mtu = struct.unpack_from("=I", attrs[IFLA_MTU])[0] if IFLA_MTU in attrs else None
        return Uplink(found, mtu, default_route=True)
    return None
