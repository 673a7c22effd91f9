"""VIP ranges end to end: a /24 and an IPv6 /64, each one local route on lo (AnyIP),
applied by dsrctl in a server namespace and reached from a client namespace over a veth.

The client routes both ranges via the server. Before apply nothing of the ranges
answers; after it, random addresses of each range accept TCP connections (the server
answers with the address it was reached at) and none of them gets an ARP answer, where
a range routed by hand with ``arp_ignore=0`` answers ARP for every address (the
contrast, so that the ARP check can fail). A second apply changes nothing; a route
deleted by hand is drift (exit 2) and apply puts it back; rollback and a spec that drops
the range remove it.

The tests of the first part share one pair of namespaces and run in file order.
"""

from __future__ import annotations

import ipaddress
import json
import random
import select
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.netns.namespaces import Netns, NetnsFactory, sh, write_spec

RANGE4 = ipaddress.IPv4Network("198.18.5.0/24")
RANGE6 = ipaddress.IPv6Network("2001:db8:5::/64")
PORT = 8080
SPEC = f"""
version = 1
[[vip]]
address = "{RANGE4.network_address}"
prefix = {RANGE4.prefixlen}
[[vip]]
address = "{RANGE6.network_address}"
prefix = {RANGE6.prefixlen}
"""
SERVER_MAC = "02:00:00:00:05:01"

# Answers each connection with the local address it was made to, then closes.
_SERVER = (
    f"PORT = {PORT}\n"
    """
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", PORT))
s.listen(64)
print("ready", flush=True)
while True:
    conn, _ = s.accept()
    with conn:
        conn.sendall(conn.getsockname()[0].removeprefix("::ffff:").encode())
"""
)

# One connection per address, all at once: address -> what the server said, or "error: ...".
_CLIENT = """
import json, socket, sys, threading
port, timeout, targets = int(sys.argv[1]), float(sys.argv[2]), json.loads(sys.argv[3])
results = {}
def one(target):
    family = socket.AF_INET6 if ":" in target else socket.AF_INET
    try:
        with socket.create_connection((target, port), timeout=timeout) as s:
            results[target] = s.recv(100).decode()
    except OSError as exc:
        results[target] = f"error: {type(exc).__name__}: {exc}"
threads = [threading.Thread(target=one, args=(t,)) for t in targets]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(results))
"""


class Pair:
    """A server and a client namespace joined by a veth (eth0 on both sides)."""

    def __init__(self, make_netns: NetnsFactory) -> None:
        self.server = make_netns("server")
        self.client = make_netns("client")
        sh("ip", "link", "add", "eth0", "netns", self.server.name, "address", SERVER_MAC,
           "type", "veth", "peer", "name", "eth0", "netns", self.client.name)  # fmt: skip
        for ns, host in ((self.server, 1), (self.client, 10)):
            ns.set_sysctl("net.ipv6.conf.eth0.accept_dad", "0")
            ns.run("ip", "link", "set", "eth0", "up")
            ns.run("ip", "addr", "add", f"192.0.2.{host}/24", "dev", "eth0")
            ns.run("ip", "addr", "add", f"2001:db8::{host}/64", "dev", "eth0", "nodad")
        self.client.run("ip", "route", "add", str(RANGE4), "via", "192.0.2.1")
        self.client.run("ip", "-6", "route", "add", str(RANGE6), "via", "2001:db8::1")
        # The kernel's default, made explicit: without dsrctl the server answers ARP for
        # every local address on every interface.
        for scope in ("all", "eth0"):
            self.server.set_sysctl(f"net.ipv4.conf.{scope}.arp_ignore", "0")
        self.process: subprocess.Popen[str] | None = None

    def start_server(self) -> None:
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", self.server.name, sys.executable, "-c", _SERVER],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], 10)
        assert ready and self.process.stdout.readline().strip() == "ready"

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            assert self.process.stdout is not None
            self.process.stdout.close()

    def connect(self, targets: list[str], timeout: float = 2.0) -> dict[str, str]:
        result = self.client.run(
            sys.executable, "-c", _CLIENT, str(PORT), str(timeout), json.dumps(targets)
        )
        answers: dict[str, str] = json.loads(result.stdout)
        return answers

    def arp_replies(self, target: str) -> tuple[list[str], str]:
        """ARP requests for ``target`` from the client's eth0: the MAC of every reply."""
        result = self.client.run(
            "arping", "-c", "3", "-W", "0.2", "-w", "5", "-i", "eth0", target, check=False
        )
        macs = [
            line.split()[3].lower()
            for line in result.stdout.splitlines()
            if " bytes from " in line and f"({target})" in line
        ]
        return macs, result.stdout + result.stderr


