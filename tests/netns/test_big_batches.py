"""Batches of any size against the real kernel: 10,000 VIPs through the CLI, and the
chunked netlink batch with a refusal in a later chunk and with acks the kernel drops.

One datagram used to carry the whole batch: from about 4,400 VIPs the kernel refused it
(EMSGSIZE), the automatic rollback (one datagram too) failed the same way, and every
later `dsrctl rollback` with it.
"""

from __future__ import annotations

import ipaddress
import json
import sys

from tests.netns.namespaces import Netns, write_spec

V4 = ipaddress.IPv4Address("198.18.0.0")
V6 = ipaddress.IPv6Address("2001:db8::")


def vips(count: int) -> list[str]:
    """``count`` VIPs from 198.18.0.0/15, every fourth one from 2001:db8::/32."""
    return [str(V6 + n) if n % 4 == 0 else str(V4 + n) for n in range(1, count + 1)]


def spec_body(ns: Netns, addresses: list[str]) -> str:
    body = "version = 1\n" + "".join(f'[[vip]]\naddress = "{a}"\n' for a in addresses)
    # The sysctl file under the namespace's work directory; no VIP persistence files.
    return body + f'[linux.persist]\nroot = "{ns.workdir}"\naddresses = "none"\n'


def on_lo(ns: Netns) -> set[str]:
    listing = json.loads(ns.run("ip", "-j", "address", "show", "dev", "lo").stdout)
    return {f"{a['local']}/{a['prefixlen']}" for a in listing[0]["addr_info"]}


def cidr(address: str) -> str:
    return f"{address}/{128 if ':' in address else 32}"


BASE = {"127.0.0.1/8", "::1/128"}


def test_ten_thousand_vips_apply_drift_roll_back_and_go_again(netns: Netns) -> None:
    wanted = vips(10_000)
    arp_before = netns.sysctl("net.ipv4.conf.all.arp_ignore")
    spec = write_spec(netns, spec_body(netns, wanted))
    applied = netns.dsrctl("apply", "--auto-approve", str(spec))
    assert applied.returncode == 0, applied.stderr
    assert on_lo(netns) == BASE | {cidr(a) for a in wanted}

    drift = netns.dsrctl("drift", str(spec))
    assert drift.returncode == 0, drift.stdout + drift.stderr
    netns.run("ip", "address", "del", cidr(wanted[0]), "dev", "lo")
    drift = netns.dsrctl("drift", str(spec))
    assert drift.returncode == 2, drift.stdout + drift.stderr
    assert cidr(wanted[0]) in drift.stdout

    back = netns.dsrctl("rollback", "--auto-approve")
    assert back.returncode == 0, back.stdout + back.stderr
    assert "FAILED" not in back.stdout + back.stderr
    assert on_lo(netns) == BASE
    assert netns.sysctl("net.ipv4.conf.all.arp_ignore") == arp_before

    again = netns.dsrctl("apply", "--auto-approve", str(spec))
    assert again.returncode == 0, again.stderr
    assert len(on_lo(netns)) == 10_002
    # A spec needs one VIP: keep the first, and the other 9,999 go.
    fewer = write_spec(netns, spec_body(netns, wanted[:1]), name="one.toml")
    removed = netns.dsrctl("apply", "--auto-approve", str(fewer))
    assert removed.returncode == 0, removed.stderr
    assert on_lo(netns) == BASE | {cidr(wanted[0])}
    assert netns.dsrctl("drift", str(fewer)).returncode == 0


# Shared by the scripts below: every send_requests() outcome is kept, and state(n) is the
# n-th address of 198.18.0.0/15.
RECORDING = """
outcomes = []
send = rtnl.send_requests
def recording(units, open_socket=None):
    outcomes.append(send(units, open_socket))
    return outcomes[-1]
rtnl.send_requests = recording

def state(n, prefix=32):
    return AddressState(f"198.18.{n // 256}.{n % 256}", prefix, label="lo")
"""

