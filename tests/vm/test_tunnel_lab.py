"""The proof of issue 11: tunnel-mode DSR real servers configured only by ``dsrctl apply``,
behind encapsulating load balancers, on Debian's 6.1 kernel (one VM boot; the topology
and the scripts are in tests/vm/lab.py).

Kinds: ipip and gue through IPVS in tunnel mode (balA); gre through kernel GRE tunnels,
one per real server, with an L4-hashed ECMP route (balB); a /24 VIP range through balB;
ip6ip6 and ip6gre through kernel tunnels behind nexthop groups (balB), ip6gre carrying
an IPv6 VIP and an IPv4 one. Stage 1 applies a spec with ipip (tunl0, the module's
fallback device) and gre (a collect-metadata device dsrctl creates); stage 2 replaces
ipip by gue (the fou port; its inner IPIP still lands on tunl0, which takes plain IPIP
too) and adds ip6ip6 (ip6tnl0) and ip6gre (a collect-metadata device). The balancers
cannot send ICMP "fragmentation needed" / "packet too big" (lab.py says why), so uploads
depend on the MSS clamp. The servers' IPv6 VIPs and IPv6 range are on lo: the router, their
neighbour, gets no neighbour advertisement for them.
"""

from __future__ import annotations

import random
import re

import pytest

from tests import ndp
from tests.vm import lab, vm

RANGE_SAMPLE = [f"198.18.5.{n}" for n in sorted(random.sample(range(1, 255), 3))]
VIPS4 = [lab.VIP_IPIP, lab.VIP_GUE, lab.VIP_GRE, lab.VIP_GRE6]
VIPS6 = [lab.VIP6, lab.VIP6_GRE]
VIPS = [*VIPS4, *VIPS6]
STAGE2_ONLY = (lab.VIP_GUE, lab.VIP_GRE6, *VIPS6)  # their decap side comes with stage 2
S1, S2 = lab.SRV1, lab.SRV2
SERVER_NAMES = {"srv1", "srv2"}
TIMESTAMPS = 12  # TCP timestamp option: the client's mss is the advertised MSS less 12
# The MSS dsrctl computes per family: uplink MTU 1500, less the largest overhead of the
# tunnels that carry the family, less 40 (IPv4) or 60 (IPv6).
MSS_STAGE1 = 1500 - max(20, 24) - 40  # ipip, gre: 1436
# gue 32, gre 24 and ip6gre 44 (ip6gre carries IPv4 too: it is the smallest, 1416)
MSS_STAGE2 = 1500 - max(32, 24, 44) - 40
# gre 24, ip6ip6 40, ip6gre 44: 1396 (ip6ip6 alone gave 1400)
MSS6_STAGE2 = 1500 - max(24, 40, 44) - 60
MSS_NO_CLAMP = 1500 - 40 - TIMESTAMPS  # what the client uses without the clamp
MSS6_NO_CLAMP = 1500 - 60 - TIMESTAMPS


def _apply_both(stage: int) -> str:
    """Apply the stage's spec on both servers at once."""
    return "set +e\n" + lab.parallel(
        [
            _rc(server, "apply", "--auto-approve", lab.spec_path(server, stage), tag=f"{name}")
            for server, name in lab.NAMES.items()
        ],
        f"apply{stage}",
    )


def _rc(server: str, *args: str, tag: str) -> str:
    """A dsrctl command in the server's namespace, then ``RC tag exit-code``."""
    return f'{lab.dsrctl(server, *args)}\necho "RC {tag} $?"\n'


def _traffic(
    step: str, vips: list[str], transfers: list[str], failing: tuple[str, ...] = (), count: int = 12
) -> str:
    """From the client, all at once: ``count`` short requests per VIP of ``vips``, 2 to
    ``failing``, one to each address of the range sample, and the 200 KB transfers."""
    blocks = [lab.requests(vip, count) for vip in vips]
    blocks += [lab.requests(vip, 2) for vip in failing]
    blocks += [lab.requests(address, 1) for address in RANGE_SAMPLE]
    blocks += [lab.transfers(vip) for vip in transfers]
    return lab.client(lab.parallel(blocks, step))


