"""fou/GUE receive ports through generic netlink (family "fou"), standard library only:
what ``ip fou add port N gue`` / ``ip fou del port N`` do, and the FOU_CMD_GET dump.

Constants from include/uapi/linux/fou.h. Only IPv4 ports (FOU_ATTR_AF AF_INET): GUE as
the balancers send it carries IPIP over IPv4.

The family is looked up only when the fou module is loaded: asking the generic netlink
controller for an unknown family makes the kernel load the module it names
(request_module "net-pf-16-proto-16-family-fou"), and a read must change nothing.
"""

from __future__ import annotations

import errno
import os
import socket
import struct

from providers.errors import HostError, PrivilegeError
from providers.linux import kmod

NETLINK_GENERIC = 16
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME = 1, 2
NLMSG_HDR = struct.Struct("=IHHII")
GENLMSGHDR = struct.Struct("=BBH")
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x01, 0x04, 0x300
FOU_GENL_NAME, FOU_GENL_VERSION = "fou", 1
FOU_CMD_ADD, FOU_CMD_DEL, FOU_CMD_GET = 1, 2, 3
FOU_ATTR_PORT, FOU_ATTR_AF, FOU_ATTR_IPPROTO, FOU_ATTR_TYPE = 1, 2, 3, 4
FOU_ENCAP_DIRECT, FOU_ENCAP_GUE = 1, 2
TYPES = {FOU_ENCAP_DIRECT: "direct", FOU_ENCAP_GUE: "gue"}
SYS_FOU = "/sys/module/fou"


def read_ports(sys_fou: str = SYS_FOU) -> dict[int, str]:
    """IPv4 fou port -> "gue" or "direct"; none when the fou module is not loaded."""
    if not os.path.isdir(sys_fou) and not kmod.builtin("fou"):
        return {}
    with _socket() as sock:
        family = _family(sock)
        if family is None:
            return {}
        ports = {}
        for attrs in _talk(sock, family, FOU_CMD_GET, b"", NLM_F_DUMP, "read the fou ports"):
            if attrs.get(FOU_ATTR_AF, b"\2")[:1] != bytes([socket.AF_INET]):
                continue
            port = attrs.get(FOU_ATTR_PORT)
            if port is None or len(port) < 2:
                continue
            kind = attrs.get(FOU_ATTR_TYPE, b"\1")[:1]
            ports[struct.unpack("!H", port[:2])[0]] = TYPES.get(kind[0] if kind else 1, "direct")
        return ports


def add_port(port: int, kind: str) -> None:
    encap = FOU_ENCAP_GUE if kind == "gue" else FOU_ENCAP_DIRECT
    body = _port_attrs(port) + _attr(FOU_ATTR_TYPE, bytes([encap]))
    if encap == FOU_ENCAP_DIRECT:  # a direct port needs the protocol it carries: IPIP
        body += _attr(FOU_ATTR_IPPROTO, bytes([socket.IPPROTO_IPIP]))
    _request(FOU_CMD_ADD, body, f"cannot add fou port {port} ({kind})")


def remove_port(port: int) -> None:
    """Remove the port; a port that is not there is already as wanted (the kernel would
    say EINVAL, as for a malformed request)."""
    if port not in read_ports():
        return
    _request(FOU_CMD_DEL, _port_attrs(port), f"cannot remove fou port {port}")


def _port_attrs(port: int) -> bytes:
    return _attr(FOU_ATTR_PORT, struct.pack("!H", port)) + _attr(
        FOU_ATTR_AF, bytes([socket.AF_INET])
    )


def _request(command: int, body: bytes, what: str) -> None:
    try:
        with _socket() as sock:
            family = _family(sock)
            if family is None:
                raise HostError(f"{what}: the kernel has no fou family (is the fou module loaded?)")
            _talk(sock, family, command, body, NLM_F_ACK, what)
    except PermissionError:
        raise PrivilegeError(f"{what}: netlink refused the request; run as root") from None


def _socket() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_GENERIC)
    sock.bind((0, 0))
    return sock


def _family(sock: socket.socket) -> int | None:
    name = _attr(CTRL_ATTR_FAMILY_NAME, FOU_GENL_NAME.encode() + b"\0")
    try:
        replies = _talk(sock, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, name, 0, "find the fou family")
    except HostError as exc:
        if isinstance(exc.__cause__, FileNotFoundError):
            return None
        raise
    for attrs in replies:
        raw = attrs.get(CTRL_ATTR_FAMILY_ID)
        if raw is not None and len(raw) >= 2:
            return int(struct.unpack("=H", raw[:2])[0])
    return None


def _talk(
    sock: socket.socket, family: int, command: int, body: bytes, flags: int, what: str
) -> list[dict[int, bytes]]:
    """Send one request; the attributes of every reply message (a dump's, or none)."""
    version = 1 if family == GENL_ID_CTRL else FOU_GENL_VERSION
    payload = GENLMSGHDR.pack(command, version, 0) + body
    seq = 1
    sock.send(
        NLMSG_HDR.pack(NLMSG_HDR.size + len(payload), family, NLM_F_REQUEST | flags, seq, 0)
        + payload
    )
    replies: list[dict[int, bytes]] = []
    while True:
        chunk = sock.recv(1 << 16)
        offset = 0
        while offset + NLMSG_HDR.size <= len(chunk):
            length, kind, _, msg_seq, _ = NLMSG_HDR.unpack_from(chunk, offset)
            if length < NLMSG_HDR.size:
                raise HostError(f"{what}: malformed netlink reply")
            message = chunk[offset + NLMSG_HDR.size : offset + length]
            offset += (length + 3) & ~3
            if msg_seq != seq:
                continue
            if kind == NLMSG_DONE:
                return replies
            if kind == NLMSG_ERROR:
                (code,) = struct.unpack_from("=i", message, 0)
                if code == 0:
                    return replies
                error = OSError(-code, os.strerror(-code))
                if -code == errno.ENOENT:
                    error = FileNotFoundError(-code, os.strerror(-code))
                if -code in (errno.EPERM, errno.EACCES):
                    raise PrivilegeError(f"{what}: {os.strerror(-code)}; run as root")
                raise HostError(f"{what}: {os.strerror(-code)}") from error
            replies.append(_attributes(message, GENLMSGHDR.size))
            if not flags & NLM_F_DUMP and not flags & NLM_F_ACK:
                return replies


def _attributes(payload: bytes, offset: int) -> dict[int, bytes]:
    attrs: dict[int, bytes] = {}
    while offset + 4 <= len(payload):
        length, kind = struct.unpack_from("=HH", payload, offset)
        if length < 4:
            break
        attrs[kind & 0x3FFF] = payload[offset + 4 : offset + length]
        offset += (length + 3) & ~3
    return attrs


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)
