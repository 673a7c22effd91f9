"""A tunnel-mode DSR lab with a VXLAN-GPE balancer, built from network namespaces.

Five namespaces (``dsrt-<pid>-<n>``, see tests/netns/namespaces.py), every link MTU 1500::

    client 192.0.2.10, 2001:db8:1::10 --c0-- router 192.0.2.1, 2001:db8:1::1
                  |  br0 (a bridge in the router): 198.18.2.1/24, 198.18.3.1/24,
                  |                                2001:db8:2::1/64, 2001:db8:3::1/64
                  +-- balancer 198.18.2.2, 2001:db8:2::2    (one-armed: eth0 only)
                  +-- srv1     198.18.3.11, 2001:db8:3::11
                  +-- srv2     198.18.3.12, 2001:db8:3::12

The servers sit in another subnet than the balancer (the point of tunnel mode); the router
routes the VIPs (198.18.4.10, 2001:db8:4::10) and the range (198.18.5.0/24) to the
balancer and everything else directly. The servers get nothing but addresses and default
routes: dsrctl does the rest (the VIPs on lo, the decap device ``dsrgpe0``, rp_filter, the
ARP keys, the MSS clamp).

The balancer, on this kernel (vxlan only; no ipip, gre, fou or IPVS):
  * ``ip link add gpe0 type vxlan gpe external dstport 4790``: a collect-metadata
    VXLAN-GPE device. With no lower device its MTU is 1500, so a full-size client packet
    is forwarded to it without an ICMP "fragmentation needed" (as an encapsulating
    balancer does: the client never learns about the overhead).
  * A multipath route whose next hops carry lightweight-tunnel metadata::

        ip route add 198.18.4.10/32 \\
            nexthop encap ip id 0 dst 198.18.3.11 dev gpe0 \\
            nexthop encap ip id 0 dst 198.18.3.12 dev gpe0

    The vxlan driver takes the outer destination from the route's metadata and the UDP
    port from the device (4790), and puts the inner IP packet behind a GPE header (next
    protocol IPv4 or IPv6): outer IPv4 + UDP + VXLAN-GPE = 36 bytes. The kernel refuses
    such device-only next hops in an IPv6 multipath route ("Device only routes can not be
    added for IPv6 using the multipath API"), so the IPv6 VIP uses nexthop objects
    instead, with the same IPv4 outer header::

        ip -6 nexthop add id 1 encap ip id 0 dst 198.18.3.11 dev gpe0   (id 2: srv2)
        ip nexthop add id 10 group 1/2
        ip -6 route add 2001:db8:4::10/128 nhid 10

    ``fib_multipath_hash_policy=1`` (IPv4 and IPv6) hashes the forwarded client packet's
    5-tuple, so connections spread over both servers and a connection stays on one. The
    /24 of the range gets the same route as the IPv4 VIP.
  * The outer header's DF bit. The kernel fragments an outer packet without DF, and the
    server reassembles it: the MSS problem of tunnel mode would never show. Real
    balancers send the outer packet with DF (or drop what does not fit), but neither the
    device's ``df set`` (it applies to non-external devices only) nor iproute2 6.1's
    ``encap ip`` (no DF flag) sets it for metadata routes; so an nftables rule in
    postrouting sets DF on every packet to UDP 4790. An encapsulated packet above 1500
    bytes is then dropped by the balancer itself, silently for the client: its ICMP
    "fragmentation needed" goes to the outer source, the balancer (the black hole of the
    issue). The ``too_big`` counter counts those ICMP messages in output: the packet
    length cannot tell, as the client's TSO super-packets cross the veths unsegmented
    and are only cut to size (and dropped) after postrouting.

nftables counters (``table inet gpelab`` unless noted) make the paths observable:
  * balancer: ``vip_sourced`` (prerouting and output) and, in ``table netdev gpelab`` on
    eth0's ingress, ``vip_sourced_l2`` (every frame, whatever its destination MAC): a
    packet whose *source* is the VIP or in the range, i.e. a reply passing the balancer;
    ``encap_srv1``/``encap_srv2``: encapsulated packets sent to each server; ``too_big``
    (above).
  * router: ``reply_srv1``/``reply_srv2``: packets from the VIPs arriving on br0 with that
    server's MAC (the reply came straight from the server).

Only documentation ranges are used: 192.0.2.0/24, 198.18.0.0/15 and 2001:db8::/32.
"""