def _facts(server: str) -> str:
    keys = ["all", "default", "s0", "tunl0", lab.GRE_DEVICE, lab.GRE6_DEVICE]
    return lab.in_ns(
        server,
        f"set +e\nfor k in {' '.join(keys)}; do for s in rp_filter arp_ignore; do\n"
        f'  echo "SYSCTL {lab.NAMES[server]} $k $s $(cat /proc/sys/net/ipv4/conf/$k/$s '
        '2>/dev/null || echo -)"\ndone; done\n'
        f"ip -d link show tunl0; ip -d link show {lab.GRE_DEVICE}; ip -d link show ip6tnl0\n"
        f"ip -d link show {lab.GRE6_DEVICE}\n"
        "ip fou show\n"
        "nft list table inet dsrctl\n",
    )


STEPS: dict[str, str | vm.Python] = {
    "setup": lab.setup(),
    "setup6": lab.setup6(),
    "before": _traffic("before", VIPS, [], count=1),
    "apply1": _apply_both(1),
    "traffic1": _traffic(
        "traffic1",
        [lab.VIP_IPIP, lab.VIP_GRE],
        [lab.VIP_IPIP, lab.VIP_GRE],
        failing=STAGE2_ONLY,
    ),
    "apply2": _apply_both(2),
    "traffic2": _traffic("traffic2", VIPS, VIPS),
    # ARP and IPv6 neighbour discovery at once (the Python of the latter starts slowly)
    "arp": f"set +e\n{lab.neighbour_probe([*VIPS6, *lab.RANGE6_SAMPLE])} > {lab.WORK}/ndp 2>&1 &\n"
    + f"{lab.arp_probe([*VIPS4, *RANGE_SAMPLE])}\n"
    + f'wait $!\necho "RC ndp $?"\ncat {lab.WORK}/ndp\n',
    "facts": _facts(S1) + "\n" + _facts(S2) + "\n",
    "again": "set +e\n"
    + lab.parallel(
        [
            _rc(S1, "apply", "--auto-approve", lab.spec_path(S1, 2), tag="apply"),
            _rc(S2, "plan", "--detailed-exitcode", lab.spec_path(S2, 2), tag="plan"),
        ],
        "again",
    ),
    # Without the clamp (deleted by hand on both servers), and the decap device of srv1
    # deleted too: drift must see both.
    "noclamp": "".join(lab.in_ns(s, "nft delete table inet dsrctl") + "\n" for s in (S1, S2))
    + _traffic("noclamp", [], VIPS),
    # ... and rp_filter back to strict on srv1's `all`: the IPIP it decapsulates is dropped
    "drift": f"ip -n {S1} link del {lab.GRE_DEVICE}\nip -n {S1} link del {lab.GRE6_DEVICE}\n"
    + f"ip netns exec {S1} sysctl -qw net.ipv4.conf.all.rp_filter=1\n"
    + lab.client("set +e\n" + lab.requests(lab.VIP_IPIP, 6))
    + "\nset +e\n"
    + _rc(S1, "drift", lab.spec_path(S1, 2), tag="drift"),
    # srv1 repaired by apply, srv2's clamp by the file dsrctl persisted for the boot.
    "repair": "set +e\n"
    + _rc(S1, "apply", "--auto-approve", lab.spec_path(S1, 2), tag="repair")
    + lab.in_ns(S2, f"nft -f {lab.root(S2)}/etc/dsrctl/mss.nft")
    + '\necho "RC nft-file $?"\n'
    + _traffic("repair", VIPS, VIPS, count=6),
    "reboot": lab.reboot(S1)
    + "set +e\n"
    + _rc(S1, "drift", lab.spec_path(S1, 2), tag="reboot-drift"),
    "after_reboot": _traffic("after_reboot", VIPS, []),
    "counters": lab.counters(),
}


@pytest.fixture(scope="module")
def boot() -> vm.Boot:
    return vm.run(STEPS)


def _hits(boot: vm.Boot, step: str) -> dict[str, list[str]]:
    answers: dict[str, list[str]] = {}
    for vip, *answer in lab.parse(boot[step].stdout, "HIT"):
        answers.setdefault(vip, []).append(" ".join(answer))
    return answers


def _rcs(boot: vm.Boot, step: str) -> dict[str, int]:
    return {tag: int(rc) for tag, rc in lab.parse(boot[step].stdout, "RC")}


def _mss(boot: vm.Boot, step: str) -> dict[str, int]:
    """The mss of the client's established connection to each VIP (ss -ti)."""
    found = {}
    for line in boot[step].stdout.splitlines():
        match = re.match(r"MSS (\S+) .*?ESTAB .*?\bmss:(\d+)", line)
        if match:
            found[match[1]] = int(match[2])
    return found