def sample(network: ipaddress.IPv4Network | ipaddress.IPv6Network, count: int = 3) -> list[str]:
    """``count`` random addresses of the range, never its first or last."""
    chosen: set[int] = set()
    while len(chosen) < count:
        chosen.add(random.randrange(1, network.num_addresses - 1))
    return [str(network.network_address + n) for n in sorted(chosen)]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    if shutil.which("arping") is None:
        pytest.fail("arping is not installed (the README's test command installs it)")
    factory = NetnsFactory(tmp_path_factory.mktemp("ranges"))
    built: Pair | None = None
    try:
        built = Pair(factory)
        built.start_server()
        yield built
    finally:
        if built is not None:
            built.stop()
        factory.cleanup()


@pytest.fixture(scope="module")
def spec(pair: Pair) -> Path:
    return write_spec(pair.server, SPEC)


# -- before -------------------------------------------------------------------------------
def test_before_apply_no_address_of_the_ranges_answers(pair: Pair) -> None:
    targets = sample(RANGE4) + sample(RANGE6)
    answers = pair.connect(targets, timeout=1.0)
    assert all(answer.startswith("error:") for answer in answers.values()), answers
    macs, output = pair.arp_replies(targets[0])
    assert macs == [], output


def test_a_range_routed_by_hand_with_arp_ignore_0_answers_arp(pair: Pair) -> None:
    """The contrast: the ARP check below sees a server that answers for the range."""
    route = ["route", "add", "local", str(RANGE4), "dev", "lo", "table", "local"]
    pair.server.run("ip", *route)
    try:
        for target in sample(RANGE4, 2):
            macs, output = pair.arp_replies(target)
            assert macs and set(macs) == {SERVER_MAC}, output
    finally:
        pair.server.run("ip", "route", "del", *route[2:])


def test_a_range_over_the_servers_own_subnet_is_refused(pair: Pair) -> None:
    """A local route for 192.0.2.128/25 would make the router and the client (192.0.2.0/24,
    on eth0) local addresses of the server: refused before anything changes."""
    spec = write_spec(
        pair.server, 'version = 1\n[[vip]]\naddress = "192.0.2.128"\nprefix = 25\n', "own.toml"
    )
    for command in (["validate"], ["plan"], ["apply", "--auto-approve"]):
        result = pair.server.dsrctl(*command, str(spec))
        assert (result.returncode, result.stdout) == (1, ""), result.stdout + result.stderr
        assert result.stderr == (
            f'error: {spec}: vip = "192.0.2.128/25": the range covers addresses of '
            "192.0.2.0/24, the subnet of eth0 (192.0.2.1/24): its local route would make "
            "those hosts, the router included, addresses of this server and cut it off from "
            "them\n"
        )
    routes = pair.server.run("ip", "route", "show", "table", "local", "type", "local").stdout
    assert "192.0.2.128" not in routes
    assert pair.server.sysctl("net.ipv4.conf.all.arp_ignore") == "0"


# -- apply --------------------------------------------------------------------------------
def test_plan_shows_each_range_readably(pair: Pair, spec: Path) -> None:
    plan = pair.server.dsrctl("plan", str(spec))
    assert plan.returncode == 0, plan.stderr
    assert f"  + range {RANGE4}: local route on lo, table local\n" in plan.stdout
    assert f"  + range {RANGE6}: local route on lo, table local\n" in plan.stdout
    assert "RouteState" not in plan.stdout
    # The ARP keys are hardened before the ranges appear (phase order).
    lines = plan.stdout.splitlines()
    arp = next(i for i, line in enumerate(lines) if "arp_ignore" in line)
    assert arp < next(i for i, line in enumerate(lines) if "+ range" in line)


