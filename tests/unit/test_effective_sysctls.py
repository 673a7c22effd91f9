"""Effective per-interface sysctls: rp_filter for the spec's tunnels, and uplink ARP values
that defeat the spec (plain data; the planner against a host that fits LinuxPlannerHost)."""

from __future__ import annotations

from typing import Any

import pytest

from dsrctl.linux.effective import (
    arp_defeat,
    boot_defeats,
    boot_keys,
    computed,
    observed_keys,
    rp_filter_conflict,
    tunnel_notes,
    tunnel_sysctls,
)
from dsrctl.linux.planner import plan_linux
from dsrctl.model import HostState, ReadScope, SysctlValue
from dsrctl.spec import Spec, parse_spec
from providers.linux.firewall import Ruleset
from providers.linux.persist import Detection
from providers.linux.persist.sysctl_conflicts import Assignment
from providers.linux.uplinks import Uplink, Uplinks
from state.ownership import Ownership, OwnershipRecord

PATH = "/etc/dsrctl/dsrctl.toml"
RP_ALL = "net.ipv4.conf.all.rp_filter"


def spec(*tunnels: dict[str, Any], sysctl: dict[str, Any] | None = None) -> Spec:
    data: dict[str, Any] = {
        "version": 1,
        "vip": [{"address": "192.0.2.100"}],
        "linux": {"persist": {"enabled": False}, "sysctl": sysctl or {}},
    }
    if tunnels:
        data["tunnel"] = list(tunnels)
    return parse_spec(data, PATH)


def test_tunnels_carrying_ipv4_want_rp_filter_0_on_all_and_their_device_ip6ip6_nothing() -> None:
    assert tunnel_sysctls(spec({"kind": "gue"}, {"kind": "vxlan-gpe"})) == {
        RP_ALL: 0,
        "net.ipv4.conf.tunl0.rp_filter": 0,
        "net.ipv4.conf.dsrgpe0.rp_filter": 0,
    }
    assert tunnel_sysctls(spec({"kind": "ip6ip6"})) == {}
    # ip6gre's outer header is IPv6, but it carries IPv4 too: those arrive on ip6gre0
    assert tunnel_sysctls(spec({"kind": "ip6ip6"}, {"kind": "ip6gre"})) == {
        RP_ALL: 0,
        "net.ipv4.conf.ip6gre0.rp_filter": 0,
    }
    assert tunnel_sysctls(spec()) == {}
    notes = tunnel_notes(spec({"kind": "ipip"}))
    assert notes["sysctl:net.ipv4.conf.tunl0.rp_filter"] == (
        "decapsulated packets arrive on tunl0, which has no address: any rp_filter but 0 drops them"
    )


def test_ip6gre_carries_ipv4_too_so_its_device_wants_rp_filter_0() -> None:
    """An IPv6 outer header, but IPv4 inside is filtered on the ip6gre device like on any
    other (the VM lab: IPv4 through ip6gre failed, TcpExtIPReversePathFilter counting
    every SYN, until the device's rp_filter was 0)."""
    assert tunnel_sysctls(spec({"kind": "ip6ip6"}, {"kind": "ip6gre", "name": "dsrgre6"})) == {
        RP_ALL: 0,
        "net.ipv4.conf.dsrgre6.rp_filter": 0,
    }
    assert tunnel_sysctls(spec({"kind": "ip6gre"})) == {
        RP_ALL: 0,
        "net.ipv4.conf.ip6gre0.rp_filter": 0,
    }


def test_an_explicit_rp_filter_that_breaks_the_tunnel_is_a_conflict_0_is_not() -> None:
    assert rp_filter_conflict(spec({"kind": "ipip"}, sysctl={RP_ALL: 0})) is None
    key, value, reason = rp_filter_conflict(  # type: ignore[misc]
        spec({"kind": "vxlan-gpe"}, sysctl={"net.ipv4.conf.dsrgpe0.rp_filter": 2})
    )
    assert (key, value) == ("net.ipv4.conf.dsrgpe0.rp_filter", 2)
    assert reason.startswith("decapsulated packets arrive on dsrgpe0, which has no address")
    # Without an IPv4 tunnel an rp_filter key is the operator's business.
    assert rp_filter_conflict(spec({"kind": "ip6ip6"}, sysctl={RP_ALL: 1})) is None


@pytest.mark.parametrize(
    ("leaf", "value", "defeats"),
    [
        ("arp_ignore", 0, False),  # max(1, 0) = 1
        ("arp_ignore", 1, False),
        ("arp_ignore", 2, False),  # stricter, still safe
        ("arp_ignore", 3, True),  # VIP on lo is scope global: answered
        ("arp_ignore", 5, True),  # reserved: like 0
        ("arp_ignore", 8, True),  # answers nothing
        ("arp_ignore", 9, True),  # the kernel's default case: like 0
        ("arp_announce", 1, False),
        ("arp_announce", 2, False),
        ("arp_announce", 3, True),  # the kernel's default case: like 0
        ("arp_ignore", None, False),
    ],
)
def test_which_per_interface_arp_values_defeat_the_spec(
    leaf: str, value: int | None, defeats: bool
) -> None:
    wanted = 1 if leaf == "arp_ignore" else 2
    assert (arp_defeat(leaf, value, wanted) is not None) == defeats


