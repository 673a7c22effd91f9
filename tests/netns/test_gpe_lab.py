"""Tunnel-mode DSR end to end, VXLAN-GPE variant: two real servers configured only by
``dsrctl apply`` behind a one-armed encapsulating balancer (tests/netns/gpe_lab.py: the
topology, the balancer's multipath encap routes, the DF rule and the counters).

The lab is shared by the tests of this module and they run in file order: the first test
needs servers dsrctl has not touched, with ``rp_filter=1`` on ``all``, ``default`` and the
uplink (set when the lab is built); the ``applied`` fixture then applies the spec on both.
Every test that breaks something by hand repairs it with ``dsrctl apply`` before it ends.
The range test comes last: it adds the range to the spec.
"""

from __future__ import annotations

import ipaddress
import random
import sys
from collections.abc import Iterator

import pytest

from tests import ndp
from tests.netns.gpe_lab import (
    CLAMP,
    MACS,
    RANGE,
    RANGE_VIP,
    ROUTER_SERVER_SIDE,
    SERVER_SPEC,
    SERVERS,
    SERVERS6,
    UNCLAMPED,
    VIP,
    VIP6,
    VIPS,
    GpeLab,
    gpe_lab,
)

SIZE = 200 * 1024
BOTH = set(SERVERS)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GpeLab]:
    with gpe_lab(tmp_path_factory.mktemp("gpe-lab")) as built:
        for ns in built.servers.values():
            for scope in ("all", "default", "eth0"):
                ns.set_sysctl(f"net.ipv4.conf.{scope}.rp_filter", "1")
        built.write_specs(SERVER_SPEC)
        yield built


@pytest.fixture(scope="module")
def applied(lab: GpeLab) -> GpeLab:
    for role in SERVERS:
        assert "Apply complete:" in lab.apply(role)
    return lab


def served(answers: list[dict[str, object]]) -> list[str]:
    """The server that answered each request, or "error: ..."."""
    return [str(a.get("server") or f"error: {a.get('error')}") for a in answers]


def assert_reach_both(lab: GpeLab, vips: tuple[str, ...] = VIPS, count: int = 24) -> None:
    """``count`` short requests to each VIP, all at once: every one answered, by both
    servers between them (the balancer hashes each connection's ports: one server only
    has a chance of 2**-23), each with the clamped MSS."""
    answers = lab.requests([vip for vip in vips for _ in range(count)])
    for vip in vips:
        mine = [a for a in answers if a["address"] == vip]
        names = served(mine)
        assert set(names) == BOTH, (vip, names)
        assert {a["mss"] for a in mine} == {CLAMP[vip]}, mine


def assert_all_fail(lab: GpeLab, addresses: list[str]) -> None:
    names = served(lab.requests(addresses, timeout=1.0))
    assert all(name.startswith("error:") for name in names), names


def balancer_saw_vip_sourced(lab: GpeLab) -> int:
    seen = lab.counters(lab.balancer)
    return seen["vip_sourced"] + seen["vip_sourced_l2"]


def lab_counters(lab: GpeLab) -> tuple[dict[str, int], dict[str, int]]:
    return lab.counters(lab.balancer), lab.counters(lab.router)


# -- 1 ------------------------------------------------------------------------------------
def test_before_apply_vip_traffic_fails(lab: GpeLab) -> None:
    for role, ns in lab.servers.items():
        assert VIP not in ns.addresses() and "2001:db8:4:" not in ns.addresses(), role
    before = lab.counters(lab.balancer)

    assert_all_fail(lab, [VIP] * 16 + [VIP6] * 16)

    # Not a broken lab: the balancer encapsulated the SYNs to both servers (16 connections
    # per VIP hashed over two next hops); they had nothing listening on UDP 4790.
    after = lab.counters(lab.balancer)
    for role in SERVERS:
        assert after[f"encap_{role}"] > before[f"encap_{role}"], (role, before, after)
    assert set(lab.counters(lab.router).values()) == {0}


# -- 2 ------------------------------------------------------------------------------------
def test_after_apply_short_requests_reach_both_servers(applied: GpeLab) -> None:
    assert_reach_both(applied)