def _transfers(boot: vm.Boot, step: str) -> dict[str, tuple[str, str]]:
    """VIP -> (download outcome, upload outcome): ``bytes rc`` and ``answer rc``."""
    down = {vip: " ".join(rest) for vip, *rest in lab.parse(boot[step].stdout, "DOWN")}
    up = {vip: " ".join(rest) for vip, *rest in lab.parse(boot[step].stdout, "UP")}
    return {vip: (down[vip], up[vip]) for vip in down}


@pytest.mark.parametrize("name", list(STEPS))
def test_step_succeeds(boot: vm.Boot, name: str) -> None:
    boot[name].check()


def test_before_apply_vip_traffic_fails(boot: vm.Boot) -> None:
    hits = _hits(boot, "before")
    assert set(hits) == {*VIPS, *RANGE_SAMPLE}, boot["before"].stdout
    assert all(answer == ["FAIL"] for answer in hits.values()), hits


def test_both_servers_applied(boot: vm.Boot) -> None:
    for step in ("apply1", "apply2"):
        assert _rcs(boot, step) == {"srv1": 0, "srv2": 0}, boot[step].stdout
        assert boot[step].stdout.count("Apply complete") == 2, boot[step].stdout


def test_stage1_ipip_and_gre_reach_both_servers(boot: vm.Boot) -> None:
    hits = _hits(boot, "traffic1")
    for vip in (lab.VIP_IPIP, lab.VIP_GRE):
        assert set(hits[vip]) == SERVER_NAMES, (vip, hits[vip])
    # gue is not declared yet: no fou port, the balancer's GUE packets are dropped; nor
    # are ip6ip6 (ip6tnl0 is down) and ip6gre (no collect-metadata device; ip6gre0 is down)
    for vip in STAGE2_ONLY:
        assert hits[vip] == ["FAIL", "FAIL"], (vip, hits[vip])


def test_stage2_ipip_gue_gre_ip6ip6_ip6gre_reach_both_servers(boot: vm.Boot) -> None:
    hits = _hits(boot, "traffic2")
    for vip in VIPS:
        assert set(hits[vip]) == SERVER_NAMES, (vip, hits[vip])
    # after the repair (fewer requests: every one answered, by either server)
    repaired = _hits(boot, "repair")
    for vip in VIPS:
        assert len(repaired[vip]) == 6 and set(repaired[vip]) <= SERVER_NAMES, repaired[vip]


def test_range_addresses_reach_the_servers(boot: vm.Boot) -> None:
    for step in ("traffic1", "traffic2", "repair"):
        hits = _hits(boot, step)
        for address in RANGE_SAMPLE:
            assert hits[address][0] in SERVER_NAMES, (step, address, hits[address])


def test_200k_upload_and_download(boot: vm.Boot) -> None:
    expected = {
        "traffic1": [lab.VIP_IPIP, lab.VIP_GRE],
        "traffic2": VIPS,
        "repair": VIPS,
    }
    for step, vips in expected.items():
        transfers = _transfers(boot, step)
        assert sorted(transfers) == sorted(vips), boot[step].stdout
        for vip in vips:
            down, up = transfers[vip]
            assert down == f"{lab.BIG} 0", (step, vip, down)
            assert re.fullmatch(rf"srv[12] got {lab.BIG} 0", up), (step, vip, up)


def test_the_clamp_sets_the_computed_mss(boot: vm.Boot) -> None:
    assert _mss(boot, "traffic1") == {
        lab.VIP_IPIP: MSS_STAGE1 - TIMESTAMPS,
        lab.VIP_GRE: MSS_STAGE1 - TIMESTAMPS,
    }, boot["traffic1"].stdout
    for step in ("traffic2", "repair"):
        assert _mss(boot, step) == {
            **dict.fromkeys(VIPS4, MSS_STAGE2 - TIMESTAMPS),
            **dict.fromkeys(VIPS6, MSS6_STAGE2 - TIMESTAMPS),
        }, boot[step].stdout
    assert boot["facts"].stdout.count(f"tcp option maxseg size set {MSS_STAGE2}") == 2
    assert boot["facts"].stdout.count(f"tcp option maxseg size set {MSS6_STAGE2}") == 2


