"""The uplinks: the devices of the main table's default routes, per IP version, with
their MTUs, read through rtnetlink (standard library).

The one answer to "where does the traffic of the VIPs arrive": dsrctl/linux/effective.py
judges the ARP and rp_filter values of these devices, dsrctl/linux/mss.py starts the MSS
clamp's arithmetic from their MTU (or from the MTU of the uplink a ``[[tunnel]]`` names),
dsrctl/linux/checks.py refuses a named uplink that is not an interface.

One route dump (both IP versions: strict checking asks the kernel for the main table's
unicast routes only, the rest is filtered here) and the link dump of
:mod:`providers.linux.rtnl` for the names and MTUs; a default route over nexthop objects
(``nhid``) also reads the nexthop dump. A multipath (ECMP) default route counts with the
device of every next hop: each of them receives traffic, so each has its ARP and
rp_filter values judged, and the MSS must fit the smallest MTU among them.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Mapping
from typing import NamedTuple

from providers.linux import rtnl

RTM_NEWROUTE, RTM_GETROUTE = 24, 26
RTM_NEWNEXTHOP, RTM_GETNEXTHOP = 104, 106
# family, dst_len, src_len, tos, table, protocol, scope, type, flags
RTMSG = struct.Struct("=BBBBBBBBI")
NHMSG = struct.Struct("=BBBBI")  # family, scope, protocol, reserved, flags
RTA_OIF, RTA_MULTIPATH, RTA_TABLE, RTA_NH_ID = 4, 9, 15, 30
NHA_ID, NHA_GROUP, NHA_OIF = 1, 2, 5
RTNEXTHOP = struct.Struct("=HBBi")  # len, flags, hops, ifindex
NEXTHOP_GRP = struct.Struct("=IBBH")  # id, weight, weight_high, reserved
RT_TABLE_MAIN, RTN_UNICAST = 254, 1
VERSIONS = {socket.AF_INET: 4, socket.AF_INET6: 6}


# Named tuples rather than dataclasses: every plan reads the uplinks, and a dataclass
# costs about 0.4 ms of start-up to define.
class Uplink(NamedTuple):
    name: str
    mtu: int


class Uplinks(NamedTuple):
    """What the host's routes and links say about its uplinks."""

    # IP version -> the devices of its default routes (every next hop), in the kernel's order
    defaults: Mapping[int, tuple[Uplink, ...]] = {}
    mtus: Mapping[str, int] = {}  # every interface's MTU, by name

    def names(self) -> tuple[str, ...]:
        """Whose IPv4 ARP and rp_filter values matter: the IPv4 default-route devices; on
        a host without an IPv4 default route, the IPv6 ones."""
        return tuple(uplink.name for uplink in self.defaults.get(4) or self.defaults.get(6, ()))

    def narrowest(self, version: int) -> Uplink | None:
        """The default-route device of IP ``version`` with the smallest MTU (the first of
        equals), or None without such a route."""
        found = self.defaults.get(version, ())
        return min(found, key=lambda uplink: uplink.mtu) if found else None

    def named(self, name: str) -> Uplink | None:
        """The interface ``name`` with its MTU, or None when there is no such interface."""
        mtu = self.mtus.get(name)
        return Uplink(name, mtu) if mtu is not None else None


def read_uplinks() -> Uplinks:
    links = {link.index: link for link in rtnl.dump_links()}
    indexes = default_route_indexes()
    defaults = {
        version: tuple(
            Uplink(links[index].name, links[index].mtu) for index in found if index in links
        )
        for version, found in indexes.items()
    }
    return Uplinks(
        defaults={version: found for version, found in defaults.items() if found},
        mtus={link.name: link.mtu for link in links.values()},
    )


def default_route_indexes() -> dict[int, list[int]]:
    """IP version -> the interface indexes of the main table's unicast default routes,
    every next hop of a multipath route, each index once, in the kernel's order."""
    found: dict[int, list[int]] = {4: [], 6: []}
    wanted_groups: list[tuple[int, int]] = []  # (version, nexthop id) to resolve
    body = RTMSG.pack(socket.AF_UNSPEC, 0, 0, 0, RT_TABLE_MAIN, 0, 0, RTN_UNICAST, 0)
    for kind, payload in rtnl.dump(RTM_GETROUTE, body, strict=True):
        if kind != RTM_NEWROUTE or len(payload) < RTMSG.size:
            continue
        family, dst_len, _, _, table, _, _, route_type, _ = RTMSG.unpack_from(payload, 0)
        version = VERSIONS.get(family)
        if version is None or dst_len != 0 or route_type != RTN_UNICAST:
            continue
        attrs = rtnl.attributes(payload, RTMSG.size)
        if RTA_TABLE in attrs:
            (table,) = rtnl.U32.unpack_from(attrs[RTA_TABLE], 0)
        if table != RT_TABLE_MAIN:
            continue
        if RTA_OIF in attrs:
            _add(found[version], rtnl.U32.unpack_from(attrs[RTA_OIF], 0)[0])
        elif RTA_MULTIPATH in attrs:
            for index in _multipath_indexes(attrs[RTA_MULTIPATH]):
                _add(found[version], index)
        elif RTA_NH_ID in attrs:
            wanted_groups.append((version, rtnl.U32.unpack_from(attrs[RTA_NH_ID], 0)[0]))
    if wanted_groups:
        nexthops = _nexthops()
        for version, nexthop in wanted_groups:
            for index in _resolve(nexthops, nexthop):
                _add(found[version], index)
    return found


def _add(indexes: list[int], index: int) -> None:
    if index and index not in indexes:
        indexes.append(index)


def _multipath_indexes(raw: bytes) -> list[int]:
    indexes, offset = [], 0
    while offset + RTNEXTHOP.size <= len(raw):
        length, _, _, index = RTNEXTHOP.unpack_from(raw, offset)
        if length < RTNEXTHOP.size:
            break
        indexes.append(index)
        offset += (length + 3) & ~3
    return indexes


def _nexthops() -> dict[int, tuple[int | None, list[int]]]:
    """Nexthop id -> (its device index, or None for a group; the ids of its group)."""
    nexthops: dict[int, tuple[int | None, list[int]]] = {}
    body = NHMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
    for kind, payload in rtnl.dump(RTM_GETNEXTHOP, body):
        if kind != RTM_NEWNEXTHOP or len(payload) < NHMSG.size:
            continue
        attrs = rtnl.attributes(payload, NHMSG.size)
        if NHA_ID not in attrs:
            continue
        (nexthop,) = rtnl.U32.unpack_from(attrs[NHA_ID], 0)
        oif = rtnl.U32.unpack_from(attrs[NHA_OIF], 0)[0] if NHA_OIF in attrs else None
        group = attrs.get(NHA_GROUP, b"")
        members = [
            NEXTHOP_GRP.unpack_from(group, offset)[0]
            for offset in range(0, len(group) - NEXTHOP_GRP.size + 1, NEXTHOP_GRP.size)
        ]
        nexthops[nexthop] = (oif, members)
    return nexthops


def _resolve(nexthops: Mapping[int, tuple[int | None, list[int]]], nexthop: int) -> list[int]:
    """The device indexes of a nexthop object (a group's members; groups do not nest)."""
    oif, members = nexthops.get(nexthop, (None, []))
    if oif is not None:
        return [oif]
    return [nexthops[m][0] or 0 for m in members if m in nexthops]
