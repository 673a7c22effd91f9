"""The MSS clamp of tunnel mode: the arithmetic, the refusals, nft's JSON decoded (recorded
from nft 1.0.6, tests/golden/mss/nft-list*.json), the script and the boot files (golden),
and the kind in the diff. The kernel side is tests/netns/test_mss.py."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from dsrctl.diff import build_plan
from dsrctl.errors import SpecError
from dsrctl.kinds.base import Desired
from dsrctl.linux.mss import check_mss, clamp_for, plan_mss, tunnel_limits
from dsrctl.model import ClampRule, HostState, MssClamp
from dsrctl.spec import Spec, parse_spec
from dsrctl.steps import Phase
from providers.linux import nft
from providers.linux.persist import Detection, mss_unit
from providers.linux.uplinks import Uplink, Uplinks
from state.ownership import Ownership

GOLDEN = Path(__file__).parents[1] / "golden" / "mss"
SPEC_PATH = "/etc/dsrctl/dsrctl.toml"


class FakeHost:
    """Answers the clamp's questions the way LinuxHost does, from plain data."""

    def __init__(
        self,
        uplinks: dict[int, tuple[Uplink, ...]] | None = None,
        mtus: dict[str, int] | None = None,
        nft_path: str | None = "/usr/sbin/nft",
        systemd: bool = True,
    ) -> None:
        defaults = uplinks if uplinks is not None else {4: (Uplink("eth0", 1500),)}
        every = {uplink.name: uplink.mtu for found in defaults.values() for uplink in found}
        self.found = Uplinks(defaults, {**every, **(mtus or {"eth0": 1500})})
        self._nft = nft_path
        self.systemd = systemd

    def uplinks(self) -> Uplinks:
        return self.found

    def nft_path(self) -> str | None:
        return self._nft

    def detect_persistence(self, root: str, interface: str) -> Detection:
        return Detection(root=root, interface=interface, live=False, systemd=self.systemd)


def spec(body: str, vips: tuple[str, ...] = ("192.0.2.10", "2001:db8::10")) -> Spec:
    text = "version = 1\n" + "".join(f'[[vip]]\naddress = "{vip}"\n' for vip in vips) + body
    import tomllib

    return parse_spec(tomllib.loads(text), SPEC_PATH)


def refusal(loaded: Spec, host: FakeHost) -> str:
    with pytest.raises(SpecError) as caught:
        check_mss(loaded, host, host.uplinks())
    return str(caught.value)


# -- arithmetic -----------------------------------------------------------------------------
def test_ipip_clamps_ipv4_vips_to_mtu_less_20_less_40() -> None:
    loaded = spec('[[tunnel]]\nkind = "ipip"\n')
    clamp, why = clamp_for(loaded, tunnel_limits(loaded, FakeHost().uplinks()))
    # ipip carries IPv4 only: the IPv6 VIP cannot arrive through it and is not clamped
    assert clamp == MssClamp(ipv4=ClampRule(1440, ("192.0.2.10/32",)))
    assert why == (
        "clamp the MSS of SYN-ACKs from the VIPs to 1440: ipip adds 20 bytes on eth0 "
        "(MTU 1500), and PMTUD works only if the balancer sends ICMP too-big"
    )


def test_ip6ip6_clamps_ipv6_vips_with_the_ipv6_headers() -> None:
    loaded = spec('[[tunnel]]\nkind = "ip6ip6"\n')
    host = FakeHost(uplinks={6: (Uplink("eth1", 9000),)})
    clamp, _ = clamp_for(loaded, tunnel_limits(loaded, host.uplinks()))
    assert clamp == MssClamp(ipv6=ClampRule(9000 - 40 - 60, ("2001:db8::10/128",)))


def test_a_tunnel_carrying_both_versions_clamps_both_for_the_same_packet_size() -> None:
    loaded = spec('[[tunnel]]\nkind = "gre"\n')
    clamp, why = clamp_for(loaded, tunnel_limits(loaded, FakeHost().uplinks()))
    assert clamp is not None and clamp.ipv4 is not None and clamp.ipv6 is not None
    assert (clamp.ipv4.mss, clamp.ipv6.mss) == (1500 - 24 - 40, 1500 - 24 - 60)
    assert "to 1436 (IPv4), 1416 (IPv6): gre adds 24 bytes" in why


