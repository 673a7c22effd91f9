"""The Windows planner is pure: spec + observed state + ownership records in, plan out."""

from __future__ import annotations

from typing import Any

from dsrctl.spec import Spec, parse_spec
from dsrctl.steps import Phase
from dsrctl.windows.model import (
    FirewallRuleState,
    VipAddress,
    WindowsState,
)
from dsrctl.windows.planner import build_desired, plan_from_state
from dsrctl.windows.steps import (
    AdapterStep,
    DhcpStep,
    FirewallRuleStep,
    ManualStep,
    NetshSetStep,
    VipStep,
)
from state.ownership import Ownership

WINDOWS: dict[str, Any] = {
    "loopback": "LO",
    "uplinks": ["LAN"],
    "firewall": [{"name": "dsr-web", "ports": [80, 443]}],
}
VIPS = [{"address": "192.0.2.100"}, {"address": "2001:db8::100"}]


def spec(windows: dict[str, Any] | None = None, vips: list[dict[str, Any]] | None = None) -> Spec:
    data = {"version": 1, "vip": vips or VIPS, "windows": {**WINDOWS, **(windows or {})}}
    return parse_spec(data, "spec.toml")


def fresh_host(loopback: bool = True) -> WindowsState:
    state = WindowsState(adapters={"lan": "LAN"})
    strong: dict[str, str | int] = {
        "weakhostsend": "disabled",
        "weakhostreceive": "disabled",
        "metric": 25,
    }
    names = ["lan"]
    if loopback:
        state.adapters["lo"] = "LO"
        names.append("lo")
    for name in names:
        for family in (4, 6):
            state.settings[(family, name)] = dict(strong)
            state.addresses[(family, name)] = {}
        state.settings[(4, name)]["dhcp"] = "enabled" if name == "lo" else "disabled"
    state.addresses[(4, "lan")] = {"198.18.0.10/24": VipAddress("198.18.0.10", 24)}
    state.firewall["dsr-web"] = None
    return state


def converged_host() -> WindowsState:
    state = fresh_host()
    for family in (4, 6):
        state.settings[(family, "lan")]["weakhostreceive"] = "enabled"
        state.settings[(family, "lo")].update(
            weakhostsend="enabled", weakhostreceive="enabled", metric=254
        )
    state.settings[(4, "lo")]["dhcp"] = "disabled"
    state.addresses[(4, "lo")] = {"192.0.2.100/32": VipAddress("192.0.2.100", 32)}
    state.addresses[(6, "lo")] = {"2001:db8::100/128": VipAddress("2001:db8::100", 128)}
    state.firewall["dsr-web"] = FirewallRuleState(
        localip=("192.0.2.100", "2001:db8::100"), localport=("80", "443")
    )
    return state


def plan(
    the_spec: Spec,
    state: WindowsState,
    ownership: Ownership | None = None,
    deferred: set[str] | None = None,
) -> Any:
    assert the_spec.windows is not None
    desired = build_desired(the_spec, the_spec.windows, ownership or Ownership())
    return plan_from_state(the_spec, the_spec.windows, desired, state, deferred)


def test_fresh_host_plan_order_and_kinds() -> None:
    steps = plan(spec(), fresh_host()).plan.steps
    assert [(type(s).__name__, s.resource, s.phase) for s in steps] == [
        ("NetshSetStep", "netsh:ipv4:LAN:weakhostreceive", Phase.HARDEN),
        ("NetshSetStep", "netsh:ipv4:LO:weakhostreceive", Phase.HARDEN),
        ("NetshSetStep", "netsh:ipv4:LO:weakhostsend", Phase.HARDEN),
        ("NetshSetStep", "netsh:ipv6:LAN:weakhostreceive", Phase.HARDEN),
        ("NetshSetStep", "netsh:ipv6:LO:weakhostreceive", Phase.HARDEN),
        ("NetshSetStep", "netsh:ipv6:LO:weakhostsend", Phase.HARDEN),
        ("NetshSetStep", "netsh:ipv4:LO:metric", Phase.HARDEN),
        ("NetshSetStep", "netsh:ipv6:LO:metric", Phase.HARDEN),
        ("DhcpStep", "netsh:ipv4:LO:dhcp", Phase.ADD_ADDRESSES),
        ("VipStep", "address:LO:192.0.2.100/32", Phase.ADD_ADDRESSES),
        ("VipStep", "address:LO:2001:db8::100/128", Phase.ADD_ADDRESSES),
        ("FirewallRuleStep", "firewall:dsr-web", Phase.FIREWALL),
    ]
    dhcp = steps[8]
    assert isinstance(dhcp, DhcpStep) and dhcp.vip == "192.0.2.100/32"
    vip = steps[9]
    assert isinstance(vip, VipStep) and vip.after == VipAddress("192.0.2.100", 32)
    assert vip.after.skipassource is True


def test_converged_host_plans_nothing() -> None:
    result = plan(spec(), converged_host())
    assert result.plan.empty
    assert result.spec_resources == set(result.have_plain)
    assert result.have_plain["firewall:dsr-web"]["localport"] == ["80", "443"]


def test_adapter_and_interface_names_compare_without_case() -> None:
    result = plan(spec({"loopback": "lo", "uplinks": ["Lan"]}), converged_host())
    assert result.plan.empty


def test_missing_adapter_without_devcon_is_a_blocking_manual_step() -> None:
    steps = plan(spec(), fresh_host(loopback=False)).plan.steps
    first = steps[0]
    assert isinstance(first, ManualStep) and first.blocking
    assert (first.resource, first.phase, first.action) == ("adapter:LO", Phase.ADAPTER, "create")
    assert "devcon install %windir%\\inf\\netloop.inf *MSLOOP" in first.instructions
    assert 'newname="LO"' in first.instructions
    settings = [s for s in steps if isinstance(s, NetshSetStep) and ":LO:" in s.resource]
    assert settings and all(s.before is None for s in settings)


