"""VIP ranges as plain data: spec -> desired routes -> plan, the way back, the read scope
and the persistence rival notes. No host (the kernel side: tests/netns/test_ranges.py)."""

from __future__ import annotations

from typing import Any

from dsrctl.diff import build_plan
from dsrctl.kinds.route import RouteStep
from dsrctl.linux.desired import build_desired, dropped_ranges, range_states, read_scope, vip_states
from dsrctl.linux.persistence import rival_notes
from dsrctl.model import HostState, RouteState
from dsrctl.spec import Spec, parse_spec
from dsrctl.steps import Phase
from providers.linux.persist import Claim, Detection
from state.ownership import Ownership

RANGE = "route:local:local:198.18.5.0/24"


def make_spec(*vips: dict[str, Any]) -> Spec:
    return parse_spec(
        {"version": 1, "vip": list(vips), "linux": {"persist": {"enabled": False}}}, "s.toml"
    )


SPEC = make_spec(
    {"address": "192.0.2.100"},
    {"address": "198.18.5.0", "prefix": 24},
    {"address": "2001:db8:5::", "prefix": 64},
)


def host_with(*routes: RouteState) -> HostState:
    host = HostState()
    host.sysctls = {"net.ipv4.conf.all.arp_ignore": 1, "net.ipv4.conf.all.arp_announce": 2}
    host.addresses = {"lo": {}}
    host.routes = {route.key: route for route in routes}
    return host


def test_a_range_is_a_route_not_an_address() -> None:
    assert [state.cidr for state in vip_states(SPEC)] == ["192.0.2.100/32"]
    assert [state.key for state in range_states(SPEC)] == [
        "local:local:198.18.5.0/24",
        "local:local:2001:db8:5::/64",
    ]
    desired = build_desired(SPEC, Ownership())
    assert list(desired.addresses["lo"]) == ["192.0.2.100/32"]
    assert RANGE in desired.spec_resources
    scope = read_scope(SPEC, desired, Ownership())
    assert scope.routes == ("local:local:198.18.5.0/24", "local:local:2001:db8:5::/64")


def test_no_range_reads_no_route() -> None:
    spec = make_spec({"address": "192.0.2.100"})
    assert read_scope(spec, build_desired(spec, Ownership()), Ownership()).routes == ()


def test_a_missing_range_is_created_after_the_arp_keys_are_hardened() -> None:
    host = host_with()
    host.sysctls = {"net.ipv4.conf.all.arp_ignore": 0, "net.ipv4.conf.all.arp_announce": 0}
    plan = build_plan(build_desired(SPEC, Ownership()), host, Ownership())
    kinds = [(step.kind, step.phase) for step in plan.steps]
    assert kinds.index(("route", Phase.ADD_ADDRESSES)) > kinds.index(("sysctl", Phase.HARDEN))
    routes = [step for step in plan.steps if isinstance(step, RouteStep)]
    assert [(s.resource, s.action, s.after) for s in routes] == [
        (RANGE, "create", RouteState("198.18.5.0/24", "lo")),
        ("route:local:local:2001:db8:5::/64", "create", RouteState("2001:db8:5::/64", "lo")),
    ]


def test_a_present_range_plans_nothing_whatever_its_metric_and_a_wrong_device_is_changed() -> None:
    present = host_with(
        RouteState("198.18.5.0/24", "lo", priority=0),
        RouteState("2001:db8:5::/64", "lo", priority=1024),
    )
    present.addresses = {"lo": {"192.0.2.100/32": vip_states(SPEC)[0]}}
    assert build_plan(build_desired(SPEC, Ownership()), present, Ownership()).steps == ()
    present.routes[RANGE.removeprefix("route:")] = RouteState("198.18.5.0/24", "eth0")
    (step,) = build_plan(build_desired(SPEC, Ownership()), present, Ownership()).steps
    assert (step.resource, step.action, step.phase) == (RANGE, "update", Phase.ADD_ADDRESSES)


def test_a_range_dsrctl_added_and_the_spec_dropped_is_removed_first() -> None:
    ownership = Ownership()
    ownership.remember(RANGE, created=True, original=None)
    spec = make_spec({"address": "192.0.2.100"})
    assert dropped_ranges(spec, ownership) == frozenset({"198.18.5.0/24"})
    desired = build_desired(spec, ownership)
    assert read_scope(spec, desired, ownership).routes == ("local:local:198.18.5.0/24",)
    host = host_with(RouteState("198.18.5.0/24", "lo"))
    host.addresses = {"lo": {"192.0.2.100/32": vip_states(spec)[0]}}
    (step,) = build_plan(desired, host, ownership).steps
    assert (step.resource, step.action, step.phase) == (RANGE, "delete", Phase.REMOVE_ADDRESSES)
    assert step.note == "added by dsrctl, no longer in the spec"


def test_a_range_that_was_there_before_dsrctl_is_released() -> None:
    ownership = Ownership()
    ownership.remember(RANGE, created=False, original=None)
    spec = make_spec({"address": "192.0.2.100"})
    desired = build_desired(spec, ownership)
    assert RANGE in desired.released
    assert desired.notes == [
        "the local route 198.18.5.0/24 is no longer in the spec but was there before dsrctl; "
        "it is left in place"
    ]
    host = host_with(RouteState("198.18.5.0/24", "lo"))
    host.addresses = {"lo": {"192.0.2.100/32": vip_states(spec)[0]}}
    assert build_plan(desired, host, ownership).steps == ()


def test_networkd_keeping_static_configuration_keeps_ipv6_ranges() -> None:
    """KeepConfiguration=static keeps static addresses and routes; an IPv6 VIP is
    deprecated (dynamic to networkd) and would go, an IPv6 range has no lifetime."""
    claim = Claim("systemd-networkd", "/etc/systemd/network/10-lo.network", "[Match] Name=lo", True)
    detection = Detection("/", "lo", live=False, systemd=True, networkd_keep="static")
    ranges_only = make_spec({"address": "2001:db8:5::", "prefix": 64})
    assert "so the VIPs stay" in rival_notes(claim, "systemd-unit", detection, ranges_only)[0]
    vip6 = make_spec({"address": "2001:db8::100"})
    assert rival_notes(claim, "systemd-unit", detection, vip6)[0].startswith("WARNING")
