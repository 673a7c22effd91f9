"""End to end: dsrctl turns two namespaces into working DSR real servers.

The lab (tests/netns/lab.py): client, load balancer and real servers rs1/rs2 on one bridge.
The LB answers ARP/ND for the VIP and MAC-forwards TCP for it with nftables (even TCP source
port -> rs1, odd -> rs2). The real servers are configured only by ``dsrctl apply``.

The lab is shared by the tests of this module and they run in file order: the first test
needs servers that dsrctl has not touched yet, the ``applied`` fixture then applies the spec
once, and the drift test, which breaks rs1 by hand, repairs it before it ends.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import ndp
from tests.netns.lab import (
    IFNAME,
    SERVER_SPEC,
    VIP4,
    VIP6,
    Lab,
    dsr_lab,
    dsrctl_env,
    next_ports,
)
from tests.netns.namespaces import Netns, NetnsFactory, write_spec

SERVERS = ("rs1", "rs2")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with dsr_lab(tmp_path_factory.mktemp("dsr-lab")) as built:
        yield built


@pytest.fixture(scope="module")
def specs(lab: Lab) -> dict[str, Path]:
    return {role: write_spec(lab[role].ns, SERVER_SPEC) for role in SERVERS}


@pytest.fixture(scope="module")
def first_applies(lab: Lab, specs: dict[str, Path]) -> dict[str, subprocess.CompletedProcess[str]]:
    """``dsrctl apply --auto-approve`` on rs1 and rs2, once for the module."""
    return {
        role: lab[role].ns.dsrctl("apply", "--auto-approve", str(specs[role])) for role in SERVERS
    }


@pytest.fixture(scope="module")
def applied(lab: Lab, first_applies: dict[str, subprocess.CompletedProcess[str]]) -> Lab:
    """The lab after a successful first apply on rs1 and rs2."""
    for result in first_applies.values():
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Apply complete: 5 change(s) applied and verified." in result.stdout
    return lab


def server_for(sport: int) -> str:
    """The real server the LB picks for a client source port (see lab.py)."""
    return SERVERS[sport % 2]


def replies(answers: list[dict[str, str]]) -> dict[int, str]:
    """source port -> the reply, or "error: ..." for a connection that failed."""
    return {int(a["sport"]): a.get("reply") or f"error: {a.get('error')}" for a in answers}


def assert_each_reaches_its_server(lab: Lab, version: int, count: int = 6) -> set[str]:
    got = replies(lab.connect(version, next_ports(count)))
    expected = {sport: server_for(sport) for sport in got}
    assert got == expected, f"IPv{version} through the VIP"
    return set(got.values())


# -- 1 ------------------------------------------------------------------------------------
def test_before_apply_the_vip_does_not_work(lab: Lab) -> None:
    for role in SERVERS:
        addresses = lab[role].ns.addresses()
        assert VIP4 not in addresses and VIP6 not in addresses, f"{role} already has the VIP"
    lb, client = lab["lb"], lab["client"]
    before = lb.counters()

    for version in (4, 6):
        got = replies(lab.connect(version, next_ports(2), timeout=1.0))
        # Timed out (or refused/unreachable): in any case no reply from anyone.
        assert all(reply.startswith("error:") for reply in got.values()), got

    # Not a broken lab: the LB did forward a SYN to each server; they dropped it because
    # the VIP is not a local address there.
    after = lb.counters()
    for name in ("to_rs1_ip", "to_rs2_ip", "to_rs1_ip6", "to_rs2_ip6"):
        assert after[name] > before[name], name
    seen = client.counters()
    assert all(seen[f"tcp_{f}_from_{r}"] == 0 for f in ("ip", "ip6") for r in SERVERS), seen


# -- 2 ------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", [4, 6])
def test_after_apply_the_vip_reaches_both_servers(applied: Lab, version: int) -> None:
    seen = assert_each_reaches_its_server(applied, version)
    assert seen == {"rs1", "rs2"}


def test_apply_output_is_clean(first_applies: dict[str, subprocess.CompletedProcess[str]]) -> None:
    for role, result in first_applies.items():
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr, f"{role}: {result.stderr}"


# -- 3 ------------------------------------------------------------------------------------
def test_replies_bypass_the_load_balancer(applied: Lab) -> None:
    """Two independent observations of the reply path.

    LB: its ingress counter for packets whose *source* is the VIP stays 0 for the whole
    module, while its forwarding counters grow. The bridge has learnt the client's MAC
    from the client's own SYN before any reply is sent, so a reply is never flooded to the
    LB's port: a non-zero counter would mean a server sent the reply through the LB.
    Client: every TCP reply from the VIP arrives with a real server's source MAC (the
    frame came straight from it), none with the LB's.
    """
    lb, client = applied["lb"], applied["client"]
    lb_before, client_before = lb.counters(), client.counters()

    for version in (4, 6):
        assert assert_each_reaches_its_server(applied, version, count=4) == {"rs1", "rs2"}

    lb_after, client_after = lb.counters(), client.counters()
    assert lb_after["replies_ip"] == lb_after["replies_ip6"] == 0
    for family in ("ip", "ip6"):
        for role in SERVERS:
            assert lb_after[f"to_{role}_{family}"] > lb_before[f"to_{role}_{family}"]
            name = f"tcp_{family}_from_{role}"
            assert client_after[name] > client_before[name], name
        assert client_after[f"tcp_{family}_from_lb"] == 0


# -- 4 ------------------------------------------------------------------------------------
def test_only_the_load_balancer_answers_arp_and_nd_for_the_vip(applied: Lab) -> None:
    lb, client = applied["lb"], applied["client"]
    server_macs = {applied[role].mac for role in SERVERS}

    macs, output = applied.arping("client", VIP4)

    assert macs, f"no ARP reply for the VIP:\n{output}"
    assert set(macs) == {lb.mac}, output
    assert not server_macs & set(macs), output
    # The client-side counter agrees: not one ARP reply for the VIP from anyone but the LB.
    assert client.counters()["arp_vip_other"] == 0

    # The kernel's own resolution: forget the VIP's neighbour entries, make the client
    # resolve the VIP again through real connections, then see who answered.
    for version, vip in ((4, VIP4), (6, VIP6)):
        client.ns.run("ip", f"-{version}", "neigh", "flush", "to", vip, "dev", "eth0")
    counted = client.counters()
    for version in (4, 6):
        assert assert_each_reaches_its_server(applied, version, count=2) == {"rs1", "rs2"}
    now = client.counters()
    assert now["na_vip_lb"] > counted["na_vip_lb"], "no neighbour advertisement from the LB"
    assert now["arp_vip_lb"] > counted["arp_vip_lb"], "no ARP reply from the LB"
    assert now["arp_vip_other"] == now["na_vip_other"] == 0, now
    assert applied.neighbour("client", VIP4) == lb.mac
    assert applied.neighbour("client", VIP6) == lb.mac


def test_servers_send_no_neighbour_advertisement_for_the_ipv6_vip(applied: Lab) -> None:
    """A neighbour solicitation for the IPv6 VIP from the client (tests/ndp.py: to the
    solicited-node address, hop limit 255, the client's own address and MAC as source)
    is answered by the LB, which holds the VIP on eth0, and by no server: Linux answers
    only for addresses of the receiving interface, and the VIP is on lo (no sysctl
    involved). Control: the same solicitation for each server's own eth0 address is
    answered by that server, so a server answering for the VIP would be seen."""
    client, lb = applied["client"], applied["lb"]
    servers = {applied[role].ipv6: applied[role].mac for role in SERVERS}
    before = client.counters()
    probe = [(IFNAME, client.ipv6, [VIP6, *servers])]
    out = client.ns.run(*ndp.argv(probe, python=sys.executable)).stdout
    sent, adverts = ndp.parse_output(out)
    assert sent == [(IFNAME, VIP6), *((IFNAME, own) for own in servers)], out
    for own, mac in servers.items():
        assert {a.lladdr for a in adverts if a.target == own} == {mac}, out
    assert {a.lladdr for a in adverts if a.target == VIP6} == {lb.mac}, out
    assert all(a.hop_limit == 255 for a in adverts), out
    # ... and on the wire: no advertisement for the VIP from any MAC but the LB's
    assert client.counters()["na_vip_other"] == before["na_vip_other"] == 0


def test_arp_check_catches_a_server_without_the_arp_sysctls(tmp_path: Path) -> None:
    """The contrast: a server with the VIP on lo by hand and arp_ignore=0 answers ARP for
    the VIP (ARP flux), and the same check sees it; after ``dsrctl apply`` it no longer does.
    """
    with dsr_lab(tmp_path, servers=("rs3",)) as small:
        rs3, lb = small["rs3"], small["lb"]
        rs3.ns.set_sysctl("net.ipv4.conf.all.arp_ignore", "0")
        rs3.ns.set_sysctl("net.ipv4.conf.eth0.arp_ignore", "0")
        rs3.ns.run("ip", "addr", "add", f"{VIP4}/32", "dev", "lo")

        macs, output = small.arping("client", VIP4)
        assert rs3.mac in macs, f"the misconfigured server did not answer:\n{output}"
        assert lb.mac in macs, output
        assert small["client"].counters()["arp_vip_other"] > 0

        spec = write_spec(rs3.ns, SERVER_SPEC)
        result = rs3.ns.dsrctl("apply", "--auto-approve", str(spec))
        assert result.returncode == 0, result.stdout + result.stderr
        macs, output = small.arping("client", VIP4)
        assert macs, output
        assert set(macs) == {lb.mac}, output


# -- 5 ------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", SERVERS)
def test_second_apply_changes_nothing(applied: Lab, specs: dict[str, Path], role: str) -> None:
    ns = applied[role].ns
    spec = str(specs[role])
    again = ns.dsrctl("apply", "--auto-approve", spec)
    assert again.returncode == 0, again.stderr
    assert "No changes" in again.stdout
    plan = ns.dsrctl("plan", "--detailed-exitcode", spec)
    assert plan.returncode == 0, plan.stdout + plan.stderr


# -- 6 ------------------------------------------------------------------------------------
def test_drift_is_reported_and_repaired(applied: Lab, specs: dict[str, Path]) -> None:
    rs1 = applied["rs1"].ns
    spec = str(specs["rs1"])
    assert rs1.dsrctl("drift", spec).returncode == 0

    rs1.set_sysctl("net.ipv4.conf.all.arp_ignore", "0")
    rs1.run("ip", "addr", "del", f"{VIP4}/32", "dev", "lo")
    try:
        text = rs1.dsrctl("drift", spec)
        assert text.returncode == 2, text.stdout + text.stderr
        lines = [line for line in text.stdout.splitlines() if line.startswith("DRIFT ")]
        assert sorted(lines) == [
            f"DRIFT address {VIP4}/32 on lo: expected label lo:1, actual missing",
            "DRIFT sysctl net.ipv4.conf.all.arp_ignore: expected 1, actual 0",
        ], text.stdout
        assert f"drift: 2 item(s) differ from {spec}" in text.stdout

        as_json = rs1.dsrctl("drift", "--json", spec)
        assert as_json.returncode == 2, as_json.stderr
        report = json.loads(as_json.stdout)
        assert report["in_sync"] is False
        drift = {item["resource"]: item for item in report["drift"]}
        assert set(drift) == {"sysctl:net.ipv4.conf.all.arp_ignore", f"address:lo:{VIP4}/32"}
        arp = drift["sysctl:net.ipv4.conf.all.arp_ignore"]
        assert (arp["expected"], arp["actual"]) == (1, 0)
        vip = drift[f"address:lo:{VIP4}/32"]
        assert vip["expected"] == {"address": VIP4, "prefix": 32, "label": "lo:1"}
        assert vip["actual"] is None

        # The drift is real: rs1 no longer takes connections for the IPv4 VIP.
        even = [port for port in next_ports(2) if server_for(port) == "rs1"]
        broken = replies(applied.connect(4, even, timeout=1.0))
        assert all(reply.startswith("error:") for reply in broken.values()), broken
    finally:
        repair = rs1.dsrctl("apply", "--auto-approve", spec)
    assert repair.returncode == 0, repair.stdout + repair.stderr
    assert "Apply complete: 2 change(s) applied and verified." in repair.stdout

    after = rs1.dsrctl("drift", spec)
    assert after.returncode == 0, after.stdout + after.stderr
    assert rs1.sysctl("net.ipv4.conf.all.arp_ignore") == "1"
    for version in (4, 6):
        assert assert_each_reaches_its_server(applied, version, count=4) == {"rs1", "rs2"}


# -- 7 ------------------------------------------------------------------------------------
def host_state(ns: Netns, directory: Path) -> dict[str, Any]:
    """Everything dsrctl may touch in a server namespace, for exact comparison."""
    sysctls = {
        f"net.ipv4.conf.{scope}.{leaf}": ns.sysctl(f"net.ipv4.conf.{scope}.{leaf}")
        for scope in ("all", "default", "lo")
        for leaf in ("arp_ignore", "arp_announce")
    }
    files = {
        path.name: (path.read_bytes(), oct(path.stat().st_mode))
        for path in sorted(directory.iterdir())
    }
    return {
        "sysctl": sysctls,
        "lo": json.loads(ns.run("ip", "-j", "addr", "show", "dev", "lo").stdout),
        "all_addresses": json.loads(ns.run("ip", "-j", "addr", "show").stdout),
        "files": files,
    }


@pytest.mark.parametrize("hand_written", [False, True], ids=["fresh-host", "hand-written-file"])
def test_failed_apply_leaves_the_host_exactly_as_it_was(
    make_netns: NetnsFactory, hand_written: bool
) -> None:
    ns = make_netns("server")
    spec = write_spec(ns, SERVER_SPEC)
    directory = ns.workdir / "etc" / "sysctl.d"
    # Not a pristine host, so that a "rollback" to kernel defaults would be caught: a
    # non-default arp_announce and an unrelated address on lo; optionally a hand-written
    # file at the path dsrctl manages (its step is then an update, not a create).
    ns.set_sysctl("net.ipv4.conf.all.arp_announce", "1")
    ns.run("ip", "addr", "add", "198.18.0.1/32", "dev", "lo", "label", "lo:keep")
    if hand_written:
        (directory / "90-dsrctl.conf").write_text("# by hand\nnet.ipv4.conf.all.arp_announce = 1\n")
        (directory / "90-dsrctl.conf").chmod(0o640)
    before = host_state(ns, directory)

    # The sysctl file's directory is read-only for this one command only: ip netns exec
    # gives it a private mount namespace, and the bind mount dies with it.
    script = 'mount --bind -o ro "$1" "$1" && exec "$2" -m dsrctl apply --auto-approve "$3"'
    result = subprocess.run(
        ["ip", "netns", "exec", ns.name, "sh", "-c", script,
         "sh", str(directory), sys.executable, str(spec)],
        capture_output=True,
        text=True,
        env=dsrctl_env(ns),
        stdin=subprocess.DEVNULL,
        timeout=60,
    )  # fmt: skip

    assert result.returncode == 1, result.stdout + result.stderr
    assert host_state(ns, directory) == before
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    if hand_written:
        # The copy of the hand-written file that would undo its replacement is made before
        # the first change, in the same directory: it cannot be, so nothing changes.
        assert lines == [
            f"error: cannot keep a copy of {directory}/90-dsrctl.conf to undo its change "
            "with: Read-only file system; nothing was changed"
        ], result.stderr
        return
    # Steps done before the failure: arp_ignore, arp_announce, the two VIPs.
    assert lines[0].startswith("error: apply failed: cannot write "), result.stderr
    assert "90-dsrctl.conf: Read-only file system" in lines[0], result.stderr
    assert lines[1:2] == ["rolled back 4 completed step(s); the host is as it was before apply"], (
        result.stderr
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 2, result.stderr

    # The read-only mount never existed outside that command.
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        assert str(directory) not in handle.read()
    assert str(directory) not in ns.run("cat", "/proc/self/mountinfo").stdout
    probe = directory / "probe"
    probe.write_text("writable\n")
    probe.unlink()
    # Nothing was applied, so the host still needs every change.
    assert ns.dsrctl("plan", "--detailed-exitcode", str(spec)).returncode == 2
