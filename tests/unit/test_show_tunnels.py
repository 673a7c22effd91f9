"""`show`'s tunnel side from plain data: what dsrctl.linux.decap_side makes of the host's
decap devices, fou ports, modules and MSS clamp and of the records, and how
dsrctl.render_tunnels prints it. The real kernel and nft: tests/netns/test_show_tunnels.py."""

from __future__ import annotations

import io
from typing import Any

from dsrctl.linux.decap_side import describe_decap_side, has_tunnel_side, recorded
from dsrctl.render import Output, render_show
from dsrctl.render_tunnels import render_tunnels
from providers.linux.decap_side import DecapSide, device_module
from providers.model import ClampRule, ModuleState, MssClamp, TunnelState
from state.ownership import OwnershipRecord

SINCE = "2026-12-05T09:00:00+0000"


def record(created: bool, original: Any = None) -> OwnershipRecord:
    return OwnershipRecord(created, original, SINCE)


def text(report: dict[str, Any]) -> list[str]:
    stream = io.StringIO()
    render_tunnels(Output(stream, color=False), report)
    return stream.getvalue().splitlines()


GUE_HOST = DecapSide(
    devices={
        "tunl0": TunnelState("ipip", external=False, up=True),
        "gre0": TunnelState("gre", external=False, up=False),
    },
    fou_ports={19523: "gue", 5555: "direct"},
    modules={
        "fou": ModuleState(loaded=True, refcnt=1, users=("fou:5555", "fou:19523")),
        "ipip": ModuleState(loaded=True, refcnt=2, users=("module:ip_gre",)),
        "ip_gre": ModuleState(loaded=True, refcnt=0),
        "ip6_tunnel": ModuleState(loaded=False),
    },
    mss=MssClamp(ClampRule(1440, ("198.18.5.0/24", "192.0.2.100/32")), None, ("chain: x",)),
)
GUE_RECORDS = {
    "tunnel:tunl0": record(False, {"kind": "ipip", "external": False, "up": False}),
    "tunnel:dsrip6": record(True),
    "fou:19523": record(True),
    "fou:6080": record(True),
    "module:fou": record(True, None),
    "module:ipip": record(False, "loaded"),
    "module:ip6-tunnel": record(True, None),
    "nft:mss": record(True),
    "address:lo:192.0.2.100/32": record(True),
}


def test_devices_ports_modules_and_clamp_as_data() -> None:
    data = describe_decap_side(GUE_HOST, GUE_RECORDS)
    assert data["devices"] == [
        {
            "name": "dsrip6",
            "kind": None,  # dsrctl created it: the record keeps no kind
            "external": None,
            "fallback": False,
            "up": None,
            "on_host": False,
            "managed": True,
            "created_by_dsrctl": True,
        },
        {
            "name": "gre0",
            "kind": "gre",
            "external": False,
            "fallback": True,
            "up": False,
            "on_host": True,
            "managed": False,
            "created_by_dsrctl": False,
        },
        {
            "name": "tunl0",
            "kind": "ipip",
            "external": False,
            "fallback": True,
            "up": True,
            "on_host": True,
            "managed": True,
            "created_by_dsrctl": False,
        },
    ]
    ports = [tuple(port.values()) for port in data["fou_ports"]]
    assert list(data["fou_ports"][0]) == ["port", "type", "on_host", "managed", "created_by_dsrctl"]
    assert ports == [
        (5555, "direct", True, False, False),
        (6080, None, False, True, True),
        (19523, "gue", True, True, True),
    ]
    modules = [
        (m["name"], m["loaded"], m["managed"], m["loaded_by_dsrctl"]) for m in data["modules"]
    ]
    assert modules == [
        ("fou", True, True, True),
        ("ip6_tunnel", False, True, True),  # the record says ip6-tunnel: the same module
        ("ip_gre", True, False, False),
        ("ipip", True, True, False),
    ]  # fmt: skip
    assert data["mss"] == {
        "on_host": True,
        "ipv4": {"mss": 1440, "sources": ["198.18.5.0/24", "192.0.2.100/32"]},
        "ipv6": None,
        "other": ["chain: x"],
        "note": None,
        "managed": True,
        "created_by_dsrctl": True,
    }