def test_a_defeating_uplink_value_is_set_to_the_spec_value_and_stays_managed() -> None:
    s = spec()
    observed: dict[str, SysctlValue | None] = {
        "net.ipv4.conf.eth0.arp_ignore": 3,
        "net.ipv4.conf.eth0.arp_announce": 0,
    }
    assert observed_keys(s, ("eth0",)) == list(observed)
    found = computed(s, ("eth0", "lo"), observed, {}, Ownership())
    assert found.sysctls == {"net.ipv4.conf.eth0.arp_ignore": 1}
    (note,) = found.notes
    assert note == (
        "net.ipv4.conf.eth0.arp_ignore = 3 defeats linux.arp_ignore = 1: the kernel uses "
        "max(conf.all, conf.eth0) = 3, and 3 only skips scope-host addresses, so the host "
        "answers ARP for its VIPs; dsrctl sets net.ipv4.conf.eth0.arp_ignore = 1"
    )
    # Repaired: still managed (else the next plan would drop it and restore the 3), also
    # before the records say so (the verification right after the repair).
    observed["net.ipv4.conf.eth0.arp_ignore"] = 1
    again = computed(s, ("eth0",), observed, {}, Ownership())
    assert again.sysctls == {"net.ipv4.conf.eth0.arp_ignore": 1}
    assert again.notes == []
    # Recorded and changed since to a harmless 0: set back to the spec's value.
    record = OwnershipRecord(created=False, original=3, since="")
    owned = Ownership({"sysctl:net.ipv4.conf.eth0.arp_ignore": record})
    observed["net.ipv4.conf.eth0.arp_ignore"] = 0
    assert computed(s, ("eth0",), observed, {}, owned).sysctls == {
        "net.ipv4.conf.eth0.arp_ignore": 1
    }
    # An uplink that never had a defeating or the spec's value is not managed.
    assert computed(s, ("eth0",), {}, {}, Ownership()).sysctls == {}


def test_the_uplink_keeps_its_rp_filter_when_all_goes_to_0() -> None:
    s = spec({"kind": "vxlan-gpe"})
    key = "net.ipv4.conf.eth0.rp_filter"
    observed: dict[str, SysctlValue | None] = {key: 0}
    assert key in observed_keys(s, ("eth0",))
    found = computed(s, ("eth0",), observed, {RP_ALL: 1}, Ownership())
    assert found.sysctls == {key: 1}
    # Its own value already as strict: kept as it is (managed, no change).
    assert computed(s, ("eth0",), {key: 2}, {RP_ALL: 1}, Ownership()).sysctls == {key: 2}
    # Right after the apply (all 0, nothing recorded yet): the value set is kept.
    assert computed(s, ("eth0",), {key: 1}, {RP_ALL: 0}, Ownership()).sysctls == {key: 1}
    # After the apply (all = 0 now) the value before dsrctl comes from the records.
    owned = Ownership(
        {
            f"sysctl:{RP_ALL}": OwnershipRecord(created=False, original=1, since=""),
            f"sysctl:{key}": OwnershipRecord(created=False, original=0, since=""),
        }
    )
    assert computed(s, ("eth0",), {key: 1}, {RP_ALL: 0}, owned).sysctls == {key: 1}
    # all was 0 already: the uplink is left as it is.
    assert computed(s, ("eth0",), {key: 0}, {RP_ALL: 0}, Ownership()).sysctls == {}


class FakeHost:
    """A host as LinuxPlannerHost sees it: sysctls in a dict, no tunnel device yet."""

    def __init__(self, sysctls: dict[str, SysctlValue], uplinks: tuple[str, ...]) -> None:
        self.sysctls = sysctls
        self._uplinks = uplinks
        self.scopes: list[ReadScope] = []

    def read(self, scope: ReadScope) -> HostState:
        self.scopes.append(scope)
        state = HostState()
        state.sysctls = {k: self.sysctls[k] for k in scope.sysctl_keys if k in self.sysctls}
        state.observed_sysctls = {k: self.sysctls.get(k) for k in scope.observed_sysctls}
        state.addresses = {"lo": {}}
        return state

    def running_daemons(self) -> frozenset[str]:
        return frozenset()

    def detect_persistence(self, root: str, interface: str) -> Detection:
        raise AssertionError("persistence is disabled")

    def sysctl_conflicts(
        self, root: str, sysctl_file: str, wanted: dict[str, SysctlValue]
    ) -> list[str]:
        return []

    def uplinks(self) -> Uplinks:
        devices = tuple(Uplink(name, 1500) for name in self._uplinks)
        return Uplinks({4: devices}, {name: 1500 for name in self._uplinks})

    def input_firewall(self) -> tuple[Ruleset | None, tuple[str, ...]]:
        return Ruleset(), ()

    def boot_sysctl_sources(self, root: str, keys: list[str]) -> dict[str, Assignment | None]:
        raise AssertionError("persistence is disabled: no sysctl.d files to read")


