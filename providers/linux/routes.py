"""Local routes (AnyIP ranges) through rtnetlink, standard library only.

A VIP range (``198.18.5.0/24``) is one route, ``local 198.18.5.0/24 dev lo table local``:
the kernel then takes every address of the range as its own, without an address each.
Reading is one route dump per address family through rtnl.dump (strict: the kernel sends
only table ``local``, type ``local``, on kernels that can filter; the rest is filtered
here), decoded from the rtmsg header and four attributes (RTA_TABLE, RTA_DST, RTA_OIF,
RTA_PRIORITY); the namespace tests compare the result with pyroute2's decoding of the
same dump. Writes are one RTM_NEWROUTE/RTM_DELROUTE request each, sent and acknowledged
through rtnl.send_requests.

The kernel's own local routes, one /32 or /128 per address of the host, are in the same
table with the same type: the reader leaves out host routes (a range is shorter), which
keeps a read of a host with 10,000 VIPs cheap.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from providers.errors import HostError, PrivilegeError
from providers.linux import rtnl
from providers.model import RouteState

if TYPE_CHECKING:
    from providers.linux.changes import RouteChange

RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTMSG = struct.Struct("=BBBBBBBBI")  # family dst_len src_len tos table protocol scope type flags
RTA_DST, RTA_OIF, RTA_PRIORITY, RTA_TABLE = 1, 4, 6, 15
RTN_UNICAST, RTN_LOCAL = 1, 2
RT_TABLE_UNSPEC, RT_TABLE_DEFAULT, RT_TABLE_MAIN, RT_TABLE_LOCAL = 0, 253, 254, 255
RTPROT_STATIC = 4  # "configured by the administrator" (what networkd and NM write too)
# rtnetlink's RTPROT_* that say who added a route (the kernel's own, ip route's, a tool's)
PROTOCOL_NAMES = {2: "kernel", 3: "boot", RTPROT_STATIC: "static", 16: "dhcp"}
RT_SCOPE_HOST, RT_SCOPE_NOWHERE = 254, 255
NLM_F_REQUEST, NLM_F_ACK = 0x01, 0x04
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
TABLE_NAMES = {RT_TABLE_LOCAL: "local", RT_TABLE_MAIN: "main", RT_TABLE_DEFAULT: "default"}
TABLE_NUMBERS = {name: number for number, name in TABLE_NAMES.items()}
TYPE_NAMES = {RTN_UNICAST: "unicast", RTN_LOCAL: "local"}
TYPE_NUMBERS = {name: number for number, name in TYPE_NAMES.items()}
FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}


@dataclass(frozen=True)
class RawRoute:
    family: int
    destination: str  # the network address, as inet_ntop writes it
    prefix: int
    table: int
    type: int
    oif: int | None
    priority: int | None
    protocol: int = 0  # who added it: RTPROT_KERNEL (an address's own), BOOT (ip route)...


def table_name(number: int) -> str:
    return TABLE_NAMES.get(number, str(number))


def table_number(name: str) -> int:
    return TABLE_NUMBERS.get(name) or int(name)


def dump_ranges(versions: Collection[int] = (4, 6)) -> list[RawRoute]:
    """The local routes of table local that cover more than one address (the ranges), of
    the IP versions asked for."""
    found = []
    for version in sorted(versions):
        family = FAMILIES[version]
        full = 32 if version == 4 else 128
        # rtm_table and rtm_type select the table and the type under strict checking.
        body = RTMSG.pack(family, 0, 0, 0, RT_TABLE_LOCAL, 0, 0, RTN_LOCAL, 0)
        for kind, payload in rtnl.dump(RTM_GETROUTE, body, strict=True):
            if kind != RTM_NEWROUTE:
                continue
            got_family, prefix, _, _, table, protocol, _, route_type, _ = RTMSG.unpack_from(
                payload, 0
            )
            if got_family != family or route_type != RTN_LOCAL or prefix >= full:
                continue
            attrs = rtnl.attributes(payload, RTMSG.size)
            if RTA_TABLE in attrs:
                (table,) = rtnl.U32.unpack_from(attrs[RTA_TABLE], 0)
            if table != RT_TABLE_LOCAL:
                continue
            raw = attrs.get(RTA_DST, bytes(4 if version == 4 else 16))
            oif = attrs.get(RTA_OIF)
            priority = attrs.get(RTA_PRIORITY)
            found.append(
                RawRoute(
                    family=family,
                    destination=socket.inet_ntop(family, raw),
                    prefix=prefix,
                    table=table,
                    type=route_type,
                    oif=rtnl.U32.unpack_from(oif, 0)[0] if oif is not None else None,
                    priority=rtnl.U32.unpack_from(priority, 0)[0] if priority is not None else None,
                    protocol=protocol,
                )
            )
    return found


def read_routes(keys: Collection[str]) -> dict[str, RouteState]:
    """The routes among ``keys`` (``RouteState.key``: ``local:local:<cidr>``) that the
    kernel has, by key. Only local routes of table local are read: dsrctl manages no other."""
    if not keys:
        return {}
    wanted = set(keys)
    versions = {6 if ":" in key.split(":", 2)[2] else 4 for key in wanted}
    names = {link.index: link.name for link in rtnl.dump_links()}
    found: dict[str, RouteState] = {}
    for raw in dump_ranges(versions):
        state = _route_state(raw, names)
        # Two routes for one range differ in their priority: the first one is kept, as
        # the kernel uses it; the plan then shows that one.
        if state.key in wanted and state.key not in found:
            found[state.key] = state
    return found


@dataclass(frozen=True)
class LocalRange:
    """A local route of table local that covers more than one address, and who added it
    (``kernel``: the route of an address, such as lo's 127.0.0.0/8; ``boot``: ``ip route
    add``; ``static``: dsrctl, networkd, NetworkManager; else the number)."""

    route: RouteState
    protocol: str


def read_local_ranges() -> list[LocalRange]:
    """Every local route of table local wider than one address, both IP versions, in
    the kernel's order (`dsrctl show`, `dsrctl import`)."""
    names = {link.index: link.name for link in rtnl.dump_links()}
    return [
        LocalRange(_route_state(raw, names), PROTOCOL_NAMES.get(raw.protocol, str(raw.protocol)))
        for raw in dump_ranges()
    ]