def test_without_the_clamp_uploads_fail(boot: vm.Boot) -> None:
    """The same transfers with dsrctl's table deleted by hand: full-size client segments
    plus the encapsulation exceed the balancer's MTU and vanish; downloads do not pass
    the balancer and still work."""
    assert _mss(boot, "noclamp") == {
        **dict.fromkeys(VIPS4, MSS_NO_CLAMP),
        **dict.fromkeys(VIPS6, MSS6_NO_CLAMP),
    }, boot["noclamp"].stdout
    transfers = _transfers(boot, "noclamp")
    for vip in VIPS:
        down, up = transfers[vip]
        assert down == f"{lab.BIG} 0", (vip, down)
        assert up == "none 28", (vip, up)  # curl: timed out


def test_balancers_see_no_vip_sourced_packet(boot: vm.Boot) -> None:
    counts = {(ns, name): int(n) for ns, name, n in lab.parse(boot["counters"].stdout, "COUNT")}
    for balancer in (lab.BAL_A, lab.BAL_B):
        assert counts[(balancer, "from-vip")] == 0, counts
        assert counts[(balancer, "to-vip")] > 0, counts
        # the ICMP the balancer would have sent (and PMTUD would have used) was dropped
        assert counts[(balancer, "no-pmtud")] > 0, counts
    assert counts[(lab.BAL_B, "from-vip6")] == 0, counts
    assert counts[(lab.BAL_B, "to-vip6")] > 0, counts
    assert counts[(lab.BAL_B, "no-pmtud6")] > 0, counts
    assert counts[(lab.ROUTER, "from-vip")] > 0, counts  # the replies went this way
    assert counts[(lab.ROUTER, "from-vip6")] > 0, counts


def test_rp_filter_strict_before_apply_works_after(boot: vm.Boot) -> None:
    """setup made rp_filter 1 on all and default; apply set 0 on all and on each decap
    device that receives IPv4 (they have no address), ip6gre's included, and left the
    uplink strict."""
    assert "rp_filter=1" in boot["setup"].command
    values = {
        (name, key, what): value
        for name, key, what, value in lab.parse(boot["facts"].stdout, "SYSCTL")
    }
    for name in ("srv1", "srv2"):
        assert values[(name, "all", "rp_filter")] == "0"
        assert values[(name, "tunl0", "rp_filter")] == "0"
        assert values[(name, lab.GRE_DEVICE, "rp_filter")] == "0"
        # ip6gre carries IPv4 too (VIP_GRE6): its device is filtered like the others
        assert values[(name, lab.GRE6_DEVICE, "rp_filter")] == "0"
        assert values[(name, "s0", "rp_filter")] == "1"
        assert values[(name, "default", "rp_filter")] == "1"
        assert values[(name, "all", "arp_ignore")] == "1"


def test_strict_rp_filter_drops_decapsulated_packets(boot: vm.Boot) -> None:
    """What apply's rp_filter 0 is for: with `all` back at 1 on srv1 (tunl0 still 0, the
    effective value is the maximum) srv1 drops the IPIP from IPVS, srv2 still answers;
    drift reports the key and apply puts it back (the traffic after the repair passes)."""
    answers = _hits(boot, "drift")[lab.VIP_IPIP]
    assert "srv1" not in answers and "srv2" in answers and "FAIL" in answers, answers
    assert "DRIFT sysctl net.ipv4.conf.all.rp_filter: expected 0, actual 1" in boot["drift"].stdout


def test_decap_side_as_declared(boot: vm.Boot) -> None:
    out = boot["facts"].stdout
    assert out.count("port 19523 gue") == 2
    assert len(re.findall(r"\bgre external", out)) == 2  # not ip6gre's
    assert len(re.findall(r"tunl0@NONE: <NOARP,UP,LOWER_UP>", out)) == 2
    assert len(re.findall(r"ip6tnl0@NONE: <NOARP,UP,LOWER_UP>", out)) == 2
    assert len(re.findall(rf"{lab.GRE6_DEVICE}@NONE: <NOARP,UP,LOWER_UP>", out)) == 2
    assert out.count("ip6gre external") == 2


def test_no_arp_answer_for_vips_or_range(boot: vm.Boot) -> None:
    answers = {(device, address): n for device, address, n in lab.parse(boot["arp"].stdout, "ARP")}
    assert answers[("br0", lab.SERVERS[S1])] != "0"  # the probe hears a server's own address
    assert answers[("r2", lab.SERVERS[S2])] != "0"
    for device in ("br0", "r2"):
        for address in [*VIPS4, *RANGE_SAMPLE]:
            assert answers[(device, address)] == "0", (device, address, answers)