from __future__ import annotations

import contextlib
import json
import select
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.netns.namespaces import Netns, NetnsFactory, sh, write_spec

VIP = "198.18.4.10"
VIP6 = "2001:db8:4::10"
VIPS = (VIP, VIP6)
RANGE = "198.18.5.0/24"
PORT = 8080
MTU = 1500
CLIENT = ("192.0.2.10/24", "2001:db8:1::10/64")
ROUTER_CLIENT_SIDE = ("192.0.2.1", "2001:db8:1::1")
ROUTER_BALANCER_SIDE = ("198.18.2.1", "2001:db8:2::1")
ROUTER_SERVER_SIDE = ("198.18.3.1", "2001:db8:3::1")
BALANCER = ("198.18.2.2", "2001:db8:2::2")
SERVERS = {"srv1": "198.18.3.11", "srv2": "198.18.3.12"}
SERVERS6 = {"srv1": "2001:db8:3::11", "srv2": "2001:db8:3::12"}
MACS = {"balancer": "02:00:00:00:02:02", "srv1": "02:00:00:00:03:11", "srv2": "02:00:00:00:03:12"}
GPE_OVERHEAD = 20 + 8 + 8  # outer IPv4, UDP, VXLAN-GPE header
# The MSS per VIP: dsrctl's clamp (1424, 1404), and what the server advertises without it
# (from its uplink's MTU: 1460, 1440).
CLAMP = {VIP: MTU - GPE_OVERHEAD - 40, VIP6: MTU - GPE_OVERHEAD - 60}
UNCLAMPED = {VIP: MTU - 40, VIP6: MTU - 60}
TABLE = "gpelab"

# The spec of both servers: the VIP on lo and the decap side; the range is added later.
SERVER_SPEC = (
    f'version = 1\n[[vip]]\naddress = "{VIP}"\n[[vip]]\naddress = "{VIP6}"\n'
    '[[tunnel]]\nkind = "vxlan-gpe"\n'
)
RANGE_VIP = f'[[vip]]\naddress = "{RANGE.split("/")[0]}"\nprefix = {RANGE.split("/")[1]}\n'

# A tiny TCP server, one thread per connection: reads "<op> <size>\n"; "hi" answers its
# name, "up" reads <size> bytes and answers "<name> <bytes read>", "down" answers its name
# and <size> bytes. Prints "ready" once it listens.
_SERVER = """
import socket, sys, threading
name, port = sys.argv[1], int(sys.argv[2])
listener = socket.socket(socket.AF_INET6)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
listener.bind(("::", port))
listener.listen(64)
print("ready", flush=True)

def serve(conn):
    with conn:
        conn.settimeout(10)
        try:
            reader = conn.makefile("rb")
            op, size = reader.readline().split()
            size = int(size)
            if op == b"up":
                got = 0
                while got < size:
                    data = reader.read1(65536)
                    if not data:
                        break
                    got += len(data)
                conn.sendall(f"{name} {got}\\n".encode())
            elif op == b"down":
                conn.sendall(f"{name}\\n".encode() + b"d" * size)
            else:
                conn.sendall(f"{name}\\n".encode())
        except (OSError, ValueError):
            pass

while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""

# The client: the jobs (JSON: [{"address", "op", "size", "timeout"}]) all at once, one
# thread each; prints a JSON list, in job order, of {"address", "server", "bytes", "mss",
# "seconds"} or {"address", "error", "seconds"}. "bytes" is what the server read (up) or
# the client read (down).
_CLIENT = """
import json, socket, sys, threading, time
jobs = json.loads(sys.argv[2])
port = int(sys.argv[1])
results = [None] * len(jobs)

