"""The diff engine and plan order, with plain data: no host, no fakes."""

from __future__ import annotations

from typing import Any

from dsrctl.diff import build_plan, changed_resources
from dsrctl.linux.desired import build_desired, read_scope
from dsrctl.model import AddressState, FileState, HostState
from dsrctl.plan import Plan
from dsrctl.spec import Spec, parse_spec
from dsrctl.steps import Phase
from state.ownership import Ownership

SYSCTL_FILE = "/etc/sysctl.d/90-dsrctl.conf"
IGNORE = "net.ipv4.conf.all.arp_ignore"
ANNOUNCE = "net.ipv4.conf.all.arp_announce"


def make_spec(*addresses: str, **linux: Any) -> Spec:
    return parse_spec(
        {"version": 1, "vip": [{"address": a} for a in addresses], "linux": linux},
        "/etc/dsrctl/dsrctl.toml",
    )


def host(
    sysctls: dict[str, int | str] | None = None,
    addresses: list[AddressState] | None = None,
    files: dict[str, FileState | None] | None = None,
) -> HostState:
    lo = {a.cidr: a for a in [AddressState("127.0.0.1", 8, label="lo"), *(addresses or [])]}
    return HostState(
        sysctls={IGNORE: 0, ANNOUNCE: 0, **(sysctls or {})},
        addresses={"lo": lo},
        files=files if files is not None else {SYSCTL_FILE: None},
    )


def plan_for(spec: Spec, current: HostState, ownership: Ownership | None = None) -> Plan:
    ownership = ownership or Ownership()
    return build_plan(build_desired(spec, ownership), current, ownership)


def converged(spec: Spec) -> HostState:
    desired = build_desired(spec, Ownership())
    return HostState(
        sysctls=dict(desired.sysctls),
        addresses={"lo": dict(desired.addresses["lo"])},
        files=dict(desired.files),
    )


def test_fresh_host_plan_is_ordered_sysctls_then_addresses_then_file() -> None:
    spec = make_spec("192.0.2.100", "2001:db8::100")
    plan = plan_for(spec, host())
    assert [(s.action, s.resource) for s in plan.steps] == [
        ("update", f"sysctl:{IGNORE}"),
        ("update", f"sysctl:{ANNOUNCE}"),
        ("create", "address:lo:192.0.2.100/32"),
        ("create", "address:lo:2001:db8::100/128"),
        ("create", f"file:{SYSCTL_FILE}"),
    ]
    assert [s.phase for s in plan.steps] == [
        Phase.HARDEN,
        Phase.HARDEN,
        Phase.ADD_ADDRESSES,
        Phase.ADD_ADDRESSES,
        Phase.PERSIST,
    ]
    assert plan.counts() == {"create": 3, "update": 2, "delete": 0}
    assert plan.summary() == "Plan: 3 to add, 2 to change, 0 to remove."


def test_ipv6_vip_is_deprecated_without_dad_and_ipv4_gets_interface_label() -> None:
    spec = make_spec("192.0.2.100", "2001:db8::100")
    after = {s.resource: s.after for s in plan_for(spec, host()).steps}
    assert after["address:lo:2001:db8::100/128"] == AddressState(
        "2001:db8::100", 128, deprecated=True, nodad=True
    )
    assert after["address:lo:192.0.2.100/32"] == AddressState("192.0.2.100", 32, label="lo")


def test_converged_host_gives_empty_plan_without_deepdiff() -> None:
    import sys

    spec = make_spec("192.0.2.100", "2001:db8::100")
    sys.modules.pop("deepdiff", None)
    plan = plan_for(spec, converged(spec))
    assert plan.empty
    assert plan.summary() == "No changes. The host matches the spec."
    assert "deepdiff" not in sys.modules


def test_foreign_addresses_on_lo_are_not_touched() -> None:
    spec = make_spec("192.0.2.100")
    current = converged(spec)
    current.addresses["lo"]["198.18.0.9/32"] = AddressState("198.18.0.9", 32, label="lo")
    assert plan_for(spec, current).empty


