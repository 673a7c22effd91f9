"""Interface addresses through rtnetlink, standard library only.

Reads use the small dump reader in providers/linux/rtnl.py (pyroute2's import cost would
dominate every `drift`). Writes are ifaddrmsg requests encoded here with struct and sent
by rtnl.send_requests in chunks that fit the socket's buffers; the kernel acknowledges
each request separately, so every address gets its own result. That is what makes
10,000 VIPs apply in about the time `ip -batch` takes, instead of 10,000 round trips.
"""

from __future__ import annotations

import errno
import functools
import os
import socket
import struct
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from providers.errors import HostError, PrivilegeError, ProviderError
from providers.linux import rtnl
from providers.model import AddressState

if TYPE_CHECKING:
    from providers.linux.changes import AddressChange

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
IFA_ADDRESS, IFA_LOCAL, IFA_LABEL, IFA_CACHEINFO, IFA_FLAGS = 1, 2, 3, 6, 8
INFINITY_LIFE = 0xFFFFFFFF
NLMSG_HDR = struct.Struct("=IHHII")
CACHEINFO = struct.Struct("=IIII")  # preferred, valid, cstamp, tstamp


def read_interfaces(
    names: Iterable[str],
) -> tuple[dict[str, rtnl.Link], dict[str, dict[str, AddressState]]]:
    """The named interfaces that exist, and the addresses on each."""
    wanted = set(names)
    links = {link.name: link for link in rtnl.dump_links() if link.name in wanted}
    by_index = {link.index: name for name, link in links.items()}
    found: dict[str, dict[str, AddressState]] = {name: {} for name in links}
    for index, family, address, prefix, flags, label, preferred in rtnl.address_fields(by_index):
        if family == socket.AF_INET:
            state = AddressState(address, prefix, label=label)
        else:
            state = _ipv6_state(address, prefix, flags, preferred)
        found[by_index[index]][state.cidr] = state
    return links, found


def address_state(raw: rtnl.RawAddress) -> AddressState:
    if raw.family == socket.AF_INET:
        return AddressState(raw.address, raw.prefix, label=raw.label)
    return _ipv6_state(raw.address, raw.prefix, raw.flags, raw.preferred)


def _ipv6_state(address: str, prefix: int, flags: int, preferred: int) -> AddressState:
    return AddressState(
        address,
        prefix,
        deprecated=bool(flags & IFA_F_DEPRECATED) or preferred == 0,
        nodad=bool(flags & IFA_F_NODAD),
    )


def connected_networks(leave_out: Iterable[str] = ()) -> list[tuple[str, str]]:
    """(interface, network cidr) of every address of every interface but ``leave_out``:
    the subnets this host reaches directly."""
    skip = set(leave_out)
    names = {link.index: link.name for link in rtnl.dump_links() if link.name not in skip}
    found = []
    for index, family, address, prefix, _, _, _ in rtnl.address_fields(names):
        full = 32 if family == socket.AF_INET else 128
        if prefix < full:
            found.append((names[index], f"{address}/{prefix}"))
    return found


def list_links() -> list[dict[str, Any]]:
    return [{"index": link.index, "name": link.name, "up": link.up} for link in rtnl.dump_links()]


def apply_address_steps(
    steps: Sequence[AddressChange], indexes: dict[str, int]
) -> list[BaseException | None]:
    """Carry out address steps as chunked netlink batches; one result per step, in order.

    A step is done (None) only when the kernel acknowledged every one of its requests (or
    refused them in a way that leaves the host as the step wants it). A step that was
    never sent gets an error, so the executor neither counts nor undoes it. A step whose
    ack was lost is looked up in the kernel: done if the address is now as the step wants
    it, an error otherwise. Raises only before anything was sent.
    """
    units: list[list[bytes]] = []
    for step in steps:
        index = indexes.get(step.interface)
        if index is None:
            raise HostError(f"interface {step.interface} does not exist")
        units.append([_encode(command, index, state) for command, state in _requests(step)])
    try:
        outcome = rtnl.send_requests(units)
    except OSError as exc:  # the socket could not even be opened: nothing was sent
        if isinstance(exc, PermissionError):
            raise PrivilegeError("netlink refused the request: run as root") from None
        raise HostError(f"cannot open a netlink socket: {exc}") from None
    errors: list[BaseException | None] = []
    unknown: list[int] = []
    first = 0
    for number, (step, unit) in enumerate(zip(steps, units, strict=True)):
        codes = outcome.codes[first : first + len(unit)]
        if first >= outcome.sent:
            errors.append(_not_sent(step, outcome.failure))
        elif None in codes:
            errors.append(None)
            unknown.append(number)
        else:
            errors.append(_step_error(step, [code for code in codes if code is not None]))
        first += len(unit)
    if unknown:
        current = _read_now({steps[number].interface for number in unknown})
        for number in unknown:
            errors[number] = _resolve(steps[number], current)
    return errors