def test_replies_bypass_the_balancer(applied: GpeLab) -> None:
    """The balancer's counters of packets *from* the VIPs (every frame its eth0 receives,
    whatever the MAC, and everything it routes or sends) stay 0 for the whole module,
    while it encapsulates to both servers; the router sees the replies arrive straight
    from each server's MAC."""
    balancer_before, router_before = lab_counters(applied)

    assert_reach_both(applied)

    balancer_after, router_after = lab_counters(applied)
    assert balancer_saw_vip_sourced(applied) == 0, balancer_after
    for role in SERVERS:
        assert balancer_after[f"encap_{role}"] > balancer_before[f"encap_{role}"], role
        assert router_after[f"reply_{role}"] > router_before[f"reply_{role}"], role


# -- 3 ------------------------------------------------------------------------------------
def test_strict_rp_filter_before_apply_still_works_after_it(applied: GpeLab) -> None:
    """Set to 1 before apply (the lab fixture): dsrctl puts ``all`` and ``dsrgpe0`` to 0
    (a new device inherits ``default``'s 1) and leaves the uplink strict. The contrast:
    ``all`` back at 1 drops every decapsulated IPv4 packet (the effective value is the
    maximum of ``all`` and the device's), which is drift, and apply repairs it. IPv6 has
    no rp_filter: its VIP keeps working meanwhile."""
    for role, ns in applied.servers.items():
        values = {
            scope: ns.sysctl(f"net.ipv4.conf.{scope}.rp_filter")
            for scope in ("all", "dsrgpe0", "eth0")
        }
        assert values == {"all": "0", "dsrgpe0": "0", "eth0": "1"}, role
    assert_reach_both(applied)

    for ns in applied.servers.values():
        ns.set_sysctl("net.ipv4.conf.all.rp_filter", "1")
    try:
        assert_all_fail(applied, [VIP] * 8)
        assert_reach_both(applied, (VIP6,))
        for role in SERVERS:
            drift = applied.dsrctl(role, "drift")
            assert drift.returncode == 2, drift.stdout + drift.stderr
            assert "DRIFT sysctl net.ipv4.conf.all.rp_filter: expected 0, actual 1" in drift.stdout
    finally:
        for role in SERVERS:
            applied.apply(role)
    assert_reach_both(applied)


# -- 4 ------------------------------------------------------------------------------------
def test_a_200_kb_upload_and_download_succeed(applied: GpeLab) -> None:
    too_big = applied.counters(applied.balancer)["too_big"]
    for (op, vip), result in applied.transfers(SIZE).items():
        assert result.get("bytes") == SIZE, (op, result)
        assert result["server"] in BOTH and result["mss"] == CLAMP[vip], (op, result)
    # With the clamp, not one encapsulated packet exceeds the balancer's MTU.
    assert applied.counters(applied.balancer)["too_big"] == too_big


def test_without_the_mss_clamp_the_upload_fails(applied: GpeLab) -> None:
    """The proof the clamp is needed: without dsrctl's table the server advertises 1460
    (1440), the client's full-size segments become 1536-byte encapsulated packets with DF,
    the balancer drops them and the client never learns why (PMTUD has no path back)."""
    for ns in applied.servers.values():
        ns.run("nft", "delete", "table", "inet", "dsrctl")
    try:
        for role in SERVERS:
            drift = applied.dsrctl(role, "drift")
            assert drift.returncode == 2, drift.stdout + drift.stderr
            assert "DRIFT nft mss: expected IPv4 MSS 1424" in drift.stdout
        too_big = applied.counters(applied.balancer)["too_big"]

        results = applied.transfers(SIZE, timeout=2.0)

        for vip in VIPS:
            upload = results["up", vip]
            assert "timed out" in str(upload.get("error")), upload
            # The other direction never crosses the balancer: it still works.
            download = results["down", vip]
            assert download.get("bytes") == SIZE, download
            assert download["mss"] == UNCLAMPED[vip], download
        assert applied.counters(applied.balancer)["too_big"] > too_big
    finally:
        for role in SERVERS:
            applied.apply(role)
    for (op, vip), result in applied.transfers(SIZE).items():
        assert result.get("bytes") == SIZE and result["mss"] == CLAMP[vip], (op, result)