def test_attribute_changes_are_updates() -> None:
    spec = parse_spec(
        {
            "version": 1,
            "vip": [{"address": "192.0.2.100", "label": "lo:web"}, {"address": "2001:db8::1"}],
        },
        "s.toml",
    )
    current = converged(spec)
    current.addresses["lo"]["192.0.2.100/32"] = AddressState("192.0.2.100", 32, label="lo")
    current.addresses["lo"]["2001:db8::1/128"] = AddressState("2001:db8::1", 128)
    plan = plan_for(spec, current)
    assert [(s.action, s.resource) for s in plan.steps] == [
        ("update", "address:lo:192.0.2.100/32"),
        ("update", "address:lo:2001:db8::1/128"),
    ]


def test_sysctl_file_content_drift_is_detected() -> None:
    spec = make_spec("192.0.2.100")
    current = converged(spec)
    wanted = current.files[SYSCTL_FILE]
    assert wanted is not None
    current.files[SYSCTL_FILE] = FileState(wanted.content + b"net.ipv4.ip_forward = 1\n", 0o644)
    plan = plan_for(spec, current)
    assert [(s.action, s.resource) for s in plan.steps] == [("update", f"file:{SYSCTL_FILE}")]
    current.files[SYSCTL_FILE] = FileState(wanted.content, 0o600)
    assert [s.action for s in plan_for(spec, current).steps] == ["update"]


def test_sysctl_file_content_lists_every_spec_sysctl() -> None:
    spec = make_spec("192.0.2.100", sysctl={"net.ipv4.conf.eth0.rp_filter": 2})
    wanted = build_desired(spec, Ownership()).files[SYSCTL_FILE]
    assert wanted is not None
    lines = wanted.content.decode().splitlines()
    assert lines[0].startswith("# Managed by dsrctl from /etc/dsrctl/dsrctl.toml")
    assert lines[2:] == [
        "net.ipv4.conf.all.arp_ignore = 1",
        "net.ipv4.conf.all.arp_announce = 2",
        "net.ipv4.conf.eth0.rp_filter = 2",
    ]
    assert wanted.mode == 0o644


def test_persist_disabled_writes_no_file() -> None:
    spec = make_spec("192.0.2.100", persist={"enabled": False})
    desired = build_desired(spec, Ownership())
    assert desired.files == {}
    assert read_scope(spec, desired, Ownership()).files == ()


def owned(**records: tuple[bool, Any]) -> Ownership:
    ownership = Ownership()
    for resource, (created, original) in records.items():
        ownership.remember(resource, created=created, original=original)
    return ownership


def test_dropped_vip_is_removed_only_if_dsrctl_created_it() -> None:
    spec = make_spec("192.0.2.100")
    current = converged(spec)
    for address in ("198.18.0.1", "198.18.0.2"):
        current.addresses["lo"][f"{address}/32"] = AddressState(address, 32, label="lo")
    ownership = Ownership()
    ownership.remember("address:lo:198.18.0.1/32", created=True, original=None)
    ownership.remember(
        "address:lo:198.18.0.2/32", created=False, original={"address": "198.18.0.2"}
    )
    plan = plan_for(spec, current, ownership)
    assert [(s.action, s.resource, s.phase) for s in plan.steps] == [
        ("delete", "address:lo:198.18.0.1/32", Phase.REMOVE_ADDRESSES)
    ]
    assert any("198.18.0.2/32 on lo is no longer in the spec" in n for n in plan.notes)


def test_removal_runs_before_sysctls_are_relaxed() -> None:
    spec = make_spec("192.0.2.100")
    current = converged(spec)
    current.sysctls["net.ipv4.conf.eth0.rp_filter"] = 2
    current.addresses["lo"]["198.18.0.1/32"] = AddressState("198.18.0.1", 32, label="lo")
    ownership = Ownership()
    ownership.remember("address:lo:198.18.0.1/32", created=True, original=None)
    ownership.remember("sysctl:net.ipv4.conf.eth0.rp_filter", created=False, original=1)
    plan = plan_for(spec, current, ownership)
    assert [(s.action, s.resource, s.phase) for s in plan.steps] == [
        ("delete", "address:lo:198.18.0.1/32", Phase.REMOVE_ADDRESSES),
        ("update", "sysctl:net.ipv4.conf.eth0.rp_filter", Phase.RELAX),
    ]
    relax = plan.steps[1]
    assert (relax.before, relax.after) == (2, 1)