def one(number, job):
    start = time.monotonic()
    try:
        with socket.create_connection((job["address"], port), timeout=job["timeout"]) as s:
            mss = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
            size = job["size"] if job["op"] != "hi" else 0
            s.sendall(f"{job['op']} {size}\\n".encode())
            if job["op"] == "up":
                s.sendall(b"u" * size)
            s.shutdown(socket.SHUT_WR)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        line, _, rest = data.partition(b"\\n")
        words = line.decode().split()
        if not words:
            raise OSError(f"empty answer {data[:50]!r}")
        got = int(words[1]) if job["op"] == "up" else len(rest)
        results[number] = {"server": words[0], "bytes": got, "mss": mss}
    except OSError as exc:
        results[number] = {"error": f"{type(exc).__name__}: {exc}"}
    results[number]["address"] = job["address"]
    results[number]["seconds"] = round(time.monotonic() - start, 3)

threads = [threading.Thread(target=one, args=item) for item in enumerate(jobs)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps(results))
"""


def _balancer_ruleset() -> str:
    sourced = [
        f'    ip saddr {{ {VIP}, {RANGE} }} counter name "NAME"',
        f'    ip6 saddr {VIP6} counter name "NAME"',
    ]
    encap = [
        f'    ip daddr {address} udp dport 4790 counter name "encap_{role}"'
        for role, address in SERVERS.items()
    ]
    return "\n".join(
        [
            f"table inet {TABLE} {{",
            "  counter vip_sourced { }",
            "  counter too_big { }",
            *(f"  counter encap_{role} {{ }}" for role in SERVERS),
            "  chain pre {",
            "    type filter hook prerouting priority -300; policy accept;",
            *(rule.replace("NAME", "vip_sourced") for rule in sourced),
            "  }",
            "  chain out {",
            "    type filter hook output priority 0; policy accept;",
            *(rule.replace("NAME", "vip_sourced") for rule in sourced),
            '    icmp type destination-unreachable icmp code frag-needed counter name "too_big"',
            "  }",
            "  chain post {",
            "    type filter hook postrouting priority 0; policy accept;",
            *encap,
            "    udp dport 4790 ip frag-off set ip frag-off | 0x4000",
            "  }",
            "}",
            f"table netdev {TABLE} {{",
            "  counter vip_sourced_l2 { }",
            "  chain ingress {",
            '    type filter hook ingress device "eth0" priority 0; policy accept;',
            *(rule.replace("NAME", "vip_sourced_l2") for rule in sourced),
            "  }",
            "}",
            "",
        ]
    )


def _router_ruleset() -> str:
    replies = [
        f'    iifname "br0" {match} ether saddr {MACS[role]} counter name "reply_{role}"'
        for role in SERVERS
        for match in (f"ip saddr {{ {VIP}, {RANGE} }}", f"ip6 saddr {VIP6}")
    ]
    return "\n".join(
        [
            f"table inet {TABLE} {{",
            *(f"  counter reply_{role} {{ }}" for role in SERVERS),
            "  chain pre {",
            "    type filter hook prerouting priority 0; policy accept;",
            *replies,
            "  }",
            "}",
            "",
        ]
    )


@dataclass
class GpeLab:
    factory: NetnsFactory
    client: Netns
    router: Netns
    balancer: Netns
    servers: dict[str, Netns]
    specs: dict[str, Path] = field(default_factory=dict)
    processes: list[subprocess.Popen[str]] = field(default_factory=list)

    # -- observing ----------------------------------------------------------------------
    def run_client(self, jobs: list[dict[str, object]]) -> list[dict[str, object]]:
        """Run the client's jobs in parallel; one result per job, in order."""
        longest = max(float(str(job["timeout"])) for job in jobs)
        result = subprocess.run(
            ["ip", "netns", "exec", self.client.name, sys.executable, "-c", _CLIENT,
             str(PORT), json.dumps(jobs)],
            capture_output=True,
            text=True,
            timeout=4 * longest + 20,
        )  # fmt: skip
        if result.returncode != 0:
            raise AssertionError(f"the client failed: {result.stderr}")
        answers: list[dict[str, object]] = json.loads(result.stdout)
        return answers

    def requests(self, addresses: list[str], timeout: float = 2.0) -> list[dict[str, object]]:
        """A short request to each address (the reply is the server's name)."""
        jobs = [{"address": a, "op": "hi", "size": 0, "timeout": timeout} for a in addresses]
        return self.run_client(jobs)

    def transfers(
        self, size: int, timeout: float = 3.0
    ) -> dict[tuple[str, str], dict[str, object]]:
        """An upload (``"up"``) and a download (``"down"``) of ``size`` bytes to each VIP, all
        at once: the result by (op, VIP)."""
        keys = [(op, vip) for op in ("up", "down") for vip in VIPS]
        jobs = [{"address": vip, "op": op, "size": size, "timeout": timeout} for op, vip in keys]
        return dict(zip(keys, self.run_client(jobs), strict=True))

    def counters(self, ns: Netns) -> dict[str, int]:
        """The named counters of the lab's tables in a namespace, by name."""
        out = ns.run("nft", "-j", "list", "counters")
        return {
            item["counter"]["name"]: int(item["counter"]["packets"])
            for item in json.loads(out.stdout)["nftables"]
            if "counter" in item and item["counter"]["table"] == TABLE
        }

    def arping(self, target: str, count: int = 3) -> tuple[list[str], str]:
        """ARP requests for ``target`` from the router on the servers' segment (br0): the
        MAC of every reply, and the raw output for assertion messages."""
        result = self.router.run(
            "arping", "-c", str(count), "-W", "0.2", "-w", "5", "-i", "br0", target,
            check=False,
        )  # fmt: skip
        macs = [
            line.split()[3].lower()
            for line in result.stdout.splitlines()
            if " bytes from " in line and f"({target})" in line
        ]
        return macs, result.stdout + result.stderr

    # -- the servers --------------------------------------------------------------------
    def write_specs(self, body: str) -> None:
        for role, ns in self.servers.items():
            self.specs[role] = write_spec(ns, body)

    def dsrctl(self, role: str, *args: str) -> subprocess.CompletedProcess[str]:
        """dsrctl in a server; ``args`` end before the spec, which is appended."""
        return self.servers[role].dsrctl(*args, str(self.specs[role]))

    def apply(self, role: str) -> str:
        result = self.dsrctl(role, "apply", "--auto-approve")
        if result.returncode != 0 or "Traceback" in result.stderr:
            raise AssertionError(f"apply on {role}: {result.stdout}{result.stderr}")
        return result.stdout

    # -- building -----------------------------------------------------------------------
    def start_server(self, role: str) -> None:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.servers[role].name, sys.executable, "-c", _SERVER,
             role, str(PORT)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )  # fmt: skip
        self.processes.append(proc)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        line = proc.stdout.readline() if ready else ""
        if line.strip() != "ready":
            raise AssertionError(f"the TCP server in {role} did not start: {line!r}")

    def stop_processes(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=5)
            if proc.stdout is not None:
                proc.stdout.close()
        self.processes.clear()