def test_missing_adapter_with_devcon_is_created() -> None:
    steps = plan(spec({"devcon": "C:\\Tools\\devcon.exe"}), fresh_host(loopback=False)).plan.steps
    first = steps[0]
    assert isinstance(first, AdapterStep) and first.devcon == "C:\\Tools\\devcon.exe"
    assert first.inverse().action == "delete"


def test_2003_profile() -> None:
    the_spec = spec(
        {"profile": "2003", "uplinks": []}, [{"address": "192.0.2.100"}, {"address": "198.18.0.7"}]
    )
    state = WindowsState(adapters={"lo": "LO"})
    state.settings[(4, "lo")] = {"dhcp": "disabled", "metric": 0}
    state.addresses[(4, "lo")] = {}
    result = plan(the_spec, state)
    kinds = {s.resource: type(s).__name__ for s in result.plan.steps}
    assert kinds == {
        "netsh:ipv4:LO:metric": "ManualStep",
        "address:LO:192.0.2.100/32": "VipStep",
        "address:LO:198.18.0.7/32": "VipStep",
    }
    manual = result.plan.steps[0]
    assert isinstance(manual, ManualStep) and not manual.blocking
    assert "clear 'Automatic metric' and set 'Interface metric' to 254" in manual.instructions
    vip = result.plan.steps[1]
    assert isinstance(vip, VipStep) and vip.after.skipassource is False
    assert any("not managed on Windows Server 2003" in note for note in result.plan.notes)
    assert 'portopening protocol=TCP port=443 name="dsr-web-443"' in " ".join(result.plan.notes)
    # Once the operator was told (the same apply run), the re-plan leaves it out.
    again = plan(the_spec, state, deferred={"netsh:ipv4:LO:metric"})
    assert "netsh:ipv4:LO:metric" not in {s.resource for s in again.plan.steps}
    assert any(note.startswith("left to do by hand") for note in again.plan.notes)


def test_each_kind_of_drift() -> None:
    state = converged_host()
    state.settings[(4, "lan")]["weakhostreceive"] = "disabled"
    state.settings[(6, "lo")]["metric"] = 5
    state.addresses[(4, "lo")] = {}
    state.addresses[(6, "lo")]["2001:db8::7/128"] = VipAddress("2001:db8::7", 128)
    rule = state.firewall["dsr-web"]
    assert rule is not None
    state.firewall["dsr-web"] = FirewallRuleState(localip=rule.localip, localport=("80",))
    steps = {s.resource: s for s in plan(spec(), state).plan.steps}
    assert steps["netsh:ipv4:LAN:weakhostreceive"].after == "enabled"
    assert (steps["netsh:ipv6:LO:metric"].before, steps["netsh:ipv6:LO:metric"].after) == (5, 254)
    assert steps["address:LO:192.0.2.100/32"].action == "create"
    foreign = steps["address:LO:2001:db8::7/128"]
    assert isinstance(foreign, ManualStep) and not foreign.blocking
    assert 'netsh interface ipv6 delete address interface="LO" address=2001:db8::7' in foreign.note
    assert isinstance(steps["firewall:dsr-web"], FirewallRuleStep)
    assert steps["firewall:dsr-web"].action == "update"


def test_ownership_decides_what_a_dropped_resource_becomes() -> None:
    ownership = Ownership()
    ownership.remember("address:LO:198.18.0.5/32", created=True, original=None)
    ownership.remember("address:LO:198.18.0.6/32", created=False, original={"address": "x"})
    ownership.remember("netsh:ipv4:OLD:weakhostreceive", created=False, original="disabled")
    ownership.remember("firewall:old-web", created=True, original=None)
    old_rule = FirewallRuleState(protocol="udp", localport=("53",))
    ownership.remember("firewall:dns", created=False, original=old_rule.to_record())
    state = converged_host()
    state.adapters["old"] = "OLD"
    state.settings[(4, "old")] = {"weakhostreceive": "enabled"}
    state.addresses[(4, "lo")].update(
        {
            "198.18.0.5/32": VipAddress("198.18.0.5", 32),
            "198.18.0.6/32": VipAddress("198.18.0.6", 32),
        }
    )
    state.firewall.update({"old-web": FirewallRuleState(), "dns": FirewallRuleState()})
    result = plan(spec(), state, ownership)
    steps = {s.resource: (type(s).__name__, s.action, s.phase, s.after) for s in result.plan.steps}
    assert steps == {
        "address:LO:198.18.0.5/32": ("VipStep", "delete", Phase.REMOVE_ADDRESSES, None),
        # there before dsrctl: left in place, and reported as not in the spec
        "address:LO:198.18.0.6/32": ("ManualStep", "delete", Phase.REMOVE_ADDRESSES, None),
        "netsh:ipv4:OLD:weakhostreceive": ("NetshSetStep", "update", Phase.RELAX, "disabled"),
        "firewall:old-web": ("FirewallRuleStep", "delete", Phase.FIREWALL, None),
        "firewall:dns": ("FirewallRuleStep", "update", Phase.FIREWALL, old_rule),
    }


def test_gateway_and_label_notes() -> None:
    state = converged_host()
    state.gateways["lo"] = ("198.18.0.1",)
    vips = [{"address": "192.0.2.100", "label": "lo:1"}, {"address": "2001:db8::100"}]
    notes = plan(spec(vips=vips), state).plan.notes
    assert any("WARNING: LO has the default gateway 198.18.0.1" in note for note in notes)
    assert any("labels are a Linux feature" in note for note in notes)
