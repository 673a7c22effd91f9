"""The host firewall warning of tunnel mode against the real kernel, the real nft and real
encapsulated traffic: a balancer namespace sends VXLAN-GPE (the kind this kernel has)
to a server whose nftables input chain has policy drop. The warning is there exactly
while the server drops the balancer's packets, and the rule it names lets them in. The
matcher over many rule shapes: tests/unit/test_firewall.py."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.netns.namespaces import Netns, NetnsFactory, sh, write_spec

VIP = "198.18.5.10"
PORT = 7000  # the service on the VIP (UDP: one datagram and its answer)
SPEC = f'version = 1\n[[vip]]\naddress = "{VIP}"\n'
GPE = SPEC + '[[tunnel]]\nkind = "vxlan-gpe"\n'
# The server's firewall: policy drop; the service's port is open (the decapsulated
# packet passes the input hook too, arriving on the decap device), the tunnel's is not.
RULESET = f"""
table inet filter {{
    chain input {{
        type filter hook input priority filter; policy drop;
        ct state established,related accept
        iifname "lo" accept
        udp dport {PORT} accept
    }}
}}
"""
SERVE = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(64)
    s.sendto(b"pong", peer)
"""
ASK = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
for _ in range(4):
    s.sendto(b"ping", (sys.argv[1], int(sys.argv[2])))
    try:
        print(s.recvfrom(64)[0].decode())
        break
    except socket.timeout:
        pass
else:
    print("no answer")
"""
WARNING = "! the host firewall drops the VXLAN-GPE packets (UDP port 4790) of tunnel dsrgpe0"


@pytest.fixture
def lab(make_netns: NetnsFactory) -> Iterator[tuple[Netns, Netns]]:
    """A server (uplink veth0, 192.0.2.1, its default route) and a balancer that
    encapsulates the VIP's traffic in VXLAN-GPE to the server (a collect-metadata device
    and a route with its encapsulation); the server answers the client directly."""
    server, balancer = make_netns("server"), make_netns("balancer")
    sh("ip", "-n", server.name, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
       "netns", balancer.name)  # fmt: skip
    server.run("ip", "addr", "add", "192.0.2.1/24", "dev", "veth0")
    balancer.run("ip", "addr", "add", "192.0.2.2/24", "dev", "veth1")
    server.run("ip", "link", "set", "veth0", "up")
    balancer.run("ip", "link", "set", "veth1", "up")
    server.run("ip", "route", "add", "default", "via", "192.0.2.2", "dev", "veth0")
    balancer.run("ip", "link", "add", "gpe0", "type", "vxlan", "gpe", "external")
    balancer.run("ip", "link", "set", "gpe0", "up")
    balancer.run("ip", "route", "add", f"{VIP}/32", "encap", "ip", "id", "0", "dst", "192.0.2.1",
                 "dev", "gpe0")  # fmt: skip
    service = subprocess.Popen(
        ["ip", "netns", "exec", server.name, sys.executable, "-c", SERVE, str(PORT)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert service.stdout is not None and service.stdout.readline().strip() == "ready"
        yield server, balancer
    finally:
        service.kill()
        service.wait()


def answered(balancer: Netns) -> bool:
    out = balancer.run(sys.executable, "-c", ASK, VIP, str(PORT)).stdout.strip()
    assert out in ("pong", "no answer"), out
    return out == "pong"


def warnings(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("! the host firewall")]


def test_the_warning_is_there_exactly_while_the_firewall_drops_the_tunnel(
    lab: tuple[Netns, Netns],
) -> None:
    server, balancer = lab
    spec = write_spec(server, GPE)
    applied = server.dsrctl("apply", "--auto-approve", str(spec))
    assert applied.returncode == 0, applied.stderr
    assert answered(balancer)  # the tunnel works while the firewall is open

    sh("ip", "netns", "exec", server.name, "nft", "-f", "-", input=RULESET)
    # The input policy drops the encapsulated packets. ct state established,related does
    # not let them in: the balancer's flow never sees a reply (the server answers the
    # client), so it stays new to conntrack, however many packets it carried before.
    assert not answered(balancer)

    plan = server.dsrctl("plan", str(spec))
    assert plan.returncode == 0, plan.stderr
    (warning,) = warnings(plan.stdout)
    assert warning.startswith(WARNING)
    assert warning.endswith(
        " arriving on veth0 before they are decapsulated: nftables chain inet filter input "
        "(hook input) has policy drop and no rule that surely accepts them; to let them in: "
        'nft add rule inet filter input iifname "veth0" udp dport 4790 accept'
    )
    assert "No changes" in plan.stdout  # a warning, not a change
    drift = server.dsrctl("drift", str(spec))
    assert drift.returncode == 0, drift.stdout + drift.stderr
    assert warnings(drift.stdout) == [warning]
    validate = server.dsrctl("validate", str(spec))
    assert validate.returncode == 0, validate.stderr
    assert warnings(validate.stdout) == [warning]

    # The rule the warning names, exactly as written, lets the tunnel in.
    command = shlex.split(warning.split("to let them in: ", 1)[1])
    server.run(*command)
    assert answered(balancer)
    for command_name in ("plan", "drift", "validate"):
        again = server.dsrctl(command_name, str(spec))
        assert again.returncode == 0, again.stderr
        assert warnings(again.stdout) == [], command_name


def test_no_tunnels_no_nft_run_and_no_warning(netns: Netns, tmp_path: Path) -> None:
    """Without [[tunnel]] the firewall is not read at all: an nft that records its runs
    (first on PATH) is never started."""
    sh("ip", "netns", "exec", netns.name, "nft", "-f", "-", input=RULESET)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    runs = tmp_path / "nft-runs"
    fake = bin_dir / "nft"
    real = shutil.which("nft") or shutil.which("nft", path="/usr/sbin:/sbin")
    assert real is not None
    fake.write_text(f'#!/bin/sh\necho "$@" >> {runs}\nexec {real} "$@"\n')
    fake.chmod(0o755)
    netns.env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    spec = write_spec(netns, SPEC)
    for command in ("plan", "drift", "validate"):
        result = netns.dsrctl(command, str(spec))
        assert result.returncode in (0, 2), result.stderr
        assert warnings(result.stdout) == []
    assert not runs.exists()
    # The same nft with a tunnel in the spec is run (so the test above can fail).
    with_tunnel = write_spec(netns, GPE, "gpe.toml")
    netns.run("ip", "link", "add", "u0", "type", "veth", "peer", "name", "u1")
    netns.run("ip", "link", "set", "u0", "up")
    netns.run("ip", "address", "add", "198.18.0.2/24", "dev", "u0")
    netns.run("ip", "route", "add", "default", "via", "198.18.0.1", "dev", "u0")
    planned = netns.dsrctl("plan", str(with_tunnel))
    assert planned.returncode == 0, planned.stderr
    assert "-j list ruleset" in runs.read_text().splitlines()
    assert len(warnings(planned.stdout)) == 1