def test_the_largest_overhead_of_a_version_wins() -> None:
    loaded = spec('[[tunnel]]\nkind = "ipip"\nname = "dsrip0"\n[[tunnel]]\nkind = "vxlan-gpe"\n')
    clamp, why = clamp_for(loaded, tunnel_limits(loaded, FakeHost().uplinks()))
    assert clamp is not None and clamp.ipv4 == ClampRule(1424, ("192.0.2.10/32",))
    assert "vxlan-gpe adds 36 bytes" in why and "ipip" not in why


def test_each_tunnel_starts_from_its_own_uplink() -> None:
    loaded = spec(
        '[[tunnel]]\nkind = "ipip"\nuplink = "eth0"\n[[tunnel]]\nkind = "gre"\nuplink = "jumbo"\n'
    )
    host = FakeHost(mtus={"eth0": 1500, "jumbo": 9000})
    clamp, _ = clamp_for(loaded, tunnel_limits(loaded, host.uplinks()))
    assert clamp is not None and clamp.ipv4 is not None and clamp.ipv6 is not None
    assert clamp.ipv4.mss == 1440  # eth0's ipip, not jumbo's gre
    assert clamp.ipv6.mss == 9000 - 24 - 60  # only gre carries IPv6


def test_a_multipath_default_route_gives_the_smallest_mtu_of_its_devices() -> None:
    loaded = spec('[[tunnel]]\nkind = "ipip"\n')
    ecmp: dict[int, tuple[Uplink, ...]] = {
        4: (Uplink("eth0", 1500), Uplink("eth1", 1400), Uplink("eth2", 1400))
    }
    clamp, why = clamp_for(loaded, tunnel_limits(loaded, FakeHost(uplinks=ecmp).uplinks()))
    assert clamp == MssClamp(ipv4=ClampRule(1400 - 20 - 40, ("192.0.2.10/32",)))
    assert "ipip adds 20 bytes on eth1 (MTU 1400)" in why  # the first of the smallest


def test_a_given_mss_replaces_the_default() -> None:
    loaded = spec('[[tunnel]]\nkind = "ipip"\nmss = 1400\n')
    clamp, why = clamp_for(loaded, tunnel_limits(loaded, FakeHost().uplinks()))
    assert clamp is not None and clamp.ipv4 == ClampRule(1400, ("192.0.2.10/32",))
    assert "(tunnel[0].mss = 1400)" in why


def test_the_mss_equal_to_the_default_is_accepted() -> None:
    host = FakeHost()
    check_mss(spec('[[tunnel]]\nkind = "ipip"\nmss = 1440\n'), host, host.uplinks())


def test_sources_are_collapsed_so_that_nft_takes_them() -> None:
    # nft refuses overlapping intervals in a set: a VIP inside a range goes into the range
    assert nft.collapse(["198.18.5.0/24", "198.18.5.10/32", "192.0.2.11/32"], 4) == (
        "192.0.2.11/32",
        "198.18.5.0/24",
    )
    assert nft.collapse(["192.0.2.10/32", "192.0.2.11/32"], 4) == ("192.0.2.10/31",)
    assert nft.collapse(["2001:db8::1/128", "192.0.2.1/32"], 6) == ("2001:db8::1/128",)


def test_no_vip_through_a_tunnel_means_no_table() -> None:
    loaded = spec('[[tunnel]]\nkind = "ip6ip6"\n', vips=("192.0.2.10",))
    host = FakeHost(uplinks={6: (Uplink("eth0", 1500),)})
    plan = plan_mss(loaded, host, host.uplinks())
    assert plan is not None and plan.clamp is None and plan.resources() == set()
    assert "no MSS clamp" in plan.notes[0]


def test_without_tunnels_nothing_is_asked_of_the_host() -> None:
    class Refusing(FakeHost):
        def detect_persistence(self, root: str, interface: str) -> Detection:
            raise AssertionError("asked for the persistence")

    loaded = spec("")
    check_mss(loaded, Refusing(nft_path=None), Uplinks())
    assert plan_mss(loaded, Refusing(), Uplinks()) is None


# -- refusals -------------------------------------------------------------------------------
def test_an_mss_above_what_the_uplink_carries_is_refused() -> None:
    message = refusal(spec('[[tunnel]]\nkind = "ipip"\nmss = 1480\n'), FakeHost())
    assert message == (
        f"{SPEC_PATH}: tunnel[0].mss = 1480: above what the uplink carries "
        "(eth0 MTU 1500 - 20 ipip - 40 = 1440)"
    )


