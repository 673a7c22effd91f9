"""IPv6 neighbour solicitations by hand: who answers for an address on a link.

A plain helper shared by the namespace labs and the VM lab (stdlib only, no import of the
project: the VM runs it as ``python3 tests/ndp.py`` and Python is slow there). It sends,
from a neighbour on the link, a real neighbour solicitation (RFC 4861 4.3) for each
target: ICMPv6 type 135 to the target's solicited-node multicast address, hop limit 255
(a receiver drops an NS with any other), the source the neighbour's own address on the
link and a source link-layer address option (its MAC), the checksum over the IPv6
pseudo-header. Then it collects the neighbour advertisements (type 136) that come back
for the targets, with the target link-layer address option of each (a Linux host puts
it in every answer to a multicast solicitation: it tells who answered).

The socket is a raw ICMPv6 socket bound to the device: the kernel builds the IPv6
header (source, hop limit as set) and the Ethernet frame (33:33:ff:xx:xx:xx). Linux
fills in the checksum of every raw ICMPv6 socket itself (RFC 3542 3.1; IPV6_CHECKSUM
cannot be turned off for ICMPv6) and accounts for the value the message carries, so
the one computed here is the one on the wire either way.

Command line (one process for several links; the VM starts Python slowly)::

    python3 tests/ndp.py [--wait SECONDS] DEVICE SOURCE TARGET[,TARGET...] [DEVICE ...]

prints one line per solicitation sent and per advertisement received::

    NS <device> <target> sent
    NA <device> <target> <target-lla or -> <ipv6-source> <hop-limit>
"""

from __future__ import annotations

import ipaddress
import select
import socket
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path

NS_TYPE, NA_TYPE = 135, 136
SOURCE_LLA, TARGET_LLA = 1, 2  # option types
HOP_LIMIT = 255
# Not in the socket module: netinet/icmp6.h and linux/in6.h
ICMP6_FILTER = 1
IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)


@dataclass(frozen=True)
class Advert:
    device: str
    target: str
    lladdr: str  # the target link-layer address option, "" without one
    source: str  # the advertisement's IPv6 source
    hop_limit: int  # -1 when the kernel did not say


def solicited_node(target: str) -> str:
    """ff02::1:ffXX:XXXX, from the target's low 24 bits (RFC 4291 2.7.1)."""
    low = int(ipaddress.IPv6Address(target)) & 0xFFFFFF
    return str(ipaddress.IPv6Address(int(ipaddress.IPv6Address("ff02::1:ff00:0")) | low))


def checksum(source: str, destination: str, message: bytes) -> int:
    """The ICMPv6 checksum (RFC 4443 2.3): the one's complement sum over the pseudo-header
    (source, destination, length, next header 58) and the message (its checksum field 0)."""
    data = (
        ipaddress.IPv6Address(source).packed
        + ipaddress.IPv6Address(destination).packed
        + struct.pack("!IxxxB", len(message), socket.IPPROTO_ICMPV6)
        + message
    )
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def solicitation(source: str, target: str, mac: str) -> bytes:
    """The NS message: type 135, code 0, checksum, reserved, target, source LLA option."""
    lla = bytes.fromhex(mac.replace(":", ""))
    option = struct.pack("!BB", SOURCE_LLA, 1) + lla  # length in units of 8 bytes
    body = struct.pack("!4x16s", ipaddress.IPv6Address(target).packed) + option
    bare = struct.pack("!BBH", NS_TYPE, 0, 0) + body
    return struct.pack("!BBH", NS_TYPE, 0, checksum(source, solicited_node(target), bare)) + body


def parse_advert(device: str, message: bytes, source: str, hop_limit: int) -> Advert | None:
    """An NA's target and target link-layer address, or None for anything else."""
    if len(message) < 24 or message[0] != NA_TYPE:
        return None
    target = str(ipaddress.IPv6Address(message[8:24]))
    lladdr, options = "", message[24:]
    while len(options) >= 8 and options[1]:
        kind, length = options[0], options[1] * 8
        if kind == TARGET_LLA:
            lladdr = options[2:8].hex(":")
        options = options[length:]
    return Advert(device, target, lladdr, source, hop_limit)