def test_no_neighbour_advertisement_for_ipv6_vips_or_range(boot: vm.Boot) -> None:
    """Real neighbour solicitations (tests/ndp.py) from the router onto each server's
    segment: for the IPv6 VIPs and addresses of the IPv6 range, all on the servers' lo,
    none comes back (Linux answers only for addresses of the receiving interface); for
    each server's own uplink address, the server answers with its MAC (the probe works)."""
    out = boot["arp"].stdout
    assert _rcs(boot, "arp") == {"ndp": 0}, out
    sent, adverts = ndp.parse_output(out)
    silent = [*VIPS6, *lab.RANGE6_SAMPLE]
    segments = (("br0", S1), ("r2", S2))
    assert sorted(sent) == sorted(
        (device, target)
        for device, server in segments
        for target in [lab.SERVERS6[server], *silent]
    ), out
    for device, server in segments:
        own = {a.lladdr for a in adverts if (a.device, a.target) == (device, lab.SERVERS6[server])}
        assert own == {lab.MACS[server]}, out
    assert [a for a in adverts if a.target in silent] == [], out
    assert all(a.hop_limit == 255 for a in adverts), out


def test_second_apply_changes_nothing(boot: vm.Boot) -> None:
    out = boot["again"].stdout
    assert _rcs(boot, "again") == {"apply": 0, "plan": 0}, out
    assert "No changes." in out and "Apply complete" not in out, out


def test_deleted_decap_device_is_drift_and_apply_repairs_it(boot: vm.Boot) -> None:
    drift = boot["drift"].stdout
    assert _rcs(boot, "drift") == {"drift": 2}, drift
    assert f"DRIFT tunnel {lab.GRE_DEVICE}: expected gre external, up, actual missing" in drift
    assert f"DRIFT tunnel {lab.GRE6_DEVICE}: expected ip6gre external, up, actual missing" in drift
    assert "DRIFT nft mss:" in drift  # the clamp deleted by hand
    assert _rcs(boot, "repair") == {"repair": 0, "nft-file": 0}, boot["repair"].stdout
    assert f"+ tunnel {lab.GRE_DEVICE}: gre external, up" in boot["repair"].stdout
    assert f"+ tunnel {lab.GRE6_DEVICE}: ip6gre external, up" in boot["repair"].stdout


def test_reboot_restores_what_is_persisted(boot: vm.Boot) -> None:
    """Replaying the persisted files in a fresh namespace brings back the modules, the
    sysctls, the VIPs, the range and the MSS clamp: drift reports none of them."""
    out = boot["reboot"].stdout
    assert "BOOT modprobe fou ip6_gre ip6_tunnel ip_gre ipip" in out
    assert "BOOT dsrctl-mss.service: /usr/sbin/nft -f" in out
    assert "local 198.18.5.0/24 dev lo table local" in out
    assert "BOOT failed" not in out and "BOOT sysctl" not in out, out
    drifted = [line for line in out.splitlines() if line.startswith("DRIFT ")]
    for resource in ("address", "range", "nft", "module", "file", "symlink"):
        assert not [line for line in drifted if line.split()[1] == resource], drifted
    assert "DRIFT sysctl net.ipv4.conf.all" not in out


def test_reboot_comes_back_in_sync(boot: vm.Boot) -> None:
    """...and dsrctl-tunnels.service the decap side: drift finds the rebooted srv1 in
    sync, and it serves every VIP again."""
    out = boot["reboot"].stdout
    assert "BOOT dsrctl-tunnels.service: -/sbin/ip fou add port 19523 gue" in out, out
    assert _rcs(boot, "reboot") == {"reboot-drift": 0}, out
    hits = _hits(boot, "after_reboot")
    for vip in VIPS:
        assert set(hits[vip]) == SERVER_NAMES, (vip, hits[vip])


def test_report_timings(boot: vm.Boot, capsys: pytest.CaptureFixture[str]) -> None:
    steps = ", ".join(f"{name} {result.seconds:.0f}" for name, result in boot.results.items())
    with capsys.disabled():
        print(
            f"\nVM lab timings: wall {boot.wall_seconds:.1f} s, boot+power-off overhead"
            f" {boot.overhead_seconds:.1f} s; steps (s): {steps}"
        )