def test_an_ipv6_tunnel_mss_is_checked_with_the_ipv6_headers() -> None:
    host = FakeHost(uplinks={6: (Uplink("eth0", 1500),)})
    message = refusal(spec('[[tunnel]]\nkind = "ip6gre"\nmss = 1400\n'), host)
    assert message.endswith("(eth0 MTU 1500 - 44 ip6gre - 60 = 1396)")


def test_nft_missing_is_refused() -> None:
    message = refusal(spec('[[tunnel]]\nkind = "ipip"\n'), FakeHost(nft_path=None))
    assert message.startswith(f'{SPEC_PATH}: tunnel[0].kind = "ipip": tunnel mode clamps the MSS')
    assert "nft is not installed (not on PATH, nor in /usr/sbin or /sbin)" in message


def test_nft_is_found_outside_a_cron_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sbin = tmp_path / "sbin"
    sbin.mkdir()
    program = sbin / "nft"
    program.write_text("#!/bin/sh\n")
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(nft, "SBIN", (str(tmp_path / "usr-sbin"), str(sbin)))
    assert nft.find_nft() is None  # not executable: not a program
    program.chmod(0o755)
    assert nft.find_nft() == str(program)


def test_no_default_route_to_find_the_uplink_by_is_refused() -> None:
    message = refusal(spec('[[tunnel]]\nkind = "ipip"\n'), FakeHost(uplinks={}))
    assert "tunnel[0].uplink" in message
    assert "no IPv4 default route in the main table" in message


def test_a_named_uplink_that_is_not_there_is_refused() -> None:
    message = refusal(spec('[[tunnel]]\nkind = "ipip"\nuplink = "eth9"\n'), FakeHost())
    assert message == f'{SPEC_PATH}: tunnel[0].uplink = "eth9": no such interface on this host'


# -- nft: the script, and its JSON decoded --------------------------------------------------
CLAMP = MssClamp(
    ipv4=ClampRule(1440, ("192.0.2.10/32", "198.18.5.0/24", "198.18.7.1/32", "198.18.7.2/32")),
    ipv6=ClampRule(1400, ("2001:db8::10/128", "2001:db8:5::/64")),
)


def golden(name: str, content: str) -> None:
    path = GOLDEN / name
    if os.environ.get("DSRCTL_UPDATE_GOLDEN") == "1":
        path.write_text(content)
    assert content == path.read_text(), f"{path} differs"


def test_the_recorded_table_decodes_to_the_clamp() -> None:
    data = json.loads((GOLDEN / "nft-list.json").read_text())
    # the recorded set holds 198.18.7.1-198.18.7.2 as a range: the same addresses
    assert nft.decode(data) == CLAMP


def test_a_rule_dsrctl_did_not_write_is_kept_as_other() -> None:
    data = json.loads((GOLDEN / "nft-list-edited.json").read_text())
    decoded = nft.decode(data)
    assert decoded is not None and decoded.ipv4 == CLAMP.ipv4 and decoded.ipv6 == CLAMP.ipv6
    (other,) = decoded.other
    assert other.startswith('rule: {"chain": "mss"') and '"dport"' in other
    assert decoded.plain()["other"] == [other]


def test_a_changed_mss_or_chain_is_not_dsrctls() -> None:
    data = json.loads((GOLDEN / "nft-list.json").read_text())
    for item in data["nftables"]:
        if "chain" in item:
            item["chain"]["prio"] = 0
    decoded = nft.decode(data)
    assert decoded is not None and decoded.other and decoded.other[0].startswith("chain: ")


def test_nft_09s_flags_and_a_comment_are_the_same_rule() -> None:
    data = json.loads((GOLDEN / "nft-list.json").read_text())
    for item in data["nftables"]:
        if "rule" in item:
            flags = item["rule"]["expr"][1]["match"]
            flags["left"]["&"][1] = {"|": ["ack", "syn"]}
            flags["right"] = {"|": ["syn", "ack"]}
            item["rule"]["comment"] = "someone's"
    assert nft.decode(data) == CLAMP
    for item in data["nftables"]:
        if "rule" in item:
            item["rule"]["expr"][1]["match"]["right"] = "syn"  # every SYN: not dsrctl's rule
    decoded = nft.decode(data)
    assert decoded is not None and decoded.ipv4 is None and len(decoded.other) == 4


def test_no_table_decodes_to_none() -> None:
    assert nft.decode({"nftables": [{"metainfo": {"version": "1.0.6"}}]}) is None


