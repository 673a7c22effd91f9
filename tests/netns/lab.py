"""A Direct Server Return lab built from network namespaces.

One L2 segment: a bridge in a "switch" namespace and one veth pair into each host (the
host end is always called ``eth0``). The load balancer holds the VIP on its ``eth0``, so it
answers ARP and neighbour solicitations for it, and forwards TCP for the VIP with an
nftables rule in the netdev ingress hook: the destination MAC becomes a real server's MAC,
the source MAC the LB's own, and the frame goes straight back out of ``eth0`` (LVS-DR /
gateway mode). The IP packet is left alone, so the real server sees the VIP as the
destination and answers the client directly.

The LB picks the real server by the parity of the TCP source port (even: the first server,
odd: the second), so a client that binds its source port knows which server must answer.

nftables counters (table ``netdev dsrlab``) make the paths observable:
  * on the LB: ``to_<server>_<family>`` (packets forwarded to each server) and
    ``replies_<family>`` (packets with the VIP as *source*, i.e. a reply passing the LB);
  * on the client: who sent the ARP replies and neighbour advertisements for the VIP, and
    which MAC the TCP replies from the VIP came from.

Only documentation ranges are used: 192.0.2.0/24 and 2001:db8::/64.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import os
import select
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.netns.namespaces import SPEC, UNAVAILABLE, Netns, NetnsFactory, sh

VIP4 = "192.0.2.100"
VIP6 = "2001:db8::100"
PORT = 8080
IFNAME = "eth0"
TABLE = "dsrlab"
FAMILIES = {4: "ip", 6: "ip6"}

SERVER_SPEC = SPEC  # VIP4 and VIP6, one labelled

# Each host: MAC (locally administered), IPv4 and IPv6 on eth0.
ADDRESSES = {
    "lb": ("02:00:00:00:00:02", "192.0.2.2", "2001:db8::2"),
    "client": ("02:00:00:00:00:10", "192.0.2.10", "2001:db8::10"),
    "rs1": ("02:00:00:00:00:11", "192.0.2.11", "2001:db8::11"),
    "rs2": ("02:00:00:00:00:12", "192.0.2.12", "2001:db8::12"),
    "rs3": ("02:00:00:00:00:13", "192.0.2.13", "2001:db8::13"),
}

# A tiny TCP server: dual-stack on the given port, answers its name and closes. It prints
# "ready" once it listens, so the lab never races it.
_SERVER = """
import socket, sys
name = sys.argv[1].encode() + b"\\n"
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", int(sys.argv[2])))
s.listen(64)
print("ready", flush=True)
while True:
    conn, _ = s.accept()
    with conn:
        conn.sendall(name)
"""

# The client: one connection per source port, all at once (so timeouts do not add up);
# prints a JSON list, in port order, of {"sport": N, "reply": "rs1"} or {"sport": N,
# "error": "..."}.
_CLIENT = """
import json, socket, sys, threading
src, vip, port, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
family = socket.AF_INET6 if ":" in vip else socket.AF_INET
sports = json.loads(sys.argv[5])
results = [None] * len(sports)