@pytest.fixture(scope="module")
def applied(pair: Pair, spec: Path) -> Pair:
    result = pair.server.dsrctl("apply", "--auto-approve", str(spec))
    assert result.returncode == 0, result.stdout + result.stderr
    routes = pair.server.run("ip", "route", "show", "table", "local", "type", "local").stdout
    assert f"local {RANGE4} dev lo proto static scope host" in routes
    return pair


@pytest.mark.parametrize("network", [RANGE4, RANGE6], ids=["ipv4-24", "ipv6-64"])
def test_random_addresses_of_each_range_accept_tcp(
    applied: Pair, network: ipaddress.IPv4Network | ipaddress.IPv6Network
) -> None:
    targets = sample(network)
    assert applied.connect(targets) == {target: target for target in targets}


def test_no_arp_answer_for_the_range(applied: Pair) -> None:
    assert applied.server.sysctl("net.ipv4.conf.all.arp_ignore") == "1"
    for target in sample(RANGE4):
        macs, output = applied.arp_replies(target)
        assert macs == [], output
    # The server still answers ARP for its own address: the segment works.
    macs, output = applied.arp_replies("192.0.2.1")
    assert set(macs) == {SERVER_MAC}, output


_SOLICIT = """
import socket, sys
for target in sys.argv[1:]:
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.settimeout(4)
    try:
        s.connect((target, 9))
    except OSError:
        pass
"""


def test_no_neighbour_advertisement_for_the_ipv6_range(applied: Pair) -> None:
    """IPv6 has no arp_ignore: the kernel answers neighbour solicitations only for the
    addresses of the receiving interface, never for a local route's. The client is made
    to solicit the range's addresses on its link (an on-link route for a moment)."""
    client = applied.client
    client.run("ip", "-6", "route", "replace", str(RANGE6), "dev", "eth0")
    try:
        targets = sample(RANGE6, 2)
        client.run(sys.executable, "-c", _SOLICIT, *targets, "2001:db8::1")
        neighbours = json.loads(client.run("ip", "-j", "-6", "neigh", "show", "dev", "eth0").stdout)
        states = {n["dst"]: (n["state"], n.get("lladdr")) for n in neighbours}
        for target in targets:
            assert states[target][1] is None, states  # solicited, never answered
            assert "FAILED" in states[target][0] or "INCOMPLETE" in states[target][0], states
        assert states["2001:db8::1"][1] == SERVER_MAC  # the server's own address answers
    finally:
        client.run("ip", "-6", "route", "replace", str(RANGE6), "via", "2001:db8::1")


def test_second_apply_changes_nothing(applied: Pair, spec: Path) -> None:
    again = applied.server.dsrctl("apply", "--auto-approve", str(spec))
    assert again.returncode == 0, again.stderr
    assert "No changes." in again.stdout, again.stdout


def test_a_route_deleted_by_hand_is_drift_and_apply_repairs_it(applied: Pair, spec: Path) -> None:
    server = applied.server
    server.run("ip", "route", "del", "local", str(RANGE4), "dev", "lo", "table", "local")
    targets = sample(RANGE4)
    assert all(a.startswith("error:") for a in applied.connect(targets, 1.0).values())
    drift = server.dsrctl("drift", str(spec))
    assert drift.returncode == 2, drift.stdout + drift.stderr
    assert f"DRIFT range {RANGE4}: expected local route on lo, table local" in drift.stdout
    assert str(RANGE6) not in drift.stdout
    repaired = server.dsrctl("apply", "--auto-approve", str(spec))
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "1 change(s) applied and verified" in repaired.stdout
    assert applied.connect(targets) == {target: target for target in targets}
    assert server.dsrctl("drift", str(spec)).returncode == 0


# -- the way back -------------------------------------------------------------------------
def ranges_on(ns: Netns) -> set[str]:
    found = set()
    for version in ("-4", "-6"):
        out = ns.run("ip", "-j", version, "route", "show", "table", "local", "type", "local")
        found |= {r["dst"] for r in json.loads(out.stdout or "[]") if "/" in r["dst"]}
    return found