def test_the_script_replaces_the_table_whole() -> None:
    text = nft.script(CLAMP)
    lines = text.splitlines()
    assert lines[:2] == ["add table inet dsrctl", "delete table inet dsrctl"]
    assert nft.script(None) == "add table inet dsrctl\ndelete table inet dsrctl\n"
    assert mss_unit.nft_file(CLAMP, SPEC_PATH).content.decode().endswith(text)


def test_boot_files_golden() -> None:
    golden("mss.nft", mss_unit.nft_file(CLAMP, SPEC_PATH).content.decode())
    golden("dsrctl-mss.service", mss_unit.unit_text(SPEC_PATH))
    rendered = mss_unit.render(CLAMP, SPEC_PATH, systemd=True)
    assert rendered.symlinks == {
        "/etc/systemd/system/multi-user.target.wants/dsrctl-mss.service": (
            "/etc/systemd/system/dsrctl-mss.service"
        )
    }
    assert rendered.dirs == ("/etc/dsrctl", "/etc/systemd/system/multi-user.target.wants")


def test_without_systemd_only_the_nft_file_is_written_and_the_plan_says_so(
    tmp_path: Path,
) -> None:
    loaded = spec(f'[[tunnel]]\nkind = "ipip"\n[linux.persist]\nroot = "{tmp_path}"\n')
    host = FakeHost(systemd=False)
    plan = plan_mss(loaded, host, host.uplinks())
    assert plan is not None
    assert list(plan.files) == [f"{tmp_path}/etc/dsrctl/mss.nft"] and not plan.symlinks
    assert "load it at boot (nft -f /etc/dsrctl/mss.nft)" in plan.notes[0]


# -- the kind in the diff -------------------------------------------------------------------
def desired_with(clamp: MssClamp | None) -> Desired:
    desired = Desired()
    desired.mss["mss"] = clamp
    return desired


def test_a_missing_table_is_created_in_harden_and_a_matching_one_is_no_change() -> None:
    ipv4 = MssClamp(ipv4=ClampRule(1440, ("192.0.2.10/32",)))
    (step,) = build_plan(desired_with(ipv4), HostState(), Ownership()).steps
    assert (step.resource, step.action, step.phase) == ("nft:mss", "create", Phase.HARDEN)
    assert step.to_record()["after"] == {"ipv4": {"mss": 1440, "sources": ["192.0.2.10/32"]}}
    assert type(step).decode(step.to_record()["after"]) == ipv4
    assert build_plan(desired_with(ipv4), HostState(mss=ipv4), Ownership()).steps == ()
    other = dataclasses.replace(ipv4, ipv4=ClampRule(1400, ("192.0.2.10/32",)))
    (changed,) = build_plan(desired_with(ipv4), HostState(mss=other), Ownership()).steps
    assert changed.action == "update"


def test_the_way_back_removes_the_table_dsrctl_created_after_the_vips() -> None:
    from dsrctl.linux.desired import build_desired

    ownership = Ownership()
    ownership.remember("nft:mss", created=True, original=None)
    desired = build_desired(spec(""), ownership)
    assert desired.mss == {"mss": None}
    current = HostState(mss=MssClamp(ipv4=ClampRule(1440, ("192.0.2.10/32",))))
    steps = [s for s in build_plan(desired, current, ownership).steps if s.kind == "nft"]
    assert [(s.action, s.phase) for s in steps] == [("delete", Phase.RELAX)]


def test_rollback_restores_the_clamp_but_not_what_someone_else_put_in_the_table() -> None:
    """An apply replaced a table in which someone had added a chain (drift dsrctl repaired):
    the undo puts dsrctl's clamp back, not the foreign chain it cannot write, and the
    rollback's verification expects exactly that."""
    from dsrctl.kinds.mss import MssStep
    from dsrctl.kinds.registry import step_from_record

    rule = ClampRule(1424, ("192.0.2.100/32",))
    seen = MssClamp(ipv4=rule, other=('{"chain": {"name": "theirs"}}',))
    step = MssStep("nft:mss", seen, MssClamp(ipv4=rule), Phase.HARDEN)
    undo = step.inverse()
    assert undo.after == MssClamp(ipv4=rule)
    assert undo.before == MssClamp(ipv4=rule)
    assert "not restored" in undo.note
    # the journal's copy of the step undoes the same way
    assert step_from_record(step.to_record()).inverse().after == MssClamp(ipv4=rule)
    # a table without foreign items comes back as it was
    plain = MssStep("nft:mss", MssClamp(ipv4=rule), None, Phase.RELAX)
    assert plain.inverse().after == MssClamp(ipv4=rule)
