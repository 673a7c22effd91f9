"""Interface addresses through rtnetlink.

Reads use the small standard-library dump reader in providers/linux/rtnl.py (pyroute2's
import cost would dominate every `drift`). Writes are encoded with pyroute2's ifaddrmsg
into one buffer and sent with a single sendto() on a plain netlink socket; the kernel
acknowledges each request separately, so every address gets its own result. That is
what makes 1,000 VIPs apply in well under a second instead of 1,000 round trips.

pyroute2 is imported inside the write path only: importing it costs hundreds of ms.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from dsrctl.errors import HostError, PrivilegeError
from dsrctl.model import AddressState
from providers.linux import rtnl

if TYPE_CHECKING:
    from dsrctl.steps import AddressStep

IFA_F_NODAD = 0x02
RTM_NEWADDR, RTM_DELADDR = 20, 21
NLM_F_REQUEST, NLM_F_ACK = 0x01, 0x04
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
_COMMAND_FLAGS = {
    "add": NLM_F_CREATE | NLM_F_EXCL,
    "replace": NLM_F_CREATE | NLM_F_REPLACE,
    "del": 0,
}
IFA_F_DEPRECATED = 0x20
INFINITY_LIFE = 0xFFFFFFFF
NLMSG_ERROR = 2
NLMSG_HDR = struct.Struct("=IHHII")
NETLINK_CAP_ACK = 10
SOL_NETLINK = 270


def read_interfaces(
    names: Iterable[str],
) -> tuple[dict[str, rtnl.Link], dict[str, dict[str, AddressState]]]:
    """The named interfaces that exist, and the addresses on each."""
    wanted = set(names)
    links = {link.name: link for link in rtnl.dump_links() if link.name in wanted}
    by_index = {link.index: name for name, link in links.items()}
    found: dict[str, dict[str, AddressState]] = {name: {} for name in links}
    for raw in rtnl.dump_addresses():
        name = by_index.get(raw.index)
        if name is not None:
            state = address_state(raw)
            found[name][state.cidr] = state
    return links, found


def address_state(raw: rtnl.RawAddress) -> AddressState:
    if raw.family == socket.AF_INET:
        return AddressState(raw.address, raw.prefix, label=raw.label)
    return AddressState(
        raw.address,
        raw.prefix,
        deprecated=bool(raw.flags & IFA_F_DEPRECATED) or raw.preferred == 0,
        nodad=bool(raw.flags & IFA_F_NODAD),
    )


def list_links() -> list[dict[str, Any]]:
    return [{"index": link.index, "name": link.name, "up": link.up} for link in rtnl.dump_links()]


def apply_address_steps(
    steps: list[AddressStep], indexes: dict[str, int]
) -> list[BaseException | None]:
    """Carry out address steps in one netlink batch; one result per step, in order."""
    owners: list[int] = []  # request number -> step number
    data = bytearray()
    for number, step in enumerate(steps):
        index = indexes.get(step.interface)
        if index is None:
            raise HostError(f"interface {step.interface} does not exist")
        for command, state in _requests(step):
            data += _encode(command, index, state, sequence=len(owners) + 1)
            owners.append(number)
    results = _send(bytes(data), len(owners))
    errors: list[BaseException | None] = [None] * len(steps)
    for code, request in results:
        owner = owners[request]
        step = steps[owner]
        if code == 0 or _idempotent(code, step):
            continue
        if code in (errno.EPERM, errno.EACCES):
            errors[owner] = PrivilegeError(
                f"the kernel refused to change {step.cidr} on {step.interface}: "
                "permission denied (run as root)"
            )
        elif errors[owner] is None:
            errors[owner] = HostError(
                f"the kernel refused to {_verb(step)} {step.cidr} on {step.interface}: "
                f"{os.strerror(code)}"
            )
    return errors


def _verb(step: AddressStep) -> str:
    return {"create": "add", "delete": "remove", "update": "change"}[step.action]


def _idempotent(code: int, step: AddressStep) -> bool:
    # Removing an address that is already gone, or adding one that is already there,
    # leaves the host as the step wants it.
    if code == errno.EADDRNOTAVAIL and step.after is None:
        return True
    return code == errno.EEXIST and step.before is None


def _requests(step: AddressStep) -> list[tuple[str, AddressState]]:
    before: AddressState | None = step.before
    after: AddressState | None = step.after
    if after is None:
        assert before is not None
        return [("del", before)]
    if before is None:
        return [("add", after)]
    if after.version == 6:
        # Lifetimes and flags of an IPv6 address can be changed in place.
        return [("replace", after)]
    # The kernel does not change the label of an existing IPv4 address: remove, re-add.
    return [("del", before), ("add", after)]


def _encode(command: str, index: int, state: AddressState, sequence: int) -> bytes:
    """One RTM_NEWADDR/RTM_DELADDR request, encoded by pyroute2's message class.

    (pyroute2's IPRoute/IPBatch request layer costs about 0.5 ms an address on this
    hardware; the message class alone a third of that, which keeps 1,000 VIPs fast.)
    """
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

    msg = ifaddrmsg()
    msg["family"] = socket.AF_INET if state.version == 4 else socket.AF_INET6
    msg["prefixlen"] = state.prefix
    msg["index"] = index
    attrs: list[tuple[str, Any]] = []
    if state.version == 4:
        attrs += [("IFA_LOCAL", state.address), ("IFA_ADDRESS", state.address)]
        if state.label and command != "del":
            attrs.append(("IFA_LABEL", state.label))
    else:
        attrs.append(("IFA_ADDRESS", state.address))
        if command != "del":
            preferred = 0 if state.deprecated else INFINITY_LIFE
            cacheinfo = {"ifa_preferred": preferred, "ifa_valid": INFINITY_LIFE}
            attrs.append(("IFA_CACHEINFO", {**cacheinfo, "cstamp": 0, "tstamp": 0}))
            if state.nodad:
                msg["flags"] = IFA_F_NODAD
                attrs.append(("IFA_FLAGS", IFA_F_NODAD))
    msg["attrs"] = attrs
    header = msg["header"]
    header["type"] = RTM_DELADDR if command == "del" else RTM_NEWADDR
    header["flags"] = NLM_F_REQUEST | NLM_F_ACK | _COMMAND_FLAGS[command]
    header["sequence_number"] = sequence
    msg.encode()
    return bytes(msg.data)


def _send(data: bytes, expected: int) -> list[tuple[int, int]]:
    """Send a compiled batch; return (errno, request order) for every acknowledged request."""
    sequences: list[int] = []
    offset = 0
    while offset < len(data):
        length, _, _, seq, _ = NLMSG_HDR.unpack_from(data, offset)
        sequences.append(seq)
        offset += (length + 3) & ~3
    order = {seq: number for number, seq in enumerate(sequences)}
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
    try:
        sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        sock.bind((0, 0))
        try:
            sock.sendto(data, (0, 0))
        except PermissionError:
            raise PrivilegeError("netlink refused the request: run as root") from None
        results: list[tuple[int, int]] = []
        while len(results) < expected:
            chunk = sock.recv(1 << 20)
            offset = 0
            while offset + NLMSG_HDR.size <= len(chunk):
                length, kind, _, seq, _ = NLMSG_HDR.unpack_from(chunk, offset)
                if kind == NLMSG_ERROR and seq in order:
                    (code,) = struct.unpack_from("=i", chunk, offset + NLMSG_HDR.size)
                    results.append((-code, order[seq]))
                offset += max((length + 3) & ~3, NLMSG_HDR.size)
    finally:
        sock.close()
    results.sort(key=lambda item: item[1])
    return results