def one(number, sport):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.settimeout(timeout)
    try:
        s.bind((src, sport))
        s.connect((vip, port))
        data = b""
        while True:
            chunk = s.recv(100)
            if not chunk:
                break
            data += chunk
        results[number] = {"sport": sport, "reply": data.decode().strip()}
    except OSError as exc:
        results[number] = {"sport": sport, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        s.close()

threads = [threading.Thread(target=one, args=item) for item in enumerate(sports)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps(results))
"""

# Client source ports, never reused in one run (no TIME_WAIT surprises on the servers).
_ports = itertools.count(20000)


def missing_tools() -> str | None:
    """Why the lab cannot be built here, or None."""
    if UNAVAILABLE is not None:
        return UNAVAILABLE
    for tool in ("nft", "arping"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    return None


def next_ports(count: int) -> list[int]:
    """``count`` fresh consecutive source ports: both parities, so both servers."""
    return [next(_ports) for _ in range(count)]


def nft_table(counters: list[str], rules: list[str]) -> str:
    """A netdev table with named counters and one ingress chain on eth0."""
    lines = [f"table netdev {TABLE} {{"]
    lines += [f"  counter {name} {{ }}" for name in counters]
    lines += [
        "  chain ingress {",
        f'    type filter hook ingress device "{IFNAME}" priority 0; policy accept;',
        *(f"    {rule}" for rule in rules),
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


@dataclass
class Host:
    role: str
    ns: Netns
    mac: str
    ipv4: str
    ipv6: str

    @property
    def name(self) -> str:
        return self.ns.name

    def nft(self, ruleset: str) -> None:
        sh("ip", "netns", "exec", self.name, "nft", "-f", "-", input=ruleset)

    def counters(self) -> dict[str, int]:
        out = self.ns.run("nft", "-j", "list", "counters", "table", "netdev", TABLE)
        return {
            item["counter"]["name"]: int(item["counter"]["packets"])
            for item in json.loads(out.stdout)["nftables"]
            if "counter" in item
        }


@dataclass
class Lab:
    switch: Netns
    factory: NetnsFactory
    hosts: dict[str, Host] = field(default_factory=dict)
    processes: list[subprocess.Popen[str]] = field(default_factory=list)

    def __getitem__(self, role: str) -> Host:
        return self.hosts[role]

    # -- building -----------------------------------------------------------------------
    def add_host(self, role: str) -> Host:
        """A namespace with eth0 plugged into the bridge, addressed and up, without DAD."""
        mac, ipv4, ipv6 = ADDRESSES[role]
        ns = self.factory(role)
        port = f"p-{role}"
        sw = self.switch.name
        sh("ip", "-n", sw, "link", "add", port, "type", "veth", "peer", "name", IFNAME,
           "netns", ns.name)  # fmt: skip
        sh("ip", "-n", sw, "link", "set", port, "master", "br0", "up")
        ns.set_sysctl(f"net.ipv6.conf.{IFNAME}.accept_dad", "0")
        sh("ip", "-n", ns.name, "link", "set", IFNAME, "address", mac, "up")
        sh("ip", "-n", ns.name, "addr", "add", f"{ipv4}/24", "dev", IFNAME)
        sh("ip", "-n", ns.name, "addr", "add", f"{ipv6}/64", "dev", IFNAME, "nodad")
        host = Host(role, ns, mac, ipv4, ipv6)
        self.hosts[role] = host
        return host

    def add_load_balancer(self, servers: tuple[str, ...]) -> Host:
        """The LB holds the VIP on eth0; with two servers it MAC-forwards TCP to them."""
        lb = self.add_host("lb")
        sh("ip", "-n", lb.name, "addr", "add", f"{VIP4}/32", "dev", IFNAME)
        sh("ip", "-n", lb.name, "addr", "add", f"{VIP6}/128", "dev", IFNAME, "nodad")
        counters: list[str] = []
        rules: list[str] = []
        for family in FAMILIES.values():
            vip = VIP4 if family == "ip" else VIP6
            counters.append(f"replies_{family}")
            rules.append(f'{family} saddr {vip} counter name "replies_{family}"')
            if len(servers) != 2:
                continue
            for parity, role in enumerate(servers):
                counters.append(f"to_{role}_{family}")
                rules.append(
                    f"{family} daddr {vip} tcp sport & 1 == {parity} "
                    f'counter name "to_{role}_{family}" '
                    f"ether saddr set {lb.mac} ether daddr set {self.hosts[role].mac} "
                    f'fwd to "{IFNAME}"'
                )
        lb.nft(nft_table(counters, rules))
        return lb

    def watch_client(self) -> None:
        """Client-side counters: who answers ARP/ND for the VIP, who sends TCP replies."""
        client = self.hosts["client"]
        lb_mac = self.hosts["lb"].mac
        target = f"0x{int(ipaddress.IPv6Address(VIP6)):032x}"
        # ARP replies for the VIP, and neighbour advertisements whose target (bytes 8-23 of
        # the ICMPv6 header) is the VIP, counted by sender: the LB or anyone else.
        matches = {
            "arp": f"arp operation reply arp saddr ip {VIP4}",
            "na": f"icmpv6 type nd-neighbor-advert @th,64,128 {target}",
        }
        counters: list[str] = []
        rules: list[str] = []
        for kind, match in matches.items():
            for who, mac in (("lb", lb_mac), ("other", f"!= {lb_mac}")):
                counters.append(f"{kind}_vip_{who}")
                rules.append(f'{match} ether saddr {mac} counter name "{kind}_vip_{who}"')
        for family in FAMILIES.values():
            vip = VIP4 if family == "ip" else VIP6
            for role, host in self.hosts.items():
                if role == "client":
                    continue
                name = f"tcp_{family}_from_{role}"
                counters.append(name)
                rules.append(
                    f"{family} saddr {vip} tcp sport {PORT} ether saddr {host.mac} "
                    f'counter name "{name}"'
                )
        client.nft(nft_table(counters, rules))

    def start_tcp_server(self, role: str) -> None:
        """Run the name-answering TCP server in a host; killed by :meth:`stop_processes`."""
        host = self.hosts[role]
        proc = subprocess.Popen(
            ["ip", "netns", "exec", host.name, sys.executable, "-c", _SERVER, role, str(PORT)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.processes.append(proc)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        line = proc.stdout.readline() if ready else ""
        if line.strip() != "ready":
            raise AssertionError(f"the TCP server in {role} did not start: {line!r}")

    def stop_processes(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
            if proc.stdout is not None:
                proc.stdout.close()
        self.processes.clear()

    # -- observing ----------------------------------------------------------------------
    def connect(
        self, version: int, sports: list[int], timeout: float = 2.0
    ) -> list[dict[str, str]]:
        """From the client, one TCP connection to the VIP per source port, in order."""
        client = self.hosts["client"]
        src, vip = (client.ipv4, VIP4) if version == 4 else (client.ipv6, VIP6)
        result = subprocess.run(
            ["ip", "netns", "exec", client.name, sys.executable, "-c", _CLIENT,
             src, vip, str(PORT), str(timeout), json.dumps(sports)],
            capture_output=True,
            text=True,
            timeout=timeout + 20,
        )  # fmt: skip
        if result.returncode != 0:
            raise AssertionError(f"the client failed: {result.stderr}")
        answers: list[dict[str, str]] = json.loads(result.stdout)
        return answers

    def arping(self, role: str, target: str, count: int = 3) -> tuple[list[str], str]:
        """ARP requests for ``target`` from a host's eth0: the MAC of every reply, and the
        raw output (for assertion messages)."""
        result = self.hosts[role].ns.run(
            "arping", "-c", str(count), "-W", "0.2", "-w", "5", "-i", IFNAME, target,
            check=False,
        )  # fmt: skip
        # A reply line: "42 bytes from 02:00:00:00:00:02 (192.0.2.100): index=0 time=9 usec"
        macs = [
            line.split()[3].lower()
            for line in result.stdout.splitlines()
            if " bytes from " in line and f"({target})" in line
        ]
        return macs, result.stdout + result.stderr

    def neighbour(self, role: str, address: str) -> str:
        """The link-layer address a host's neighbour table holds for ``address``, or ''."""
        out = self.hosts[role].ns.run("ip", "-j", "neigh", "show", "to", address, "dev", IFNAME)
        entries = json.loads(out.stdout or "[]")
        return str(entries[0].get("lladdr", "")) if entries else ""


@contextlib.contextmanager
def dsr_lab(tmp_path: Path, servers: tuple[str, ...] = ("rs1", "rs2")) -> Iterator[Lab]:
    """Client, LB and real servers on one bridge; all of it torn down afterwards.

    With two servers the LB forwards TCP for the VIP to them and each runs the TCP server
    on port 8080; the servers are *not* configured for DSR (that is dsrctl's job).
    """
    reason = missing_tools()
    if reason is not None:
        pytest.skip(reason)
    factory = NetnsFactory(tmp_path)
    lab: Lab | None = None
    try:
        switch = factory("switch")
        sh("ip", "-n", switch.name, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
        sh("ip", "-n", switch.name, "link", "set", "br0", "up")
        lab = Lab(switch=switch, factory=factory)
        lab.add_host("client")
        for role in servers:
            lab.add_host(role)
        lab.add_load_balancer(servers)
        lab.watch_client()
        if len(servers) == 2:
            for role in servers:
                lab.start_tcp_server(role)
        yield lab
    finally:
        if lab is not None:
            lab.stop_processes()
        factory.cleanup()


def dsrctl_env(ns: Netns) -> dict[str, str]:
    """The environment Netns.dsrctl gives the CLI, for calls that build their own command."""
    env = {**os.environ, "DSRCTL_STATE_DIR": str(ns.state_dir), **ns.env}
    env.pop("DSRCTL_REQUIRE_NETNS", None)
    return env