# Runs inside the namespace: the real kernel, the real socket, small buffers so that
# 3,000 requests take many chunks, and a request the kernel refuses (a /33) in a late one.
LATER_CHUNK_FAILS = (
    r"""
import json, sys
from dsrctl.errors import ApplyFailed
from dsrctl.executor import execute
from dsrctl.model import AddressState
from dsrctl.plan import Plan
from dsrctl.kinds.address import AddressStep
from dsrctl.steps import Phase
from providers import safefile
from providers.linux import addresses, rtnl
from providers.linux.host import LinuxHost
from state.journal import Journal

rtnl.BUFFER_WANTED = 1 << 16     # SO_RCVBUF 128 KiB: 64 acks a chunk at 2 KiB each
"""
    + RECORDING
    + r"""steps = [AddressStep(f"address:lo:{state(n).cidr}", None, state(n), Phase.ADD_ADDRESSES)
         for n in range(1, 3001)]
bad = state(2900, 33)
steps[2899] = AddressStep(f"address:lo:{bad.cidr}", None, bad, Phase.ADD_ADDRESSES)
host = LinuxHost()
host._indexes = {"lo": 1}
journal = Journal(sys.argv[1], safefile)
journal.begin(spec="test")
try:
    execute(Plan(steps=tuple(steps)), host, journal, lambda: None, lambda: [])
except ApplyFailed as exc:
    print(json.dumps({"undone": exc.undone, "rollback_errors": exc.rollback_errors,
                      "message": str(exc), "chunks": [o.chunks for o in outcomes],
                      "lost": [len(o.lost_acks) for o in outcomes]}))
"""
)


def test_a_refusal_in_a_later_chunk_undoes_exactly_the_acked_steps(netns: Netns) -> None:
    journal = netns.workdir / "journal.jsonl"
    result = netns.run(sys.executable, "-c", LATER_CHUNK_FAILS, str(journal))
    report = json.loads(result.stdout)
    assert report["undone"] == 2999
    assert report["rollback_errors"] == []
    assert "refused to add 198.18.11.84/33 on lo: Invalid argument" in report["message"]
    apply_chunks, undo_chunks = report["chunks"]
    assert apply_chunks > 10 and undo_chunks > 10
    assert report["lost"] == [0, 0]
    assert on_lo(netns) == BASE


# The kernel drops acks that do not fit the receive buffer: pretend an ack costs 16 bytes
# so that a chunk overruns it, and check that the lost acks are looked up in the kernel.
ACKS_DROPPED = (
    r"""
import json
from dsrctl.model import AddressState
from dsrctl.kinds.address import AddressStep
from dsrctl.steps import Phase
from providers.linux import addresses, rtnl

rtnl.BUFFER_WANTED = 1 << 14     # SO_RCVBUF 32 KiB: about 40 acks fit
rtnl.ACK_COST = 16               # ... but chunks of up to 1,024 requests are sent
"""
    + RECORDING
    + r"""steps = [AddressStep(f"address:lo:{state(n).cidr}", None, state(n), Phase.ADD_ADDRESSES)
         for n in range(1, 2001)]
bad = state(500, 33)
steps[499] = AddressStep(f"address:lo:{bad.cidr}", None, bad, Phase.ADD_ADDRESSES)
errors = addresses.apply_address_steps(steps, {"lo": 1})
print(json.dumps({"errors": {n: str(e) for n, e in enumerate(errors) if e is not None},
                  "lost": len(outcomes[0].lost_acks), "chunks": outcomes[0].chunks}))
"""
)


def test_acks_the_kernel_drops_are_looked_up_not_guessed(netns: Netns) -> None:
    result = netns.run(sys.executable, "-c", ACKS_DROPPED)
    report = json.loads(result.stdout)
    assert report["lost"] > 100  # the kernel really dropped them (ENOBUFS)
    assert report["chunks"] > 10  # and the chunks after the overrun were smaller
    assert list(report["errors"]) == ["499"]
    assert "did not acknowledge the request to add 198.18.1.244/33" in report["errors"]["499"]
    assert "the address is unchanged" in report["errors"]["499"]
    expected = {f"198.18.{n // 256}.{n % 256}/32" for n in range(1, 2001) if n != 500}
    assert on_lo(netns) == BASE | expected