# -- 5 ------------------------------------------------------------------------------------
def test_no_arp_answer_for_the_vip(applied: GpeLab) -> None:
    """From the router on the servers' segment nobody answers ARP for the VIP. The
    contrast shows the check can fail: a server with ``arp_ignore`` 0 answers (the VIP is
    on its lo), which is drift, and apply silences it again."""
    macs, output = applied.arping(VIP)
    assert macs == [], output

    srv1 = applied.servers["srv1"]
    srv1.set_sysctl("net.ipv4.conf.all.arp_ignore", "0")
    try:
        macs, output = applied.arping(VIP)
        assert set(macs) == {MACS["srv1"]}, output
        assert applied.dsrctl("srv1", "drift").returncode == 2
    finally:
        applied.apply("srv1")
    macs, output = applied.arping(VIP)
    assert macs == [], output


def test_no_neighbour_advertisement_for_the_ipv6_vip(applied: GpeLab) -> None:
    """From the router on the servers' segment (tests/ndp.py: a neighbour solicitation to
    the solicited-node address, hop limit 255, from the router's own address there) nobody
    advertises the IPv6 VIP: it is on the servers' lo, and Linux answers only for
    addresses of the receiving interface. Control: each server does answer the same
    solicitation for its own uplink address."""
    probe = [("br0", ROUTER_SERVER_SIDE[1], [VIP6, *SERVERS6.values()])]
    out = applied.router.run(*ndp.argv(probe, python=sys.executable)).stdout
    sent, adverts = ndp.parse_output(out)
    assert sent == [("br0", VIP6), *(("br0", own) for own in SERVERS6.values())], out
    for role, own in SERVERS6.items():
        assert {a.lladdr for a in adverts if a.target == own} == {MACS[role]}, out
    assert [a for a in adverts if a.target == VIP6] == [], out


# -- 6 ------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", sorted(SERVERS))
def test_a_second_apply_changes_nothing(applied: GpeLab, role: str) -> None:
    again = applied.dsrctl(role, "apply", "--auto-approve")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "No changes" in again.stdout
    plan = applied.dsrctl(role, "plan", "--detailed-exitcode")
    assert plan.returncode == 0, plan.stdout + plan.stderr


# -- 7 ------------------------------------------------------------------------------------
def test_deleting_the_decap_device_is_drift_and_apply_repairs_it(applied: GpeLab) -> None:
    for ns in applied.servers.values():
        ns.run("ip", "link", "del", "dsrgpe0")
    try:
        for role in SERVERS:
            drift = applied.dsrctl(role, "drift")
            assert drift.returncode == 2, drift.stdout + drift.stderr
            assert "DRIFT tunnel dsrgpe0: expected vxlan-gpe external, up, actual missing" in (
                drift.stdout
            )
        assert_all_fail(applied, [VIP] * 8 + [VIP6] * 8)
    finally:
        for role in SERVERS:
            applied.apply(role)
    for role in SERVERS:
        drift = applied.dsrctl(role, "drift")
        assert drift.returncode == 0, drift.stdout + drift.stderr
    assert_reach_both(applied)


# -- 8 ------------------------------------------------------------------------------------
def test_a_range_serves_any_address_and_stays_silent_on_arp(applied: GpeLab) -> None:
    """``[[vip]] address = "198.18.5.0", prefix = 24``; the balancer routes the whole /24
    encapsulated (as it does from the start: before the range is applied, nothing
    answers)."""
    hosts = list(ipaddress.ip_network(RANGE).hosts())
    picked = [str(address) for address in random.sample(hosts, 3)]
    assert_all_fail(applied, picked)

    applied.write_specs(SERVER_SPEC + RANGE_VIP)
    for role in SERVERS:
        assert "Apply complete:" in applied.apply(role)
        plan = applied.dsrctl(role, "plan", "--detailed-exitcode")
        assert plan.returncode == 0, plan.stdout + plan.stderr

    answers = applied.requests(picked * 4)
    names = served(answers)
    assert set(names) <= BOTH and len(names) == 12, (picked, names)
    assert {a["mss"] for a in answers} == {CLAMP[VIP]}, answers  # the clamp covers the range
    assert balancer_saw_vip_sourced(applied) == 0
    for address in picked:
        macs, output = applied.arping(address, count=2)
        assert macs == [], output
