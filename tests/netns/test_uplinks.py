"""The uplinks against the real kernel (providers/linux/uplinks.py, the one answer to
"where does VIP traffic arrive"): a server whose IPv4 default route is an ECMP route over
two veths of different MTUs. Every next hop's device is an uplink: both get their ARP and
rp_filter values judged (the kernel's /proc/net/route shows only the first next hop,
which is how the test can fail), and the MSS clamp starts from the smaller MTU."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.netns.namespaces import Netns, NetnsFactory, sh, write_spec

VIP4, VIP6 = "198.18.5.10", "2001:db8:5::10"
SPEC = f"""
version = 1
[[vip]]
address = "{VIP4}"
[[vip]]
address = "{VIP6}"
[[tunnel]]
kind = "vxlan-gpe"
"""


@pytest.fixture
def ecmp(make_netns: NetnsFactory) -> Iterator[Netns]:
    """A server with e0 (MTU 1500) and e1 (MTU 1400) towards a router namespace, an IPv4
    default route over both (ECMP) and an IPv6 default route over e0 only."""
    server, router = make_netns("server"), make_netns("router")
    for index, mtu in ((0, "1500"), (1, "1400")):
        sh("ip", "-n", server.name, "link", "add", f"e{index}", "mtu", mtu, "type", "veth",
           "peer", "name", f"r{index}", "netns", router.name)  # fmt: skip
        server.run("ip", "addr", "add", f"192.0.2.{4 * index + 1}/30", "dev", f"e{index}")
        router.run("ip", "addr", "add", f"192.0.2.{4 * index + 2}/30", "dev", f"r{index}")
        server.run("ip", "link", "set", f"e{index}", "up")
        router.run("ip", "link", "set", f"r{index}", "mtu", mtu, "up")
    server.run("ip", "-6", "addr", "add", "2001:db8:1::1/64", "dev", "e0", "nodad")
    server.run("ip", "route", "add", "default",
               "nexthop", "via", "192.0.2.2", "dev", "e0",
               "nexthop", "via", "192.0.2.6", "dev", "e1")  # fmt: skip
    server.run("ip", "-6", "route", "add", "default", "via", "2001:db8:1::2", "dev", "e0")
    # The kernel's own table of default routes names the first next hop only.
    proc = server.run("cat", "/proc/net/route").stdout.splitlines()[1:]
    assert [f.split()[0] for f in proc if f.split()[1] == "00000000"] == ["e0"]
    yield server


def test_every_next_hop_is_an_uplink_and_the_clamp_fits_the_smallest_mtu(ecmp: Netns) -> None:
    server = ecmp
    server.set_sysctl("net.ipv4.conf.all.arp_ignore", "1")
    server.set_sysctl("net.ipv4.conf.all.arp_announce", "2")
    server.set_sysctl("net.ipv4.conf.all.rp_filter", "1")
    server.set_sysctl("net.ipv4.conf.e1.arp_ignore", "3")  # answers ARP for the VIPs
    spec = write_spec(server, SPEC)

    planned = server.dsrctl("plan", "--json", str(spec))
    assert planned.returncode == 0, planned.stderr
    steps = {step["resource"]: step for step in json.loads(planned.stdout)["changes"]}
    # ARP: the second next hop's defeating value is repaired.
    repair = steps["sysctl:net.ipv4.conf.e1.arp_ignore"]
    assert (repair["before"], repair["after"]) == (3, 1)
    # rp_filter: all goes to 0 for the tunnel; each next hop's device keeps its filter.
    for device in ("e0", "e1"):
        kept = steps[f"sysctl:net.ipv4.conf.{device}.rp_filter"]
        assert (kept["before"], kept["after"]) == (0, 1)
        assert f"keeps {device}'s reverse-path filter at 1" in kept["note"]
    # MSS: vxlan-gpe adds 36 bytes on the smaller MTU; IPv6 VIPs fit the same packets.
    clamp = steps["nft:mss"]
    assert clamp["after"]["ipv4"]["mss"] == 1400 - 36 - 40
    assert clamp["after"]["ipv6"]["mss"] == 1400 - 36 - 60
    assert "vxlan-gpe adds 36 bytes on e1 (MTU 1400)" in clamp["note"]

    applied = server.dsrctl("apply", "--auto-approve", str(spec))
    assert applied.returncode == 0, applied.stderr
    assert server.sysctl("net.ipv4.conf.e1.arp_ignore") == "1"
    assert [server.sysctl(f"net.ipv4.conf.{d}.rp_filter") for d in ("all", "e0", "e1")] == [
        "0",
        "1",
        "1",
    ]
    drift = server.dsrctl("drift", str(spec))
    assert drift.returncode == 0, drift.stdout + drift.stderr

    shown = server.dsrctl("show", "--json")
    assert shown.returncode == 0, shown.stderr
    roles = {
        entry["name"]: entry["role"]
        for entry in json.loads(shown.stdout)["effective"]["interfaces"]
    }
    assert (roles["e0"], roles["e1"]) == ("uplink", "uplink")