def _veth(left: Netns, left_dev: str, right: Netns, right_dev: str) -> None:
    sh("ip", "-n", left.name, "link", "add", left_dev, "mtu", str(MTU), "type", "veth",
       "peer", "name", right_dev, "mtu", str(MTU), "netns", right.name)  # fmt: skip


def _build(factory: NetnsFactory) -> GpeLab:
    client, router, balancer = factory("client"), factory("router"), factory("balancer")
    servers = {role: factory(role) for role in SERVERS}
    r = router.name

    # client -- router
    _veth(client, "eth0", router, "c0")
    _address(client, "eth0", *CLIENT)
    _default_routes(client, ROUTER_CLIENT_SIDE)
    # The MSS the client sees (TCP_MAXSEG) is then exactly what the SYN-ACK advertised.
    client.set_sysctl("net.ipv4.tcp_timestamps", "0")
    _address(router, "c0", f"{ROUTER_CLIENT_SIDE[0]}/24", f"{ROUTER_CLIENT_SIDE[1]}/64")

    # the router's bridge: the balancer's and the servers' segment (two subnets)
    sh("ip", "-n", r, "link", "add", "br0", "mtu", str(MTU), "type", "bridge",
       "mcast_snooping", "0")  # fmt: skip
    for side in (ROUTER_BALANCER_SIDE, ROUTER_SERVER_SIDE):
        _address(router, "br0", f"{side[0]}/24", f"{side[1]}/64")
    router.set_sysctl("net.ipv4.ip_forward", "1")
    router.set_sysctl("net.ipv6.conf.all.forwarding", "1")
    for role, ns in (("balancer", balancer), *servers.items()):
        _veth(router, f"p-{role}", ns, "eth0")
        router.run("ip", "link", "set", f"p-{role}", "master", "br0", "up")
        ns.run("ip", "link", "set", "eth0", "address", MACS[role])
    router.run("ip", "route", "add", f"{VIP}/32", "via", BALANCER[0])
    router.run("ip", "route", "add", RANGE, "via", BALANCER[0])
    router.run("ip", "-6", "route", "add", f"{VIP6}/128", "via", BALANCER[1])
    sh("ip", "netns", "exec", r, "nft", "-f", "-", input=_router_ruleset())

    # the balancer: one arm, a VXLAN-GPE metadata device and encap multipath routes
    _address(balancer, "eth0", f"{BALANCER[0]}/24", f"{BALANCER[1]}/64")
    _default_routes(balancer, ROUTER_BALANCER_SIDE)
    for family in ("ipv4", "ipv6"):
        balancer.set_sysctl(f"net.{family}.fib_multipath_hash_policy", "1")
    balancer.set_sysctl("net.ipv4.ip_forward", "1")
    balancer.set_sysctl("net.ipv6.conf.all.forwarding", "1")
    balancer.run("ip", "link", "add", "gpe0", "mtu", str(MTU), "type", "vxlan", "gpe",
                 "external", "dstport", "4790")  # fmt: skip
    balancer.run("ip", "link", "set", "gpe0", "up")
    hops: list[str] = []
    for address in SERVERS.values():
        hops += ["nexthop", "encap", "ip", "id", "0", "dst", address, "dev", "gpe0"]
    for prefix in (f"{VIP}/32", RANGE):
        balancer.run("ip", "route", "add", prefix, *hops)
    for number, address in enumerate(SERVERS.values(), start=1):
        balancer.run("ip", "-6", "nexthop", "add", "id", str(number), "encap", "ip", "id", "0",
                     "dst", address, "dev", "gpe0")  # fmt: skip
    balancer.run("ip", "nexthop", "add", "id", "10", "group", "1/2")
    balancer.run("ip", "-6", "route", "add", f"{VIP6}/128", "nhid", "10")
    sh("ip", "netns", "exec", balancer.name, "nft", "-f", "-", input=_balancer_ruleset())

    # the servers: addresses and default routes, nothing else
    for role, ns in servers.items():
        _address(ns, "eth0", f"{SERVERS[role]}/24", f"{SERVERS6[role]}/64")
        _default_routes(ns, ROUTER_SERVER_SIDE)
    return GpeLab(factory, client, router, balancer, servers)


def _address(ns: Netns, device: str, ipv4: str, ipv6: str) -> None:
    """Both addresses on a device (IPv6 without DAD, so usable at once), and the device up."""
    ns.set_sysctl(f"net.ipv6.conf.{device}.accept_dad", "0")
    ns.run("ip", "addr", "add", ipv4, "dev", device)
    ns.run("ip", "addr", "add", ipv6, "dev", device, "nodad")
    ns.run("ip", "link", "set", device, "up")


def _default_routes(ns: Netns, gateways: tuple[str, str]) -> None:
    ns.run("ip", "route", "add", "default", "via", gateways[0])
    ns.run("ip", "-6", "route", "add", "default", "via", gateways[1])


@contextlib.contextmanager
def gpe_lab(tmp_path: Path) -> Iterator[GpeLab]:
    """The lab with a TCP server running in each real server; all of it (processes and
    namespaces) torn down afterwards, also when building it or a test fails."""
    factory = NetnsFactory(tmp_path)
    lab: GpeLab | None = None
    try:
        lab = _build(factory)
        for role in SERVERS:
            lab.start_server(role)
        yield lab
    finally:
        if lab is not None:
            lab.stop_processes()
        factory.cleanup()
