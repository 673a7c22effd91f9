"""The resource-kind registry: one record per kind, the journal kinds of every platform."""

from __future__ import annotations

import pytest

from dsrctl.kinds.registry import BY_NAME, LINUX, step_class, step_from_record
from dsrctl.linux.desired import Desired
from dsrctl.model import AddressState, RouteState
from dsrctl.steps import Phase, Step

# Every journal kind dsrctl has written: a kind that disappears breaks rollback of old runs.
JOURNAL_KINDS = {
    "sysctl": "dsrctl.kinds.sysctl:SysctlStep",
    "address": "dsrctl.kinds.address:AddressStep",
    "file": "dsrctl.kinds.file:FileStep",
    "symlink": "dsrctl.kinds.symlink:SymlinkStep",
    "dir": "dsrctl.kinds.directory:DirStep",
    "route": "dsrctl.kinds.route:RouteStep",
    "nft": "dsrctl.kinds.mss:MssStep",
    "module": "dsrctl.kinds.module:ModuleStep",
    "tunnel": "dsrctl.kinds.tunnel:TunnelStep",
    "fou": "dsrctl.kinds.fou:FouStep",
    "adapter": "dsrctl.windows.steps:AdapterStep",
    "netsh": "dsrctl.windows.steps:NetshSetStep",
    "dhcp": "dsrctl.windows.steps:DhcpStep",
    "vip": "dsrctl.windows.steps:VipStep",
    "firewall": "dsrctl.windows.steps:FirewallRuleStep",
    "manual": "dsrctl.windows.steps:ManualStep",
}


def test_each_kind_is_named_once_and_names_its_step() -> None:
    assert [kind.name for kind in LINUX] == [
        "sysctl",
        "address",
        "route",
        "module",
        "tunnel",
        "fou",
        "file",
        "symlink",
        "dir",
        "nft",
    ]
    assert len(BY_NAME) == len(LINUX)
    for kind in LINUX:
        assert kind.step.kind == kind.name


@pytest.mark.parametrize("kind", sorted(JOURNAL_KINDS))
def test_every_journal_kind_finds_its_step_class(kind: str) -> None:
    cls = step_class(kind)
    assert cls is not None
    assert f"{cls.__module__}:{cls.__name__}" == JOURNAL_KINDS[kind]


def test_unknown_kind() -> None:
    assert step_class("geneve") is None
    with pytest.raises(ValueError, match="unknown step kind 'geneve' in the journal"):
        step_from_record({"kind": "geneve"})


def test_a_step_comes_back_from_its_record() -> None:
    state = AddressState("192.0.2.1", 32, label="lo")
    step: Step = BY_NAME["address"].make_step("address:lo:192.0.2.1/32", None, state, Desired())
    assert step.phase is Phase.ADD_ADDRESSES
    assert step_from_record(step.to_record()) == step


def test_a_route_step_comes_back_from_its_record_and_undoes_itself() -> None:
    state = RouteState("198.18.5.0/24", "lo", priority=7)
    resource = "route:local:local:198.18.5.0/24"
    step: Step = BY_NAME["route"].make_step(resource, state, None, Desired())
    assert step.phase is Phase.REMOVE_ADDRESSES  # before the ARP sysctls are relaxed
    assert step_from_record(step.to_record()) == step
    assert step.inverse().after == state
    added = BY_NAME["route"].make_step(resource, None, RouteState("198.18.5.0/24", "lo"), Desired())
    assert added.phase is Phase.ADD_ADDRESSES  # after the ARP sysctls are hardened