def test_hardening_runs_before_adding_and_removal_first() -> None:
    spec = make_spec("192.0.2.100")
    current = host(addresses=[AddressState("198.18.0.1", 32, label="lo")])
    ownership = Ownership()
    ownership.remember("address:lo:198.18.0.1/32", created=True, original=None)
    phases = [s.phase for s in plan_for(spec, current, ownership).steps]
    assert phases == sorted(phases)
    assert phases[0] == Phase.REMOVE_ADDRESSES
    assert phases.index(Phase.HARDEN) < phases.index(Phase.ADD_ADDRESSES)


def test_owned_file_is_removed_when_persistence_is_disabled() -> None:
    spec = make_spec("192.0.2.100", persist={"enabled": False})
    current = converged(make_spec("192.0.2.100"))
    ownership = Ownership()
    ownership.remember(f"file:{SYSCTL_FILE}", created=True, original=None)
    plan = plan_for(spec, current, ownership)
    assert [(s.action, s.resource) for s in plan.steps] == [("delete", f"file:{SYSCTL_FILE}")]


def test_preexisting_file_is_restored_byte_for_byte() -> None:
    spec = make_spec("192.0.2.100", persist={"enabled": False})
    current = converged(make_spec("192.0.2.100"))
    original = FileState(b"# operator's own\nkernel.x = 1\n", 0o600)
    ownership = Ownership()
    ownership.remember(f"file:{SYSCTL_FILE}", created=False, original=original.to_record())
    (step,) = plan_for(spec, current, ownership).steps
    assert step.after == original


def test_wider_prefix_on_lo_is_warned_about() -> None:
    spec = make_spec("192.0.2.100")
    current = converged(spec)
    current.addresses["lo"]["192.0.2.100/24"] = AddressState("192.0.2.100", 24, label="lo")
    plan = plan_for(spec, current)
    assert plan.empty
    assert any("captures the whole subnet" in n for n in plan.notes)


def test_plan_json_is_versioned_with_action_resource_before_after() -> None:
    spec = make_spec("192.0.2.100")
    data = plan_for(spec, host()).to_json(spec.path)
    assert data["format_version"] == 1
    assert data["in_sync"] is False
    first = data["changes"][0]
    assert first == {
        "action": "update",
        "resource": f"sysctl:{IGNORE}",
        "kind": "sysctl",
        "phase": "harden",
        "before": 0,
        "after": 1,
    }
    address = data["changes"][2]
    assert address["after"] == {"address": "192.0.2.100", "prefix": 32, "label": "lo"}
    assert address["before"] is None


def test_fresh_host_with_many_vips_plans_every_one() -> None:
    """Few keys in common between host and spec must still give one step per resource."""
    addresses = [f"198.18.0.{i}" for i in range(1, 41)]
    plan = plan_for(make_spec(*addresses), host())
    created = [s.resource for s in plan.steps if s.action == "create"]
    assert len(created) == 41  # 40 VIPs and the sysctl file
    assert plan.counts() == {"create": 41, "update": 2, "delete": 0}
    # ...and with nothing in common at all.
    assert changed_resources({}, {"a": 1, "b": 2}) == ["a", "b"]
    assert changed_resources({"x": 1}, {"a": 1, "b": 2, "c": 3}) == ["a", "b", "c", "x"]


def test_changed_resources_reports_top_level_keys() -> None:
    before = {"a": 1, "b": {"x": 1}, "c": 3}
    after = {"a": 2, "b": {"x": 1, "y": 2}, "d": 4}
    assert changed_resources(before, after) == ["a", "b", "c", "d"]
    assert changed_resources({"a": 1}, {"a": "1"}) == ["a"]
    assert changed_resources(before, dict(before)) == []