def _step_error(step: AddressChange, codes: list[int]) -> BaseException | None:
    for code in codes:
        if code == 0 or _idempotent(code, step):
            continue
        if code in (errno.EPERM, errno.EACCES):
            return PrivilegeError(
                f"the kernel refused to change {step.cidr} on {step.interface}: "
                "permission denied (run as root)"
            )
        return HostError(
            f"the kernel refused to {_verb(step)} {step.cidr} on {step.interface}: "
            f"{os.strerror(code)}"
        )
    return None


def _not_sent(step: AddressChange, failure: OSError | None) -> ProviderError:
    if isinstance(failure, PermissionError):
        return PrivilegeError(f"netlink refused to send the request for {step.cidr}: run as root")
    why = f": {failure.strerror or failure}" if failure is not None else ""
    return HostError(
        f"{step.cidr} on {step.interface} was not changed: the netlink batch stopped "
        f"before its request was sent{why}"
    )


def _resolve(
    step: AddressChange, current: dict[str, dict[str, AddressState]] | None
) -> HostError | None:
    """A step whose ack was lost: done if the kernel now has the address as it wants."""
    now = None if current is None else current.get(step.interface, {}).get(step.cidr)
    if current is not None and now == step.after:
        return None
    if current is None:
        state = "in an unknown state (it could not be read back)"
    elif now == step.before:
        state = "unchanged"
    else:
        state = "in neither the old nor the new state"
    return HostError(
        f"the kernel did not acknowledge the request to {_verb(step)} {step.cidr} on "
        f"{step.interface}; the address is {state}"
    )


def _read_now(names: set[str]) -> dict[str, dict[str, AddressState]] | None:
    try:
        return read_interfaces(names)[1]
    except (HostError, OSError):
        return None


def _verb(step: AddressChange) -> str:
    return {"create": "add", "delete": "remove", "update": "change"}[step.action]


def _idempotent(code: int, step: AddressChange) -> bool:
    # Removing an address that is already gone, or adding one that is already there,
    # leaves the host as the step wants it.
    if code == errno.EADDRNOTAVAIL and step.after is None:
        return True
    return code == errno.EEXIST and step.before is None


def _requests(step: AddressChange) -> list[tuple[str, AddressState]]:
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


def _encode(command: str, index: int, state: AddressState) -> bytes:
    """One RTM_NEWADDR/RTM_DELADDR request with sequence number 0 (the batch numbers it).

    The same bytes pyroute2's ifaddrmsg encodes (tests/unit/test_netlink_chunks.py
    compares them), built with struct: pyroute2's message classes cost about 0.17 ms an
    address plus 300 ms of import, a third of a 10,000-VIP apply. VIPs differ only in
    their address bytes, so each request is its skeleton joined around them.
    """
    family = socket.AF_INET6 if ":" in state.address else socket.AF_INET
    raw = socket.inet_pton(family, state.address)
    return raw.join(
        _skeleton(command, index, family, state.prefix, state.label, state.deprecated, state.nodad)
    )


@functools.lru_cache(maxsize=1024)
def _skeleton(
    command: str,
    index: int,
    family: int,
    prefix: int,
    label: str | None,
    deprecated: bool,
    nodad: bool,
) -> tuple[bytes, ...]:
    """The request without its address bytes: the pieces that go between them."""
    v4 = family == socket.AF_INET
    raw = bytes(4 if v4 else 16)
    flags = 0
    attrs = []
    if v4:
        attrs += [_attr(IFA_LOCAL, raw), _attr(IFA_ADDRESS, raw)]
        if label and command != "del":
            attrs.append(_attr(IFA_LABEL, label.encode() + b"\0"))
    else:
        attrs.append(_attr(IFA_ADDRESS, raw))
        if command != "del":
            preferred = 0 if deprecated else INFINITY_LIFE
            attrs.append(_attr(IFA_CACHEINFO, CACHEINFO.pack(preferred, INFINITY_LIFE, 0, 0)))
            if nodad:
                flags = IFA_F_NODAD
                attrs.append(_attr(IFA_FLAGS, struct.pack("=I", IFA_F_NODAD)))
    body = rtnl.IFADDRMSG.pack(family, prefix, flags, 0, index) + b"".join(attrs)
    kind = RTM_DELADDR if command == "del" else RTM_NEWADDR
    request_flags = NLM_F_REQUEST | NLM_F_ACK | _COMMAND_FLAGS[command]
    message = NLMSG_HDR.pack(NLMSG_HDR.size + len(body), kind, request_flags, 0, 0) + body
    # Cut out the value of every IFA_LOCAL/IFA_ADDRESS: the address goes there.
    pieces, start = [], 0
    offset = NLMSG_HDR.size + rtnl.IFADDRMSG.size
    while offset < len(message):
        length, attr = rtnl.RTATTR.unpack_from(message, offset)
        if attr in (IFA_LOCAL, IFA_ADDRESS):
            pieces.append(message[start : offset + rtnl.RTATTR.size])
            start = offset + length
        offset += (length + 3) & ~3
    pieces.append(message[start:])
    return tuple(pieces)


def _attr(kind: int, value: bytes) -> bytes:
    length = rtnl.RTATTR.size + len(value)
    return rtnl.RTATTR.pack(length, kind) + value + b"\0" * (-length % 4)