def _open(device: str, source: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
    index = socket.if_nametoindex(device)
    scope = index if ipaddress.IPv6Address(source).is_link_local else 0
    sock.bind((source, 0, 0, scope))
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, HOP_LIMIT)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, HOP_LIMIT)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
    sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
    # struct icmp6_filter: a set bit blocks that type; pass neighbour advertisements only
    blocked = [0xFFFFFFFF] * 8
    blocked[NA_TYPE >> 5] &= ~(1 << (NA_TYPE & 31))
    sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("=8I", *blocked))
    return sock


def probe(
    probes: list[tuple[str, str, list[str]]], wait: float = 1.5, repeat: int = 2
) -> tuple[list[tuple[str, str]], list[Advert]]:
    """For each (device, source, targets): solicit every target ``repeat`` times, spread
    over ``wait`` seconds, and gather the advertisements for them until ``wait`` is over.
    Returns the (device, target) solicitations sent and the advertisements received."""
    sockets = {}
    sent: list[tuple[str, str]] = []
    adverts: list[Advert] = []
    try:
        for device, source, _ in probes:
            sockets[device] = _open(device, source)
        deadline = time.monotonic() + wait
        for round_ in range(repeat):
            for device, source, targets in probes:
                mac = Path(f"/sys/class/net/{device}/address").read_text().strip()
                index = socket.if_nametoindex(device)
                for target in targets:
                    message = solicitation(source, target, mac)
                    sockets[device].sendto(message, (solicited_node(target), 0, 0, index))
                    if round_ == 0:
                        sent.append((device, target))
            pause = time.monotonic() + wait / (repeat + 1)
            adverts += _gather(sockets, probes, min(pause, deadline))
        adverts += _gather(sockets, probes, deadline)
    finally:
        for sock in sockets.values():
            sock.close()
    return sent, adverts


def _gather(
    sockets: dict[str, socket.socket], probes: list[tuple[str, str, list[str]]], until: float
) -> list[Advert]:
    wanted = {device: set(targets) for device, _, targets in probes}
    by_socket = {sock: device for device, sock in sockets.items()}
    found = []
    while (left := until - time.monotonic()) > 0:
        ready, _, _ = select.select(list(by_socket), [], [], left)
        for sock in ready:
            device = by_socket[sock]
            message, ancillary, _, address = sock.recvmsg(1500, socket.CMSG_SPACE(4))
            hops = -1
            for level, kind, data in ancillary:
                if (level, kind) == (socket.IPPROTO_IPV6, IPV6_HOPLIMIT):
                    hops = int.from_bytes(data[:4], sys.byteorder)
            advert = parse_advert(device, message, address[0].split("%")[0], hops)
            if advert is not None and advert.target in wanted[device]:
                found.append(advert)
    return found


def argv(
    probes: list[tuple[str, str, list[str]]], wait: float = 1.5, python: str = "python3"
) -> list[str]:
    """The command that runs this module with these probes (in another namespace, or in
    the VM guest: ``shlex.join`` it); :func:`parse_output` reads what it prints."""
    args = [
        word for device, source, targets in probes for word in (device, source, ",".join(targets))
    ]
    # -S: no site module (nothing of site-packages is needed; it saves seconds in the VM)
    return [python, "-S", str(Path(__file__).resolve()), "--wait", f"{wait:g}", *args]


def parse_output(text: str) -> tuple[list[tuple[str, str]], list[Advert]]:
    """The solicitations sent and the advertisements received, from the lines of
    :func:`main` (other lines are ignored)."""
    sent, adverts = [], []
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["NS"] and len(words) == 4:
            sent.append((words[1], words[2]))
        elif words[:1] == ["NA"] and len(words) == 6:
            lladdr = "" if words[3] == "-" else words[3]
            adverts.append(Advert(words[1], words[2], lladdr, words[4], int(words[5])))
    return sent, adverts


def main(argv: list[str]) -> int:
    wait = 1.5
    if argv[:1] == ["--wait"]:
        wait, argv = float(argv[1]), argv[2:]
    if not argv or len(argv) % 3:
        print(__doc__, file=sys.stderr)
        return 2
    probes = [(argv[i], argv[i + 1], argv[i + 2].split(",")) for i in range(0, len(argv), 3)]
    sent, adverts = probe(probes, wait)
    for device, target in sent:
        print(f"NS {device} {target} sent")
    for a in adverts:
        print(f"NA {a.device} {a.target} {a.lladdr or '-'} {a.source} {a.hop_limit}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
