"""The [[tunnel]] resource kinds (module, tunnel, fou) with plain data: desired state from
the spec, plan order and phases, the way back of what dsrctl created, modules that stay
because something uses them; and the provider's decoders fed with bytes."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest

from dsrctl.diff import build_plan
from dsrctl.kinds.registry import step_from_record
from dsrctl.linux.desired import build_desired, read_scope
from dsrctl.model import DIRECTORY, HostState, TunnelState
from dsrctl.plan import Plan
from dsrctl.spec import Spec, parse_spec
from dsrctl.steps import Phase
from providers.linux import kmod, rtnl
from providers.model import ModuleState
from state.ownership import Ownership

IGNORE = "net.ipv4.conf.all.arp_ignore"
ANNOUNCE = "net.ipv4.conf.all.arp_announce"
ROOT = "/"
MODULES_FILE = "/etc/modules-load.d/dsrctl.conf"


def make_spec(*tunnels: dict[str, Any], persist: bool = False) -> Spec:
    return parse_spec(
        {
            "version": 1,
            "vip": [{"address": "192.0.2.100"}],
            "tunnel": list(tunnels),
            "linux": {"persist": {"enabled": persist}},
        },
        "/etc/dsrctl/dsrctl.toml",
    )


def host(
    modules: dict[str, ModuleState] | None = None,
    tunnels: dict[str, TunnelState] | None = None,
    fou: dict[int, str] | None = None,
) -> HostState:
    return HostState(
        sysctls={IGNORE: 1, ANNOUNCE: 2},
        addresses={"lo": {}},
        modules=modules or {},
        tunnels=tunnels or {},
        fou_ports=fou or {},
    )


def plan_for(spec: Spec, current: HostState, ownership: Ownership | None = None) -> Plan:
    ownership = ownership or Ownership()
    plan = build_plan(build_desired(spec, ownership), current, ownership)
    # The tunnel kinds' steps: the VIPs and the sysctls (rp_filter 0 for an IPv4 decap
    # device: tests/unit/test_effective_sysctls.py) are others' to test.
    return Plan(
        steps=tuple(s for s in plan.steps if not s.resource.startswith(("address:", "sysctl:"))),
        notes=plan.notes,
    )


def steps(plan: Plan) -> list[tuple[str, str, str]]:
    return [(s.phase.label, s.action, s.resource) for s in plan.steps]


def test_gue_on_a_fresh_host_loads_modules_sets_tunl0_up_and_adds_the_port() -> None:
    spec = make_spec({"kind": "gue"})
    plan = plan_for(spec, host({"fou": ModuleState(False), "ipip": ModuleState(False)}))
    assert steps(plan) == [
        ("load-modules", "create", "module:fou"),
        ("load-modules", "create", "module:ipip"),
        ("add-tunnels", "create", "fou:19523"),
        ("add-tunnels", "create", "tunnel:tunl0"),
    ]
    assert plan.steps[3].after == TunnelState("ipip", external=False, up=True)
    assert plan.steps[2].after == "gue"


def test_phases_put_devices_before_sysctls_and_addresses_and_remove_them_after() -> None:
    order = list(Phase)
    assert order.index(Phase.LOAD_MODULES) < order.index(Phase.ADD_TUNNELS)
    assert order.index(Phase.ADD_TUNNELS) < order.index(Phase.HARDEN)
    assert order.index(Phase.ADD_TUNNELS) < order.index(Phase.ADD_ADDRESSES)
    assert order.index(Phase.REMOVE_ADDRESSES) < order.index(Phase.REMOVE_TUNNELS)
    assert order.index(Phase.RELAX) < order.index(Phase.REMOVE_TUNNELS)
    assert order.index(Phase.REMOVE_TUNNELS) < order.index(Phase.UNLOAD_MODULES)


@pytest.mark.parametrize(
    ("tunnel", "name", "state"),
    [
        ({"kind": "ipip", "name": "dsrtun0"}, "dsrtun0", TunnelState("ipip", True, True)),
        ({"kind": "gre", "name": "dsrgre0"}, "dsrgre0", TunnelState("gre", True, True)),
        ({"kind": "ip6ip6", "name": "dsrtun6"}, "dsrtun6", TunnelState("ip6tnl", True, True)),
        ({"kind": "ip6gre"}, "ip6gre0", TunnelState("ip6gre", False, True)),
        ({"kind": "vxlan-gpe"}, "dsrgpe0", TunnelState("vxlan-gpe", True, True)),
    ],
)
def test_the_device_each_kind_wants(tunnel: dict[str, Any], name: str, state: TunnelState) -> None:
    desired = build_desired(make_spec(tunnel), Ownership())
    assert desired.tunnels == {name: state}
    assert f"tunnel:{name}" in desired.spec_resources


def test_converged_host_has_no_steps_and_loaded_modules_are_not_reloaded() -> None:
    spec = make_spec({"kind": "ipip", "name": "dsrtun0"})
    current = host({"ipip": ModuleState(True)}, {"dsrtun0": TunnelState("ipip", True, True)})
    assert steps(plan_for(spec, current)) == []


def test_a_device_set_down_is_set_up_again() -> None:
    spec = make_spec({"kind": "ipip"})
    current = host({"ipip": ModuleState(True)}, {"tunl0": TunnelState("ipip", False, False)})
    plan = plan_for(spec, current)
    assert steps(plan) == [("add-tunnels", "update", "tunnel:tunl0")]


def test_read_scope_names_the_modules_devices_and_ports() -> None:
    spec = make_spec({"kind": "gue", "port": 6080})
    desired = build_desired(spec, Ownership())
    scope = read_scope(spec, desired, Ownership())
    assert (scope.modules, scope.tunnels, scope.fou_ports) == (("fou", "ipip"), ("tunl0",), (6080,))


def test_modules_load_file_is_persisted_under_the_root(tmp_path: Path) -> None:
    spec = parse_spec(
        {
            "version": 1,
            "vip": [{"address": "192.0.2.100"}],
            "tunnel": [{"kind": "gue"}, {"kind": "ip6gre"}],
            "linux": {"persist": {"root": str(tmp_path)}},
        },
        "/etc/dsrctl/dsrctl.toml",
    )
    desired = build_desired(spec, Ownership())
    path = f"{tmp_path}{MODULES_FILE}"
    state = desired.files[path]
    assert state is not None
    assert state.content.decode().splitlines()[2:] == ["fou", "ip6_gre", "ipip"]
    assert desired.dirs[f"{tmp_path}/etc/modules-load.d"] == DIRECTORY
    assert f"file:{path}" in desired.spec_resources
    # without tunnels, no such file
    plain = parse_spec(
        {
            "version": 1,
            "vip": [{"address": "192.0.2.100"}],
            "linux": {"persist": {"root": str(tmp_path)}},
        },
        "/etc/dsrctl/dsrctl.toml",
    )
    assert path not in build_desired(plain, Ownership()).files


def _owned(*resources: str, original: Any = None, created: bool = True) -> Ownership:
    ownership = Ownership()
    for resource in resources:
        ownership.remember(resource, created=created, original=original)
    return ownership


def test_dropping_a_tunnel_removes_what_dsrctl_created_after_the_addresses() -> None:
    ownership = _owned("module:vxlan", "tunnel:dsrgpe0", "fou:19523", "module:fou")
    current = host(
        {
            "vxlan": ModuleState(True, users=("dsrgpe0",)),
            "fou": ModuleState(True, users=("fou:19523",)),
        },
        {"dsrgpe0": TunnelState("vxlan-gpe", True, True)},
        {19523: "gue"},
    )
    plan = plan_for(make_spec(), current, ownership)
    assert steps(plan) == [
        ("remove-tunnels", "delete", "fou:19523"),
        ("remove-tunnels", "delete", "tunnel:dsrgpe0"),
        ("unload-modules", "delete", "module:fou"),
        ("unload-modules", "delete", "module:vxlan"),
    ]
    assert plan.steps[1].note == "created by dsrctl, no longer in the spec"


def test_a_module_in_use_by_something_else_stays_loaded_with_a_note() -> None:
    ownership = _owned("module:ipip", "tunnel:dsrtun0")
    current = host(
        {"ipip": ModuleState(True, users=("dsrtun0", "theirs0"))},
        {"dsrtun0": TunnelState("ipip", True, True)},
    )
    plan = plan_for(make_spec(), current, ownership)
    assert steps(plan) == [("remove-tunnels", "delete", "tunnel:dsrtun0")]
    assert any(
        "kernel module ipip was loaded by dsrctl and is no longer needed, but stays loaded: "
        "in use by theirs0" in note
        for note in plan.notes
    )


def test_a_built_in_module_is_never_unloaded() -> None:
    plan = plan_for(
        make_spec(), host({"vxlan": ModuleState(True, builtin=True)}), _owned("module:vxlan")
    )
    assert steps(plan) == []
    assert any("stays loaded: it is built in" in note for note in plan.notes)


def test_a_fallback_device_goes_with_its_module_or_is_set_down() -> None:
    tunl0 = TunnelState("ipip", False, True)
    # dsrctl loaded ipip: tunl0 goes with it (set down, then the module unloads)
    current = host({"ipip": ModuleState(True)}, {"tunl0": tunl0})
    plan = plan_for(make_spec(), current, _owned("module:ipip", "tunnel:tunl0"))
    assert steps(plan) == [
        ("remove-tunnels", "delete", "tunnel:tunl0"),
        ("unload-modules", "delete", "module:ipip"),
    ]
    # ipip was loaded before dsrctl: tunl0 stays, down as it was
    ownership = _owned(
        "tunnel:tunl0", created=False, original=TunnelState("ipip", False, False).to_record()
    )
    ownership.remember("module:ipip", created=False, original="loaded")
    plan = plan_for(make_spec(), current, ownership)
    assert steps(plan) == [("remove-tunnels", "update", "tunnel:tunl0")]
    assert plan.steps[0].after == TunnelState("ipip", False, False)
    # dsrctl set up a tunl0 its module brought, and the module is someone else's now
    current = host({"ipip": ModuleState(True, users=("theirs0",))}, {"tunl0": tunl0})
    plan = plan_for(make_spec(), current, _owned("module:ipip", "tunnel:tunl0"))
    assert steps(plan) == [("remove-tunnels", "update", "tunnel:tunl0")]
    assert plan.steps[0].after == TunnelState("ipip", False, False)


def test_a_fou_port_that_was_there_before_is_left_alone() -> None:
    ownership = _owned("fou:19523", created=False, original="gue")
    assert steps(plan_for(make_spec(), host(fou={19523: "gue"}), ownership)) == []


def test_steps_come_back_from_their_journal_records() -> None:
    spec = make_spec({"kind": "gue", "name": "dsrgue0"})
    plan = plan_for(spec, host({"fou": ModuleState(False), "ipip": ModuleState(False)}))
    assert len(plan.steps) == 4
    for step in plan.steps:
        assert step_from_record(step.to_record()) == step
        undo = step.inverse()
        assert (undo.before, undo.after, undo.phase) == (step.after, step.before, step.phase)


# -- the provider's decoders, fed with bytes ------------------------------------------
def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _linkinfo(kind: bytes, data: bytes) -> bytes:
    return _attr(rtnl.IFLA_INFO_KIND, kind) + _attr(rtnl.IFLA_INFO_DATA, data)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, (None, False, False)),
        (_linkinfo(b"ipip", _attr(19, b"")), ("ipip", True, False)),
        (_linkinfo(b"ipip", _attr(9, b"\4")), ("ipip", False, False)),
        (_linkinfo(b"gre", _attr(18, b"")), ("gre", True, False)),
        (_linkinfo(b"ip6tnl", _attr(19, b"") + _attr(9, b"\x29")), ("ip6tnl", True, False)),
        (_linkinfo(b"ip6gre", _attr(18, b"")), ("ip6gre", True, False)),
        (_linkinfo(b"vxlan", _attr(25, b"\1") + _attr(27, b"")), ("vxlan", True, True)),
        (_linkinfo(b"vxlan", _attr(25, b"\0")), ("vxlan", False, False)),  # a u8, always there
        (_attr(rtnl.IFLA_INFO_KIND, b"veth"), ("veth", False, False)),
    ],
)
def test_link_info_decoding(raw: bytes | None, expected: tuple[str | None, bool, bool]) -> None:
    assert rtnl._link_info(raw) == expected


def test_module_lists_are_read_like_modprobe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = "6.1.0-test"
    directory = tmp_path / release
    directory.mkdir()
    (directory / "modules.builtin").write_text("kernel/net/ipv4/udp_tunnel.ko\n")
    (directory / "modules.dep").write_text(
        "kernel/net/ipv4/ipip.ko: kernel/net/ipv4/tunnel4.ko kernel/net/ipv4/ip_tunnel.ko\n"
        "kernel/net/ipv6/ip6_gre.ko.xz: kernel/net/ipv6/ip6_tunnel.ko.xz\n"
        "kernel/net/ipv4/fou.ko.zst:\n"
    )
    monkeypatch.setattr(kmod, "release", lambda: release)
    kmod._listed.cache_clear()
    sys_module = tmp_path / "sys"
    (sys_module / "vxlan").mkdir(parents=True)
    try:
        for name in ("ipip", "ip6_gre", "ip6-gre", "fou", "udp_tunnel", "vxlan"):
            assert kmod.available(name, str(tmp_path), str(sys_module)), name
        for name in ("ip_gre", "tunnel4", "sit"):
            assert not kmod.available(name, str(tmp_path), str(sys_module)), name
    finally:
        kmod._listed.cache_clear()


def test_a_module_held_only_by_a_module_that_goes_too_is_unloaded() -> None:
    ownership = _owned("module:ip6_gre", "module:ip6_tunnel")
    current = host(
        {
            "ip6_gre": ModuleState(True),
            "ip6_tunnel": ModuleState(True, refcnt=1, users=("module:ip6_gre",)),
        }
    )
    plan = plan_for(make_spec(), current, ownership)
    assert steps(plan) == [
        ("unload-modules", "delete", "module:ip6_gre"),
        ("unload-modules", "delete", "module:ip6_tunnel"),
    ]
    # held by a module that stays (someone else's): it stays too
    plan = plan_for(make_spec(), current, _owned("module:ip6_tunnel"))
    assert steps(plan) == []
    assert any("stays loaded: in use by module:ip6_gre" in note for note in plan.notes)
