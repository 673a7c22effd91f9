"""vxlan-gpe with an IPv6 outer header (``outer = 6``), against this machine's kernel.

A balancer namespace encapsulates a UDP request for an IPv4 VIP in VXLAN-GPE over IPv6
(``encap ip6``) to a server namespace configured only by ``dsrctl apply``; the server's
collect-metadata device receives it on its IPv6 socket and answers straight from the VIP.
The plan clamps the MSS for the IPv6 outer header (56 bytes, not 36) and finds the uplink
through the IPv6 default route.
"""

from __future__ import annotations

from tests.netns.namespaces import Netns, NetnsFactory, write_spec

VIP = "198.18.0.10"
SPEC = f"""
version = 1
[[vip]]
address = "{VIP}"
[[tunnel]]
kind = "vxlan-gpe"
outer = 6
"""
# One UDP request to the VIP from the balancer's IPv4 address: "answered" or "silent".
ASK = (
    "import socket\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "s.bind(('192.0.2.1', 0)); s.settimeout(2)\n"
    f"s.sendto(b'ping', ('{VIP}', 7000))\n"
    "try:\n    s.recvfrom(100); print('answered')\n"
    "except OSError:\n    print('silent')\n"
)
SERVE = (
    "import socket\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    f"s.setsockopt(socket.SOL_IP, 15, 1); s.bind(('{VIP}', 7000))\n"
    "while True:\n    data, peer = s.recvfrom(100); s.sendto(data, peer)\n"
)


def _pair(make_netns: NetnsFactory) -> tuple[Netns, Netns]:
    lb, srv = make_netns("lb"), make_netns("srv")
    lb.run("ip", "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", srv.name)
    lb.run("ip", "link", "set", "va", "up")
    srv.run("ip", "link", "set", "vb", "up")
    lb.run("ip", "address", "add", "192.0.2.1/24", "dev", "va")
    srv.run("ip", "address", "add", "192.0.2.2/24", "dev", "vb")
    lb.run("ip", "address", "add", "2001:db8::1/64", "dev", "va", "nodad")
    srv.run("ip", "address", "add", "2001:db8::2/64", "dev", "vb", "nodad")
    srv.run("ip", "route", "add", "default", "via", "192.0.2.1", "dev", "vb")
    srv.run("ip", "-6", "route", "add", "default", "via", "2001:db8::1", "dev", "vb")
    # the balancer: a VXLAN-GPE metadata device, the VIP routed into it over IPv6 with UDP
    # checksums (without ``csum`` the kernel sends a zero checksum, which an IPv6 receiver
    # drops, Udp6InErrors, unless its device has udp6zerocsumrx: docs/tunnel-mode.md)
    lb.run("ip", "link", "add", "gpe0", "type", "vxlan", "gpe", "external", "dstport", "4790")
    lb.run("ip", "link", "set", "gpe0", "up")
    lb.run("ip", "route", "add", f"{VIP}/32", "encap", "ip6", "id", "0", "dst", "2001:db8::2",
           "csum", "dev", "gpe0")  # fmt: skip
    return lb, srv


def _ask(lb: Netns) -> str:
    return lb.run("python3", "-c", ASK).stdout.strip()


def test_vxlan_gpe_over_ipv6_is_decapsulated_after_apply(make_netns: NetnsFactory) -> None:
    import subprocess

    lb, srv = _pair(make_netns)
    spec = write_spec(srv, SPEC)
    server = subprocess.Popen(["ip", "netns", "exec", srv.name, "python3", "-c", SERVE])
    try:
        assert _ask(lb) == "silent"
        plan = srv.dsrctl("plan", str(spec))
        assert plan.returncode == 0, plan.stderr
        # IPv6 outer: 40 + 8 (UDP) + 8 (VXLAN-GPE) = 56 bytes; the IPv4 VIPs' MSS is
        # 1500 - 56 - 40, on the device of the IPv6 default route
        assert "vxlan-gpe adds 56 bytes on vb (MTU 1500)" in plan.stdout
        assert "to 1404:" in plan.stdout
        apply = srv.dsrctl("apply", "--auto-approve", str(spec))
        assert apply.returncode == 0, apply.stderr
        # the metadata device listens on both IP versions' sockets
        sockets = srv.run("ss", "-H", "-uln", "sport", "= :4790").stdout
        assert "[::]:4790" in sockets or "*:4790" in sockets, sockets
        assert _ask(lb) == "answered"
        assert "No changes" in srv.dsrctl("apply", "--auto-approve", str(spec)).stdout
    finally:
        server.kill()
        server.wait()


def test_outer_is_refused_on_a_kind_whose_outer_version_is_fixed(netns: Netns) -> None:
    spec = write_spec(
        netns, f'\nversion = 1\n[[vip]]\naddress = "{VIP}"\n[[tunnel]]\nkind = "gre"\nouter = 6\n'
    )
    checked = netns.dsrctl("validate", str(spec))
    assert checked.returncode == 1
    assert checked.stderr.strip() == (
        f"error: {spec}: tunnel[0].outer = 6: only a vxlan-gpe tunnel has a choice of outer "
        "IP version; gre's is IPv4"
    )