def _route_state(raw: RawRoute, names: dict[int, str]) -> RouteState:
    return RouteState(
        destination=f"{raw.destination}/{raw.prefix}",
        device=names.get(raw.oif or 0, f"#{raw.oif}"),
        table=table_name(raw.table),
        type=TYPE_NAMES.get(raw.type, str(raw.type)),
        priority=raw.priority,
    )


def apply_route_step(step: RouteChange, indexes: dict[str, int]) -> None:
    """Add, change or remove one route; HostError (or PrivilegeError) when the kernel
    refuses. Adding a route that is there, or removing one that is gone, is done."""
    messages = []
    if step.before is not None:  # also when the device changes: remove, then add
        messages.append(("del", step.before))
    if step.after is not None:
        messages.append(("add", step.after))
    units = [[_encode(command, state, indexes) for command, state in messages]]
    try:
        outcome = rtnl.send_requests(units)
    except OSError as exc:
        if isinstance(exc, PermissionError):
            raise PrivilegeError("netlink refused the request: run as root") from None
        raise HostError(f"cannot open a netlink socket: {exc}") from None
    destination = next(state.destination for state in (step.after, step.before) if state)
    verb = {"create": "add", "delete": "remove", "update": "change"}[step.action]
    for (command, _), code in zip(messages, outcome.codes, strict=True):
        if code is None:
            why = f": {outcome.failure.strerror}" if outcome.failure is not None else ""
            raise HostError(
                f"the kernel did not acknowledge the request to {verb} the local route "
                f"{destination}{why}"
            )
        if code == 0 or (command == "del" and code == errno.ESRCH):
            continue
        if command == "add" and code == errno.EEXIST:
            continue
        if code in (errno.EPERM, errno.EACCES):
            raise PrivilegeError(
                f"the kernel refused to {verb} the local route {destination}: permission "
                "denied (run as root)"
            )
        raise HostError(
            f"the kernel refused to {verb} the local route {destination}: {os.strerror(code)}"
        )


def _encode(command: str, state: RouteState, indexes: dict[str, int]) -> bytes:
    """One RTM_NEWROUTE (create or replace) or RTM_DELROUTE request, sequence number 0."""
    family = socket.AF_INET6 if state.version == 6 else socket.AF_INET
    address, _, prefix = state.destination.partition("/")
    table = table_number(state.table)
    route_type = TYPE_NUMBERS.get(state.type) or int(state.type)
    index = indexes.get(state.device)
    header_table = table if table < 256 else RT_TABLE_UNSPEC  # RTA_TABLE carries it all
    if command == "add":
        if index is None:
            raise HostError(f"interface {state.device} does not exist")
        header = RTMSG.pack(
            family, int(prefix), 0, 0, header_table, RTPROT_STATIC, RT_SCOPE_HOST, route_type, 0
        )
        kind, flags = RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL
    else:
        # Any protocol and scope: the route is named by its table, type, destination,
        # device and priority, as it was read.
        header = RTMSG.pack(
            family, int(prefix), 0, 0, header_table, 0, RT_SCOPE_NOWHERE, route_type, 0
        )
        kind, flags = RTM_DELROUTE, 0
    attrs = [
        _attr(RTA_DST, socket.inet_pton(family, address)),
        _attr(RTA_TABLE, rtnl.U32.pack(table)),
    ]
    if index is not None:
        attrs.append(_attr(RTA_OIF, rtnl.U32.pack(index)))
    if state.priority is not None:  # as read: a rollback puts back the metric it had
        attrs.append(_attr(RTA_PRIORITY, rtnl.U32.pack(state.priority)))
    body = header + b"".join(attrs)
    return (
        rtnl.NLMSG_HDR.pack(
            rtnl.NLMSG_HDR.size + len(body), kind, NLM_F_REQUEST | NLM_F_ACK | flags, 0, 0
        )
        + body
    )


def _attr(kind: int, value: bytes) -> bytes:
    length = rtnl.RTATTR.size + len(value)
    return rtnl.RTATTR.pack(length, kind) + value + b"\0" * (-length % 4)
