"""Read links and addresses with two rtnetlink dumps, standard library only.

Why not pyroute2 here: importing pyroute2 costs 300-400 ms of CPU on every run, which
would more than double the time of `dsrctl drift`, the command that runs from cron on
every server. Reading needs two fixed message layouts (ifinfomsg, ifaddrmsg) and four
attributes; this module decodes exactly those, and the namespace tests compare its
result with pyroute2's decoding of the same dump. Writes, where message construction
matters more than start-up time, still go through pyroute2 (providers/linux/addresses.py).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from dataclasses import dataclass

from dsrctl.errors import HostError

NLMSG_HDR = struct.Struct("=IHHII")
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP, NLM_F_DUMP_INTR = 0x01, 0x300, 0x10
RTM_NEWLINK, RTM_GETLINK, RTM_NEWADDR, RTM_GETADDR = 16, 18, 20, 22
IFINFOMSG = struct.Struct("=BxHiII")
IFADDRMSG = struct.Struct("=BBBBI")
RTATTR = struct.Struct("=HH")
IFLA_IFNAME = 3
IFA_ADDRESS, IFA_LOCAL, IFA_LABEL, IFA_CACHEINFO, IFA_FLAGS = 1, 2, 3, 6, 8
IFF_UP = 0x1
DUMP_RETRIES = 5


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    up: bool


@dataclass(frozen=True)
class RawAddress:
    index: int
    family: int
    address: str
    prefix: int
    flags: int
    label: str | None
    preferred: int


def dump_links() -> list[Link]:
    links = []
    for kind, payload in _dump(RTM_GETLINK, IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)):
        if kind != RTM_NEWLINK:
            continue
        _, _, index, flags, _ = IFINFOMSG.unpack_from(payload, 0)
        attrs = _attributes(payload, IFINFOMSG.size)
        name = attrs.get(IFLA_IFNAME, b"").split(b"\0", 1)[0].decode("utf-8", "replace")
        links.append(Link(index=index, name=name, up=bool(flags & IFF_UP)))
    return links


def dump_addresses() -> list[RawAddress]:
    found = []
    for kind, payload in _dump(RTM_GETADDR, IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)):
        if kind != RTM_NEWADDR:
            continue
        family, prefix, flags, _, index = IFADDRMSG.unpack_from(payload, 0)
        attrs = _attributes(payload, IFADDRMSG.size)
        raw = attrs.get(IFA_LOCAL) if family == socket.AF_INET else None
        raw = raw or attrs.get(IFA_ADDRESS)
        if raw is None or family not in (socket.AF_INET, socket.AF_INET6):
            continue
        if IFA_FLAGS in attrs:
            (flags,) = struct.unpack_from("=I", attrs[IFA_FLAGS])
        preferred = 0xFFFFFFFF
        if IFA_CACHEINFO in attrs:
            preferred = struct.unpack_from("=I", attrs[IFA_CACHEINFO])[0]
        label = None
        if IFA_LABEL in attrs:
            label = attrs[IFA_LABEL].split(b"\0", 1)[0].decode("utf-8", "replace")
        found.append(
            RawAddress(
                index=index,
                family=family,
                address=socket.inet_ntop(family, raw),
                prefix=prefix,
                flags=flags,
                label=label,
                preferred=preferred,
            )
        )
    return found


def _attributes(payload: bytes, offset: int) -> dict[int, bytes]:
    attrs: dict[int, bytes] = {}
    while offset + RTATTR.size <= len(payload):
        length, kind = RTATTR.unpack_from(payload, offset)
        if length < RTATTR.size:
            break
        attrs[kind & 0x3FFF] = payload[offset + RTATTR.size : offset + length]
        offset += (length + 3) & ~3
    return attrs


def _dump(request_type: int, body: bytes) -> list[tuple[int, bytes]]:
    """One complete dump; retried when the kernel flags it as interrupted by a change."""
    for _ in range(DUMP_RETRIES):
        messages, interrupted = _dump_once(request_type, body)
        if not interrupted:
            return messages
    raise HostError("the kernel kept changing addresses while dsrctl read them; try again")


def _dump_once(request_type: int, body: bytes) -> tuple[list[tuple[int, bytes]], bool]:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
    try:
        sock.bind((0, 0))
        seq = 1
        header = NLMSG_HDR.pack(
            NLMSG_HDR.size + len(body), request_type, NLM_F_REQUEST | NLM_F_DUMP, seq, 0
        )
        sock.send(header + body)
        messages: list[tuple[int, bytes]] = []
        interrupted = False
        while True:
            chunk = sock.recv(1 << 20)
            offset = 0
            while offset + NLMSG_HDR.size <= len(chunk):
                length, kind, flags, msg_seq, _ = NLMSG_HDR.unpack_from(chunk, offset)
                if length < NLMSG_HDR.size:
                    raise HostError("malformed netlink reply from the kernel")
                payload = chunk[offset + NLMSG_HDR.size : offset + length]
                offset += (length + 3) & ~3
                if msg_seq != seq:
                    continue
                interrupted |= bool(flags & NLM_F_DUMP_INTR)
                if kind == NLMSG_DONE:
                    return messages, interrupted
                if kind == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", payload, 0)
                    if code == 0:
                        continue
                    if -code == errno.EINTR:
                        return messages, True
                    raise HostError(f"netlink dump failed: {os.strerror(-code)}")
                messages.append((kind, payload))
    finally:
        sock.close()
