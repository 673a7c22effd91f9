"""rtnetlink with the standard library only: two dumps (links, addresses), the generic
dump the route reader uses (providers/linux/routes.py) and a chunked request batch.

Why not pyroute2 here: importing pyroute2 costs 300-400 ms of CPU on every run, which
would more than double the time of `dsrctl drift`, the command that runs from cron on
every server. Reading needs two fixed message layouts (ifinfomsg, ifaddrmsg) and four
attributes; this module decodes exactly those, and the namespace tests compare its
result with pyroute2's decoding of the same dump.

Writes (``send_requests``) go out in chunks, never in one sendto() of any size:
- the kernel refuses a datagram larger than the socket's send buffer minus 32 bytes
  (EMSGSIZE; about 4,400 address requests with the default 208 KiB), so a chunk stays
  below the buffer the socket really has (SO_SNDBUF read back after asking for more);
- rtnetlink handles a whole datagram inside sendto() and queues one ack per request;
  each ack costs about 830 bytes of receive buffer (measured, Linux 6.18), and what
  does not fit is dropped (the next recv says ENOBUFS). So a chunk holds at most as
  many requests as the receive buffer has room for acks, counted at 2 KiB each, and the
  next chunk goes out only after every ack of this one has been read.
A request that was never sent, or whose ack never came, is reported as such: the caller
decides what that means for its step.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import struct
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from providers.errors import HostError

NLMSG_HDR = struct.Struct("=IHHII")
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP, NLM_F_DUMP_INTR = 0x01, 0x300, 0x10
RTM_NEWLINK, RTM_GETLINK, RTM_NEWADDR, RTM_GETADDR = 16, 18, 20, 22
NETLINK_GET_STRICT_CHK = 12  # the kernel filters a dump by its request (Linux 4.20+)
IFINFOMSG = struct.Struct("=BxHiII")
IFADDRMSG = struct.Struct("=BBBBI")
RTATTR = struct.Struct("=HH")
U32 = struct.Struct("=I")
IFLA_IFNAME, IFLA_MTU, IFLA_LINKINFO = 3, 4, 18
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
# The collect-metadata ("external") attribute of each link kind's IFLA_INFO_DATA
# (include/uapi/linux/if_tunnel.h, if_link.h): a flag for the IP tunnels, a u8 for vxlan.
IFLA_IPTUN_COLLECT_METADATA = 19
IFLA_GRE_COLLECT_METADATA = 18
IFLA_VXLAN_COLLECT_METADATA, IFLA_VXLAN_GPE = 25, 27
COLLECT_METADATA = {
    "ipip": IFLA_IPTUN_COLLECT_METADATA,
    "ip6tnl": IFLA_IPTUN_COLLECT_METADATA,
    "gre": IFLA_GRE_COLLECT_METADATA,
    "ip6gre": IFLA_GRE_COLLECT_METADATA,
    "vxlan": IFLA_VXLAN_COLLECT_METADATA,
}
IFA_ADDRESS, IFA_LOCAL, IFA_LABEL, IFA_CACHEINFO, IFA_FLAGS = 1, 2, 3, 6, 8
IFF_UP = 0x1
DUMP_RETRIES = 5
SOL_NETLINK, NETLINK_CAP_ACK = 270, 10
SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33
BUFFER_WANTED = 4 << 20  # asked for; the kernel may give less (read back, never assumed)
ACK_COST = 2048  # receive-buffer bytes one ack may take (measured: 832)
SEND_SLACK = 32 + 224  # the kernel refuses len > sk_sndbuf - 32; keep a margin
MAX_CHUNK_REQUESTS = 1024  # also bounds how long one sendto() keeps the kernel busy
ACK_TIMEOUT = 30.0  # seconds to wait for the acks of a chunk that was sent


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    up: bool
    kind: str | None = None  # IFLA_INFO_KIND: "ipip", "vxlan", "veth"...; None for lo, eth
    external: bool = False  # collect metadata (tunnel kinds of COLLECT_METADATA only)
    gpe: bool = False  # vxlan in GPE mode
    mtu: int = 0


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
        mtu = U32.unpack(attrs[IFLA_MTU])[0] if len(attrs.get(IFLA_MTU, b"")) == 4 else 0
        link_kind, external, gpe = _link_info(attrs.get(IFLA_LINKINFO))
        links.append(Link(index, name, bool(flags & IFF_UP), link_kind, external, gpe, mtu))
    return links


def _link_info(raw: bytes | None) -> tuple[str | None, bool, bool]:
    """The link kind, and for the tunnel kinds whether it collects metadata and (vxlan)
    whether it is in GPE mode."""
    if raw is None:
        return None, False, False
    info = _attributes(raw, 0)
    kind = info.get(IFLA_INFO_KIND, b"").split(b"\0", 1)[0].decode("ascii", "replace") or None
    attribute = COLLECT_METADATA.get(kind or "")
    if attribute is None:
        return kind, False, False
    data = _attributes(info.get(IFLA_INFO_DATA, b""), 0)
    value = data.get(attribute)
    # The IP tunnels put a flag (present or not); vxlan always puts a u8.
    external = value is not None and (kind != "vxlan" or value[:1] not in (b"", b"\0"))
    return kind, external, kind == "vxlan" and IFLA_VXLAN_GPE in data


def dump_addresses(indexes: Collection[int] | None = None) -> list[RawAddress]:
    """Every IPv4 and IPv6 address, or those of the interfaces ``indexes`` only."""
    return [RawAddress(*fields) for fields in address_fields(indexes)]


AddressFields = tuple[int, int, str, int, int, str | None, int]


def address_fields(indexes: Collection[int] | None = None) -> list[AddressFields]:
    """What dump_addresses() returns, as plain tuples in RawAddress's field order (a
    10,000-VIP host decodes 10,000 of them on every read: no object each)."""
    found = []
    ntop = socket.inet_ntop
    unpack_attr = RTATTR.unpack_from
    for kind, payload in _dump(RTM_GETADDR, IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)):
        if kind != RTM_NEWADDR:
            continue
        family, prefix, flags, _, index = IFADDRMSG.unpack_from(payload, 0)
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        if indexes is not None and index not in indexes:
            continue
        # The attributes, decoded in place: this loop runs once per address on the host.
        local = address = label = None
        preferred = 0xFFFFFFFF
        offset, end = IFADDRMSG.size, len(payload)
        while offset + 4 <= end:
            length, attr = unpack_attr(payload, offset)
            if length < 4:
                break
            attr &= 0x3FFF
            start, stop = offset + 4, offset + length
            if attr == IFA_LOCAL:
                local = payload[start:stop]
            elif attr == IFA_ADDRESS:
                address = payload[start:stop]
            elif attr == IFA_FLAGS:
                (flags,) = U32.unpack_from(payload, start)
            elif attr == IFA_CACHEINFO:
                (preferred,) = U32.unpack_from(payload, start)
            elif attr == IFA_LABEL:
                text = payload[start:stop].split(b"\0", 1)[0]
                label = text.decode("utf-8", "replace")
            offset += (length + 3) & ~3
        raw = (local if family == socket.AF_INET else None) or address
        if raw is None:
            continue
        found.append((index, family, ntop(family, raw), prefix, flags, label, preferred))
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


def dump(request_type: int, body: bytes, *, strict: bool = False) -> list[tuple[int, bytes]]:
    """Every message (type, payload) of one complete dump. ``strict`` asks the kernel to
    dump only what the request's header and attributes select; a kernel without strict
    checking dumps everything, so the caller filters again."""
    return _dump(request_type, body, strict=strict)


def attributes(payload: bytes, offset: int) -> dict[int, bytes]:
    """The netlink attributes of a message from ``offset`` (after its fixed header)."""
    return _attributes(payload, offset)


def _dump(request_type: int, body: bytes, *, strict: bool = False) -> list[tuple[int, bytes]]:
    """One complete dump; retried when the kernel flags it as interrupted by a change."""
    for _ in range(DUMP_RETRIES):
        messages, interrupted = _dump_once(request_type, body, strict)
        if not interrupted:
            return messages
    raise HostError("the kernel kept changing addresses while dsrctl read them; try again")


def _dump_once(
    request_type: int, body: bytes, strict: bool = False
) -> tuple[list[tuple[int, bytes]], bool]:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
    try:
        if strict:  # an older kernel refuses: it dumps everything, the caller filters
            with contextlib.suppress(OSError):
                sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
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


@dataclass
class BatchOutcome:
    """What became of each request of a batch, in order.

    ``codes[i]`` is 0 (acknowledged, done), an errno (acknowledged, refused) or None (no
    ack: never sent, or sent and the ack lost). Requests ``sent`` and later were never
    sent; ``failure`` says why the batch stopped early.
    """

    codes: list[int | None]
    sent: int = 0
    chunks: int = 0
    failure: OSError | None = None
    lost_acks: list[int] = field(default_factory=list)  # sent, never acknowledged


def open_request_socket() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
    try:
        # Acks carry only the header of the request they answer: 36 bytes, not a copy.
        sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        for force, plain in (
            (SO_SNDBUFFORCE, socket.SO_SNDBUF),
            (SO_RCVBUFFORCE, socket.SO_RCVBUF),
        ):
            try:  # needs CAP_NET_ADMIN, which changing addresses needs anyway
                sock.setsockopt(socket.SOL_SOCKET, force, BUFFER_WANTED)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, plain, BUFFER_WANTED)  # capped by *mem_max
        sock.bind((0, 0))
    except BaseException:
        sock.close()
        raise
    return sock


def send_requests(
    units: Sequence[Sequence[bytes]],
    open_socket: Callable[[], socket.socket] | None = None,
) -> BatchOutcome:
    """Send encoded requests (sequence numbers are filled in here) in chunks; read every ack.

    The requests of one unit (one step) always share a chunk. Never raises once a request
    has been sent: a failure stops the batch and is recorded in the outcome.
    """
    total = sum(len(unit) for unit in units)
    outcome = BatchOutcome(codes=[None] * total)
    if not total:
        return outcome
    with (open_socket or open_request_socket)() as sock:
        sndbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        rcvbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        max_bytes = max(sndbuf - SEND_SLACK, 512)
        max_requests = max(1, min(MAX_CHUNK_REQUESTS, rcvbuf // ACK_COST))
        buffer = bytearray(1 << 16)
        first = 0  # number of the first request of the next chunk
        unit = 0
        while unit < len(units):
            chunk = bytearray()
            count, end = 0, unit
            while end < len(units):
                size = sum(len(message) for message in units[end])
                if count and (
                    count + len(units[end]) > max_requests or len(chunk) + size > max_bytes
                ):
                    break
                for message in units[end]:
                    offset = len(chunk)
                    chunk += message
                    U32.pack_into(chunk, offset + 8, first + count + 1)  # nlmsg_seq
                    count += 1
                end += 1
            try:
                sock.send(chunk)
            except OSError as exc:
                if exc.errno == errno.EMSGSIZE and end - unit > 1:
                    # Smaller than the buffer the kernel reported, and still too big:
                    # halve and try again; nothing of this chunk was delivered.
                    max_bytes = max(len(chunk) // 2, 1)
                    max_requests = max(count // 2, 1)
                    continue
                outcome.failure = exc
                break
            outcome.sent = first + count
            outcome.chunks += 1
            lost = _read_acks(sock, buffer, outcome.codes, first, count)
            if lost:
                outcome.lost_acks.extend(lost)
                # The receive buffer was smaller than it looked: smaller chunks from here.
                max_requests = max(1, (count - len(lost)) // 2)
            first += count
            unit = end
    return outcome


def _read_acks(
    sock: socket.socket, buffer: bytearray, codes: list[int | None], first: int, count: int
) -> list[int]:
    """Read the acks of requests first+1 .. first+count; return the requests left unacked.

    rtnetlink answers inside sendto(), so normally every ack is already queued and the
    non-blocking reads find them; the wait is for anything slower.
    """
    missing = count
    overrun = False
    view = memoryview(buffer)
    while missing:
        try:
            size = sock.recv_into(buffer, 0, socket.MSG_DONTWAIT)
        except BlockingIOError:
            if overrun:
                break  # what was dropped will not come
            ready, _, _ = select.select([sock], [], [], ACK_TIMEOUT)
            if not ready:
                break
            continue
        except OSError as exc:
            if exc.errno != errno.ENOBUFS:
                break
            overrun = True  # the kernel dropped acks; read what it kept
            continue
        offset = 0
        while offset + NLMSG_HDR.size <= size:
            length, kind, _, seq, _ = NLMSG_HDR.unpack_from(view, offset)
            if length < NLMSG_HDR.size:
                break
            number = seq - 1
            if kind == NLMSG_ERROR and first <= number < first + count and codes[number] is None:
                (code,) = struct.unpack_from("=i", view, offset + NLMSG_HDR.size)
                codes[number] = -code
                missing -= 1
            offset += (length + 3) & ~3
    return [n for n in range(first, first + count) if codes[n] is None]