def test_the_plan_sets_rp_filter_with_its_reason_and_keeps_the_uplink_strict() -> None:
    host = FakeHost(
        {
            "net.ipv4.conf.all.arp_ignore": 1,
            "net.ipv4.conf.all.arp_announce": 2,
            RP_ALL: 1,
            "net.ipv4.conf.eth0.rp_filter": 0,
            "net.ipv4.conf.eth0.arp_ignore": 0,
            "net.ipv4.conf.eth0.arp_announce": 0,
        },
        ("eth0",),
    )
    plan = plan_linux(spec({"kind": "vxlan-gpe"}), host, Ownership()).plan
    steps = {step.resource: step for step in plan.steps if step.kind == "sysctl"}
    assert set(steps) == {
        f"sysctl:{RP_ALL}",
        "sysctl:net.ipv4.conf.dsrgpe0.rp_filter",
        "sysctl:net.ipv4.conf.eth0.rp_filter",
    }
    device = steps["sysctl:net.ipv4.conf.dsrgpe0.rp_filter"]
    assert (device.before, device.after, device.action) == (None, 0, "create")
    assert device.note.startswith("decapsulated packets arrive on dsrgpe0, which has no address")
    assert (steps[f"sysctl:{RP_ALL}"].before, steps[f"sysctl:{RP_ALL}"].after) == (1, 0)
    uplink = steps["sysctl:net.ipv4.conf.eth0.rp_filter"]
    assert (uplink.before, uplink.after) == (0, 1)
    assert "keeps eth0's reverse-path filter at 1" in uplink.note
    # The device's key is read as a spec key (absent until the device exists).
    assert "net.ipv4.conf.dsrgpe0.rp_filter" in host.scopes[0].sysctl_keys


def test_the_plan_repairs_a_defeating_uplink_arp_value_and_says_why() -> None:
    host = FakeHost(
        {
            "net.ipv4.conf.all.arp_ignore": 1,
            "net.ipv4.conf.all.arp_announce": 2,
            "net.ipv4.conf.eth0.arp_ignore": 1,
            "net.ipv4.conf.eth0.arp_announce": 4,
        },
        ("eth0",),
    )
    plan = plan_linux(spec(), host, Ownership()).plan
    (step,) = [step for step in plan.steps if step.kind == "sysctl"]
    assert (step.resource, step.before, step.after) == (
        "sysctl:net.ipv4.conf.eth0.arp_announce",
        4,
        2,
    )
    assert any("defeats linux.arp_announce = 2" in note for note in plan.notes)
    host.sysctls["net.ipv4.conf.eth0.arp_announce"] = 2
    assert [s for s in plan_linux(spec(), host, Ownership()).plan.steps if s.kind == "sysctl"] == []


def test_a_sysctl_d_line_that_defeats_the_spec_at_boot_is_a_warning() -> None:
    s = spec()
    assert boot_keys(s, ("eth0", "lo")) == [
        "net.ipv4.conf.eth0.arp_ignore",
        "net.ipv4.conf.eth0.arp_announce",
    ]
    glob = Assignment("/usr/lib/sysctl.d/60-x.conf", 4, "net.ipv4.conf.*.arp_ignore", "8")
    fine = Assignment("/etc/sysctl.d/10-y.conf", 1, "net.ipv4.conf.eth0.arp_announce", "1")
    sources: dict[str, Assignment | None] = {
        "net.ipv4.conf.eth0.arp_ignore": glob,
        "net.ipv4.conf.eth0.arp_announce": fine,
    }
    assert boot_defeats(s, ("eth0",), {}, sources) == [
        "WARNING: /usr/lib/sysctl.d/60-x.conf line 4 (net.ipv4.conf.*.arp_ignore = 8) sets "
        "net.ipv4.conf.eth0.arp_ignore = 8 at boot, which defeats linux.arp_ignore = 1: the "
        "kernel uses max(conf.all, conf.eth0) = 8, and 8 answers no ARP at all, for the "
        "host's own addresses too; remove that line (after a reboot drift reports it and "
        "apply sets the spec's value)"
    ]
    # A key dsrctl manages is the conflict scan's (its own line is in dsrctl's file).
    assert boot_defeats(s, ("eth0",), {"net.ipv4.conf.eth0.arp_ignore": 1}, sources) == []