def test_devices_ports_modules_and_clamp_as_text() -> None:
    assert text(describe_decap_side(GUE_HOST, GUE_RECORDS)) == [
        "Tunnel mode (decap devices, fou ports, kernel modules, MSS clamp) on the host and in "
        "dsrctl's records:",
        "  decap devices:",
        "    dsrip6  missing from the host, managed by dsrctl, created by dsrctl: yes",
        "    gre0  gre fallback, down, not managed by dsrctl",
        "    tunl0  ipip fallback, up, managed by dsrctl, created by dsrctl: no (there before "
        "dsrctl)",
        "  fou ports (IPv4):",
        "    5555  direct, not managed by dsrctl",
        "    6080  missing from the host, managed by dsrctl, created by dsrctl: yes",
        "    19523  gue, managed by dsrctl, created by dsrctl: yes",
        "  kernel modules:",
        "    fou  loaded, in use by fou:5555, fou:19523, managed by dsrctl, loaded by dsrctl: yes",
        "    ip6_tunnel  not loaded, managed by dsrctl, loaded by dsrctl: yes",
        "    ip_gre  loaded, not managed by dsrctl",
        "    ipip  loaded, in use by module:ip_gre, managed by dsrctl, loaded by dsrctl: no "
        "(loaded before dsrctl)",
        "  MSS clamp (nftables table inet dsrctl): managed by dsrctl, created by dsrctl: yes",
        "    IPv4  MSS 1440  for 198.18.5.0/24, 192.0.2.100/32",
        "    IPv6  absent",
        "    other (not dsrctl's): chain: x",
    ]


def test_what_cannot_be_read_is_said_in_one_line_each() -> None:
    side = DecapSide(
        devices={"dsrgpe0": TunnelState("vxlan-gpe", external=True, up=True)},
        fou_ports=None,
        fou_note="cannot read the fou ports: run dsrctl show as root (it needs CAP_NET_ADMIN)",
        modules={"vxlan": ModuleState(loaded=True, builtin=True, users=("dsrgpe0",))},
        mss=None,
        mss_read=False,
        mss_note="not read: run dsrctl show as root (it needs CAP_NET_ADMIN)",
    )
    records = {"tunnel:dsrgpe0": record(True), "fou:19523": record(True), "nft:mss": record(True)}
    data = describe_decap_side(side, records)
    assert data["fou_ports"][0]["on_host"] is None
    assert data["mss"]["on_host"] is None
    assert text(data)[1:] == [
        "  decap devices:",
        "    dsrgpe0  vxlan-gpe external, up, managed by dsrctl, created by dsrctl: yes",
        "  fou ports (IPv4):",
        "    19523  not read, managed by dsrctl, created by dsrctl: yes",
        "    ! cannot read the fou ports: run dsrctl show as root (it needs CAP_NET_ADMIN)",
        "  kernel modules:",
        "    vxlan  loaded, built in, in use by dsrgpe0, not managed by dsrctl",
        "  MSS clamp (nftables table inet dsrctl): not read: run dsrctl show as root (it needs "
        "CAP_NET_ADMIN); managed by dsrctl, created by dsrctl: yes",
    ]


def test_a_clamp_missing_from_the_host_and_one_never_there() -> None:
    side = DecapSide(devices={"tunl0": TunnelState("ipip", external=False, up=False)})
    missing = describe_decap_side(side, {"nft:mss": record(True)})
    assert text(missing)[-1] == (
        "  MSS clamp (nftables table inet dsrctl): missing from the host, managed by dsrctl, "
        "created by dsrctl: yes"
    )
    absent = describe_decap_side(side, {})
    assert absent["fou_ports"] == [] and absent["modules"] == []
    assert text(absent) == [
        "Tunnel mode (decap devices, fou ports, kernel modules, MSS clamp) on the host and in "
        "dsrctl's records:",
        "  decap devices:",
        "    tunl0  ipip fallback, down, not managed by dsrctl",
        "  MSS clamp (nftables table inet dsrctl): absent, not managed by dsrctl",
    ]


def test_only_a_decap_device_or_a_tunnel_record_makes_a_tunnel_side() -> None:
    plain = ["address:lo:192.0.2.100/32", "sysctl:net.ipv4.conf.all.arp_ignore", "route:x"]
    assert not has_tunnel_side(plain, ())
    assert has_tunnel_side(plain, ("tunl0",))
    for resource in ("tunnel:dsrgpe0", "module:vxlan", "fou:19523", "nft:mss"):
        assert has_tunnel_side([*plain, resource], ())
    assert recorded(["tunnel:a", "module:vxlan", "tunnel:b"], "tunnel") == ["a", "b"]


def test_the_module_of_each_device_kind() -> None:
    kinds = ["ipip", "gre", "ip6tnl", "ip6gre", "vxlan-gpe", "veth"]
    modules = [device_module(TunnelState(kind, True, True)) for kind in kinds]
    assert modules == ["ipip", "ip_gre", "ip6_tunnel", "ip6_gre", "vxlan", None]


def test_show_without_a_tunnel_side_prints_what_it_did_before() -> None:
    report: dict[str, Any] = {"platform": "linux", "sysctl": {}, "interfaces": [], "ranges": []}
    before = io.StringIO()
    render_show(Output(before, color=False), report)
    assert before.getvalue() == "platform: linux\n"
    report["tunnels"] = describe_decap_side(DecapSide(), {"nft:mss": record(True)})
    after = io.StringIO()
    render_show(Output(after, color=False), report)
    assert after.getvalue().splitlines()[1].startswith("Tunnel mode (decap devices")