def test_rollback_removes_the_ranges(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    before = ranges_on(netns)
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    assert ranges_on(netns) == before | {str(RANGE4), str(RANGE6)}
    rollback = netns.dsrctl("rollback", "--auto-approve")
    assert rollback.returncode == 0, rollback.stdout + rollback.stderr
    assert f"- range {RANGE4}: local route on lo, table local  (rollback)" in rollback.stdout
    # The kernel gives the IPv6 route metric 1024: not a change since the apply.
    assert "changed since the apply" not in rollback.stdout, rollback.stdout
    assert ranges_on(netns) == before
    assert netns.sysctl("net.ipv4.conf.all.arp_ignore") == "0"


def test_a_range_on_another_device_moves_to_lo_and_rollback_puts_it_back(netns: Netns) -> None:
    netns.run("ip", "link", "add", "dsr0", "type", "veth", "peer", "name", "dsr0p")
    netns.run("ip", "link", "set", "dsr0", "up")
    netns.run("ip", "route", "add", "local", str(RANGE4), "dev", "dsr0", "table", "local",
              "metric", "5")  # fmt: skip
    spec = write_spec(netns, SPEC)
    applied = netns.dsrctl("apply", "--auto-approve", str(spec))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert (
        f"  ~ range {RANGE4}: local route on dsr0, table local -> local route on lo, table local"
        in applied.stdout
    )
    shown = netns.run("ip", "route", "show", "table", "local", str(RANGE4)).stdout
    assert shown.split()[:4] == ["local", str(RANGE4), "dev", "lo"], shown
    assert netns.dsrctl("rollback", "--auto-approve").returncode == 0
    shown = netns.run("ip", "route", "show", "table", "local", str(RANGE4)).stdout
    assert shown.startswith(f"local {RANGE4} dev dsr0 proto static scope host metric 5"), shown


def test_a_range_the_spec_drops_is_removed(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    spec.write_text(
        spec.read_text().replace(
            f'address = "{RANGE6.network_address}"', 'address = "2001:db8:7::"'
        )
    )
    plan = netns.dsrctl("plan", str(spec))
    assert (
        f"  - range {RANGE6}: local route on lo, table local  (added by dsrctl, no longer in "
        "the spec)" in plan.stdout
    )
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    assert str(RANGE6) not in ranges_on(netns)
    assert "2001:db8:7::/64" in ranges_on(netns)


def without_range4() -> str:
    head, _, ranges = SPEC.partition("[[vip]]")
    return head + ranges.partition("[[vip]]")[2].join(["[[vip]]", ""])


def test_a_route_there_before_dsrctl_stays_when_the_spec_drops_it(netns: Netns) -> None:
    netns.run("ip", "route", "add", "local", str(RANGE4), "dev", "lo", "table", "local")
    spec = write_spec(netns, SPEC)
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    spec = write_spec(netns, without_range4())
    plan = netns.dsrctl("plan", str(spec))
    assert f"the local route {RANGE4} is no longer in the spec but was there before dsrctl" in (
        plan.stdout
    )
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    assert str(RANGE4) in ranges_on(netns)


def test_a_single_vip_inside_a_range_is_applied_with_a_note(netns: Netns) -> None:
    body = SPEC + '[[vip]]\naddress = "198.18.5.7"\n'
    spec = write_spec(netns, body)
    plan = netns.dsrctl("plan", str(spec))
    assert "VIP 198.18.5.7/32 lies inside range 198.18.5.0/24" in plan.stdout, plan.stdout
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    assert "198.18.5.7/32" in netns.addresses()
    assert str(RANGE4) in ranges_on(netns)
    assert netns.dsrctl("drift", str(spec)).returncode == 0
    # Dropping the range removes its route and leaves the single VIP.
    spec = write_spec(netns, without_range4() + '[[vip]]\naddress = "198.18.5.7"\n')
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    assert str(RANGE4) not in ranges_on(netns) and "198.18.5.7/32" in netns.addresses()


def test_a_forged_route_record_never_deletes_the_loopback_route(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    path = netns.state_dir / "ownership.json"
    data = json.loads(path.read_text())
    data["resources"]["route:local:local:127.0.0.0/8"] = {
        "created": True,
        "original": None,
        "since": "",
    }
    path.write_text(json.dumps(data))
    result = netns.dsrctl("apply", "--auto-approve", str(spec))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ignored the ownership record route:local:local:127.0.0.0/8" in result.stdout
    assert "127.0.0.0/8" in ranges_on(netns)
