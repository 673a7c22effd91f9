"""Address batches of any size: chunking, every ack, unsent and unacknowledged requests.

The kernel side is a fake netlink socket in front of an address table that refuses what
rtnetlink refuses: a datagram larger than the send buffer minus 32 bytes (EMSGSIZE), an
address that exists (EEXIST) or is missing (EADDRNOTAVAIL), a prefix too long (EINVAL),
and it drops acks that do not fit the receive buffer (about 830 bytes each), reporting
ENOBUFS on the next read, as the kernel does. tests/netns/test_big_batches.py runs the
same paths against the real kernel.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dsrctl.errors import ApplyFailed, HostError
from dsrctl.executor import execute
from dsrctl.kinds.address import AddressStep
from dsrctl.model import AddressState
from dsrctl.plan import Plan
from dsrctl.steps import Phase, Step
from providers import safefile
from providers.linux import addresses, rtnl
from state.journal import Journal

HDR = struct.Struct("=IHHII")
ACK_TRUESIZE = 832  # what one ack costs in the kernel's receive buffer (measured, 6.18)
LO = 1


class FakeKernel:
    """The address table of one interface (index 1, "lo") and the sockets talking to it."""

    def __init__(
        self,
        sndbuf: int = 212992,
        rcvbuf: int = 425984,
        reported_rcvbuf: int | None = None,
        reported_sndbuf: int | None = None,
        fail_send: int | None = None,
    ) -> None:
        self.table: dict[str, int] = {}  # address -> prefix
        self.sndbuf, self.rcvbuf = sndbuf, rcvbuf
        self.reported_rcvbuf = reported_rcvbuf or rcvbuf
        self.reported_sndbuf = reported_sndbuf or sndbuf
        self.fail_send = fail_send  # the n-th send() (1-based) fails with ENOMEM, once
        self.sends: list[int] = []  # requests per datagram the kernel accepted
        self.refused_sizes: list[int] = []

    def socket(self) -> FakeSocket:
        return FakeSocket(self)

    def handle(self, message: bytes) -> int:
        _, kind, _, _, _ = HDR.unpack_from(message, 0)
        family, prefix, _, _, index = rtnl.IFADDRMSG.unpack_from(message, HDR.size)
        offset, address = HDR.size + rtnl.IFADDRMSG.size, None
        while offset < len(message):
            length, attr = rtnl.RTATTR.unpack_from(message, offset)
            if attr == addresses.IFA_ADDRESS:
                raw = message[offset + 4 : offset + length]
                address = socket.inet_ntop(family, raw)
            offset += (length + 3) & ~3
        if index != LO or address is None:
            return errno.ENODEV
        if prefix > (32 if family == socket.AF_INET else 128):
            return errno.EINVAL
        if kind == addresses.RTM_NEWADDR:
            if address in self.table:
                return errno.EEXIST
            self.table[address] = prefix
            return 0
        if address not in self.table:
            return errno.EADDRNOTAVAIL
        del self.table[address]
        return 0

    def read_interfaces(self, names: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        found = {
            f"{a}/{p}": addresses.address_state(
                rtnl.RawAddress(LO, socket.AF_INET, a, p, 0, "lo", 0xFFFFFFFF)
            )
            for a, p in self.table.items()
        }
        return {"lo": rtnl.Link(LO, "lo", True)}, {"lo": found}


class FakeSocket:
    def __init__(self, kernel: FakeKernel) -> None:
        self.kernel = kernel
        self.queue: deque[bytes] = deque()
        self.queued = 0
        self.overrun = False
        self.read_end, self.write_end = os.pipe()  # select() on it waits, never wakes

    def __enter__(self) -> FakeSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.read_end)
        os.close(self.write_end)

    def fileno(self) -> int:
        return self.read_end

    def getsockopt(self, level: int, option: int) -> int:
        assert level == socket.SOL_SOCKET
        if option == socket.SO_SNDBUF:
            return self.kernel.reported_sndbuf
        assert option == socket.SO_RCVBUF
        return self.kernel.reported_rcvbuf

    def send(self, data: bytes) -> int:
        kernel = self.kernel
        if kernel.fail_send == len(kernel.sends) + 1:
            kernel.fail_send = None  # once
            raise OSError(errno.ENOMEM, os.strerror(errno.ENOMEM))
        if len(data) > kernel.sndbuf - 32:
            kernel.refused_sizes.append(len(data))
            raise OSError(errno.EMSGSIZE, os.strerror(errno.EMSGSIZE))
        offset, count = 0, 0
        while offset < len(data):
            length, _, flags, seq, _ = HDR.unpack_from(data, offset)
            assert flags & addresses.NLM_F_ACK
            code = kernel.handle(bytes(data[offset : offset + length]))
            ack = HDR.pack(36, rtnl.NLMSG_ERROR, 0, seq, 0) + struct.pack("=i", -code)
            ack += data[offset : offset + 16]
            if self.queued + ACK_TRUESIZE > kernel.rcvbuf:
                self.overrun = True  # dropped, as netlink_overrun() does
            else:
                self.queue.append(ack)
                self.queued += ACK_TRUESIZE
            offset += (length + 3) & ~3
            count += 1
        kernel.sends.append(count)
        return len(data)

    def recv_into(self, buffer: bytearray, nbytes: int = 0, flags: int = 0) -> int:
        if self.overrun:
            self.overrun = False
            raise OSError(errno.ENOBUFS, os.strerror(errno.ENOBUFS))
        if not self.queue:
            raise BlockingIOError(errno.EAGAIN, "no data")
        message = self.queue.popleft()
        self.queued -= ACK_TRUESIZE
        buffer[: len(message)] = message
        return len(message)


def vip(number: int, prefix: int = 32) -> AddressState:
    return AddressState(f"198.18.{number // 256}.{number % 256}", prefix, label="lo")


def add_steps(count: int) -> list[AddressStep]:
    return [
        AddressStep(f"address:lo:{vip(n).cidr}", None, vip(n), Phase.ADD_ADDRESSES)
        for n in range(count)
    ]


@pytest.fixture
def use_kernel(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    def install(kernel: FakeKernel) -> FakeKernel:
        monkeypatch.setattr(rtnl, "open_request_socket", kernel.socket)
        monkeypatch.setattr(addresses, "read_interfaces", kernel.read_interfaces)
        monkeypatch.setattr(rtnl, "ACK_TIMEOUT", 0.01)
        return kernel

    yield install


def apply(steps: list[AddressStep]) -> list[BaseException | None]:
    return addresses.apply_address_steps(steps, {"lo": LO})


# -- encoding ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "state",
    [
        AddressState("192.0.2.1", 32),
        AddressState("192.0.2.1", 32, label="lo"),
        AddressState("192.0.2.1", 32, label="lo:abcdefghij"),
        AddressState("2001:db8::1", 128, deprecated=True, nodad=True),
        AddressState("2001:db8::1", 128),
        AddressState("2001:db8::1", 128, nodad=True),
    ],
)
@pytest.mark.parametrize("command", ["add", "del", "replace"])
def test_requests_are_the_bytes_pyroute2_encodes(command: str, state: AddressState) -> None:
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

    msg = ifaddrmsg()
    msg["family"] = socket.AF_INET if state.version == 4 else socket.AF_INET6
    msg["prefixlen"] = state.prefix
    msg["index"] = 7
    attrs: list[tuple[str, Any]] = []
    if state.version == 4:
        attrs += [("IFA_LOCAL", state.address), ("IFA_ADDRESS", state.address)]
        if state.label and command != "del":
            attrs.append(("IFA_LABEL", state.label))
    else:
        attrs.append(("IFA_ADDRESS", state.address))
        if command != "del":
            preferred = 0 if state.deprecated else addresses.INFINITY_LIFE
            cacheinfo = {"ifa_preferred": preferred, "ifa_valid": addresses.INFINITY_LIFE}
            attrs.append(("IFA_CACHEINFO", {**cacheinfo, "cstamp": 0, "tstamp": 0}))
            if state.nodad:
                msg["flags"] = addresses.IFA_F_NODAD
                attrs.append(("IFA_FLAGS", addresses.IFA_F_NODAD))
    msg["attrs"] = attrs
    msg["header"]["type"] = addresses.RTM_DELADDR if command == "del" else addresses.RTM_NEWADDR
    msg["header"]["flags"] = (
        addresses.NLM_F_REQUEST | addresses.NLM_F_ACK | addresses._COMMAND_FLAGS[command]
    )
    msg.encode()
    assert addresses._encode(command, 7, state) == bytes(msg.data)


# -- chunking ---------------------------------------------------------------------------


def test_ten_thousand_requests_go_out_in_chunks_that_fit_both_buffers(use_kernel: Any) -> None:
    # The buffers a distribution's defaults give (net.core.[rw]mem_max = 212992): one
    # datagram of 10,000 requests is refused, and only 512 acks fit the receive buffer.
    kernel = use_kernel(FakeKernel())
    results = apply(add_steps(10_000))
    assert results == [None] * 10_000
    assert len(kernel.table) == 10_000
    assert kernel.refused_sizes == []
    assert max(kernel.sends) * ACK_TRUESIZE <= kernel.rcvbuf
    assert sum(kernel.sends) == 10_000 and len(kernel.sends) > 1


def test_a_step_of_two_requests_never_straddles_two_chunks(use_kernel: Any) -> None:
    kernel = use_kernel(FakeKernel(rcvbuf=3 * 2048, sndbuf=1 << 20))
    steps = [
        AddressStep(f"address:lo:{vip(n).cidr}", vip(n), vip(n), Phase.ADD_ADDRESSES)
        for n in range(10)
    ]
    kernel.table = {vip(n).address: 32 for n in range(10)}
    # An IPv4 update is a delete and an add: with room for three acks, one step a chunk.
    assert apply(steps) == [None] * 10
    assert kernel.sends == [2] * 10
    assert len(kernel.table) == 10


def test_a_send_buffer_smaller_than_reported_halves_the_chunk(use_kernel: Any) -> None:
    kernel = use_kernel(FakeKernel(sndbuf=4096, reported_sndbuf=1 << 20, rcvbuf=1 << 22))
    assert apply(add_steps(500)) == [None] * 500
    assert kernel.refused_sizes  # it was tried, refused, and retried smaller
    assert len(kernel.table) == 500


def test_a_later_chunk_that_fails_leaves_exactly_the_acked_steps_completed(
    use_kernel: Any, tmp_path: Path
) -> None:
    kernel = use_kernel(FakeKernel(rcvbuf=100 * 2048, fail_send=3))
    steps = add_steps(1000)
    results = apply(steps)
    assert kernel.sends == [100, 100]
    assert results[:200] == [None] * 200
    assert all(isinstance(error, HostError) for error in results[200:])
    assert "was not changed: the netlink batch stopped before its request was sent" in str(
        results[200]
    )
    assert set(kernel.table) == {vip(n).address for n in range(200)}


def test_the_executor_undoes_only_what_the_kernel_acknowledged(
    use_kernel: Any, tmp_path: Path
) -> None:
    kernel = use_kernel(FakeKernel(rcvbuf=100 * 2048, fail_send=3))

    class Host:
        def run_batch(self, steps: list[Step]) -> list[BaseException | None]:
            return apply(steps)  # type: ignore[arg-type]

    journal = Journal(str(tmp_path / "journal.jsonl"), safefile)
    journal.begin(spec="s")
    plan = Plan(steps=tuple(add_steps(1000)))
    with pytest.raises(ApplyFailed) as caught:
        execute(plan, Host(), journal, lambda: None, lambda: [])
    journal.close()
    assert caught.value.rollback_errors == []
    assert caught.value.undone == 200
    assert "rolled back 200 completed step(s)" in str(caught.value)
    assert kernel.table == {}
    # The undo itself went out in chunks too: 2 failed-apply chunks, then 2 of deletes.
    assert kernel.sends == [100, 100, 100, 100]


def test_a_refusal_in_a_later_chunk_fails_that_step_only(use_kernel: Any) -> None:
    kernel = use_kernel(FakeKernel(rcvbuf=100 * 2048))
    steps = add_steps(1000)
    bad = vip(50000, 33)
    steps[750] = AddressStep(f"address:lo:{bad.cidr}", None, bad, steps[0].phase)
    results = apply(steps)
    assert [n for n, error in enumerate(results) if error is not None] == [750]
    assert "Invalid argument" in str(results[750])
    assert len(kernel.table) == 999


def test_lost_acks_are_looked_up_in_the_kernel(use_kernel: Any) -> None:
    # The socket claims a 4 MiB receive buffer but holds 50 acks: the rest are dropped.
    kernel = use_kernel(FakeKernel(rcvbuf=50 * ACK_TRUESIZE, reported_rcvbuf=4 << 20))
    steps = add_steps(2000)
    for number in (300, 1500):  # refused: one whose ack is lost, one acknowledged
        bad = vip(50000 + number, 33)
        steps[number] = AddressStep(f"address:lo:{bad.cidr}", None, bad, steps[0].phase)
    results = apply(steps)
    assert [n for n, error in enumerate(results) if error is not None] == [300, 1500]
    assert f"did not acknowledge the request to add {vip(50300, 33).cidr}" in str(results[300])
    assert "the address is unchanged" in str(results[300])
    assert "Invalid argument" in str(results[1500])
    assert len(kernel.table) == 1998
    # The first chunk overran the buffer; later ones shrank until every ack fitted.
    assert kernel.sends[0] == rtnl.MAX_CHUNK_REQUESTS
    assert max(kernel.sends[1:]) * ACK_TRUESIZE <= kernel.rcvbuf


def test_nothing_sent_when_the_first_chunk_cannot_go(use_kernel: Any) -> None:
    kernel = use_kernel(FakeKernel(fail_send=1))
    results = apply(add_steps(3))
    assert all(isinstance(error, HostError) for error in results)
    assert kernel.table == {}
