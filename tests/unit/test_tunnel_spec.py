"""[[tunnel]]: defaults per kind, derived values, and every refusal naming file, key, value."""

from __future__ import annotations

from typing import Any, cast

import pytest

from dsrctl.errors import SpecError
from dsrctl.spec import parse_spec
from dsrctl.tunnels import TunnelSpec
from dsrctl.windows.checks import check_windows_spec
from providers.windows.host import WindowsHost

PATH = "/etc/dsrctl/dsrctl.toml"


def spec_with(*tunnels: dict[str, Any], **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"version": 1, "vip": [{"address": "192.0.2.100"}]}
    data["tunnel"] = list(tunnels)
    data.update(extra)
    return data


def refuse(data: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as caught:
        parse_spec(data, PATH)
    text = str(caught.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize(
    ("kind", "name", "port", "family", "fallback", "overhead", "modules"),
    [
        ("ipip", "tunl0", None, 4, True, 20, ("ipip",)),
        ("ip6ip6", "ip6tnl0", None, 6, True, 40, ("ip6_tunnel",)),
        ("gre", "gre0", None, 4, True, 24, ("ip_gre",)),
        ("ip6gre", "ip6gre0", None, 6, True, 44, ("ip6_gre",)),
        ("gue", "tunl0", 19523, 4, True, 32, ("fou", "ipip")),
        ("vxlan-gpe", "dsrgpe0", None, 4, False, 36, ("vxlan",)),
    ],
)
def test_defaults_per_kind(
    kind: str,
    name: str,
    port: int | None,
    family: int,
    fallback: bool,
    overhead: int,
    modules: tuple[str, ...],
) -> None:
    spec = parse_spec(spec_with({"kind": kind}), PATH)
    assert spec.tunnels == (TunnelSpec(kind=kind, name=name, port=port, mss=None, uplink=None),)
    tunnel = spec.tunnels[0]
    assert (tunnel.family, tunnel.fallback, tunnel.overhead, tunnel.modules) == (
        family,
        fallback,
        overhead,
        modules,
    )


def test_no_tunnels_by_default() -> None:
    assert parse_spec({"version": 1, "vip": [{"address": "192.0.2.100"}]}, PATH).tunnels == ()


def test_named_devices_are_external_and_several_kinds_may_coexist() -> None:
    spec = parse_spec(
        spec_with(
            {"kind": "gue", "name": "dsrgue0", "port": 6080, "mss": 1400, "uplink": "eth0"},
            {"kind": "ip6ip6", "name": "dsrtun6"},
            {"kind": "gre"},
            {"kind": "vxlan-gpe"},
        ),
        PATH,
    )
    gue, ip6, gre, gpe = spec.tunnels
    assert gue == TunnelSpec("gue", "dsrgue0", 6080, 1400, "eth0")
    assert not gue.fallback and gue.modules == ("fou", "ipip")
    assert (ip6.name, ip6.fallback, ip6.family) == ("dsrtun6", False, 6)
    assert gre.fallback and gpe.name == "dsrgpe0"


@pytest.mark.parametrize(
    ("tunnels", "expected"),
    [
        ([{}], "tunnel[0].kind: required key is missing"),
        ([{"kind": "sit"}], 'tunnel[0].kind = "sit": unknown tunnel kind; known: "ipip"'),
        ([{"kind": "IPIP"}], 'tunnel[0].kind = "IPIP": unknown tunnel kind'),
        ([{"kind": "ipip", "port": 19523}], "tunnel[0].port = 19523: only a gue tunnel has a port"),
        (
            [{"kind": "vxlan-gpe", "port": 4789}],
            "tunnel[0].port = 4789: only a gue tunnel has a port; VXLAN-GPE always uses UDP "
            "port 4790",
        ),
        ([{"kind": "gue", "port": 0}], "tunnel[0].port = 0: out of range: a UDP port is 1-65535"),
        ([{"kind": "gue", "port": 65536}], "tunnel[0].port = 65536: out of range"),
        ([{"kind": "gue", "port": "19523"}], 'tunnel[0].port = "19523": must be an integer'),
        ([{"kind": "ipip", "mss": 535}], "tunnel[0].mss = 535: out of range: a TCP MSS here is"),
        ([{"kind": "ipip", "mss": 65496}], "tunnel[0].mss = 65496: out of range"),
        ([{"kind": "ipip", "name": "dsr tun"}], 'tunnel[0].name = "dsr tun": interface names'),
        ([{"kind": "ipip", "name": ""}], 'tunnel[0].name = "": an interface name cannot be empty'),
        ([{"kind": "ipip", "name": "x" * 16}], "interface names are at most 15 characters"),
        ([{"kind": "ipip", "name": "-tun"}], "cannot begin with '-'"),
        ([{"kind": "ipip", "name": "lo"}], "tunnel[0].name = \"lo\": 'lo' is the loopback"),
        (
            [{"kind": "ipip", "name": "gre0"}],
            "tunnel[0].name = \"gre0\": 'gre0' is the device the ip_gre module creates; give the "
            "ipip tunnel another name (or 'tunl0'",
        ),
        ([{"kind": "vxlan-gpe", "name": "tunl0"}], "the device the ipip module creates"),
        ([{"kind": "gre", "name": "gretap0"}], "the device the ip_gre module creates"),
        ([{"kind": "ipip", "uplink": "eth 0"}], 'tunnel[0].uplink = "eth 0": interface names'),
        (
            [{"kind": "ipip", "name": "dsrtun0", "uplink": "dsrtun0"}],
            "it cannot be the decap device",
        ),
        ([{"kind": "ipip", "mtu": 1480}], "tunnel[0].mtu = 1480: unknown key"),
        (
            [{"kind": "ip6gre", "outer": 4}],
            "tunnel[0].outer = 4: only a vxlan-gpe tunnel has a choice of outer IP version; "
            "ip6gre's is IPv6",
        ),
        ([{"kind": "vxlan-gpe", "outer": 5}], "tunnel[0].outer = 5: an IP version: 4 or 6"),
        ([{"kind": "vxlan-gpe", "outer": "6"}], 'tunnel[0].outer = "6": must be an integer'),
        (
            [{"kind": "ipip"}, {"kind": "ipip", "name": "dsrtun0"}],
            'tunnel[1].kind = "ipip": a second ipip tunnel (the first is at tunnel[0])',
        ),
        (
            [{"kind": "ipip", "name": "dsrtun0"}, {"kind": "gue", "name": "dsrtun0"}],
            'tunnel[1].kind = "gue": a gue tunnel and an ipip tunnel both decapsulate into an '
            "ipip device",
        ),
        ([{"kind": "gue"}, {"kind": "ipip"}], "declare only the gue tunnel"),
        (
            [{"kind": "gre", "name": "dsrtun0"}, {"kind": "ip6gre", "name": "dsrtun0"}],
            'tunnel[1].name = "dsrtun0": duplicate tunnel device: already given at tunnel[0]',
        ),
        (
            [{"kind": "vxlan-gpe", "name": "dsrtun0"}, {"kind": "ipip", "name": "dsrtun0"}],
            "duplicate tunnel device",
        ),
    ],
)
def test_refusals(tunnels: list[dict[str, Any]], expected: str) -> None:
    text = refuse(spec_with(*tunnels))
    assert text.startswith(PATH + ": ")
    assert expected in text


def test_vxlan_gpe_over_ipv6_has_the_ipv6_family_and_20_bytes_more() -> None:
    gpe6 = parse_spec(spec_with({"kind": "vxlan-gpe", "outer": 6}), PATH).tunnels[0]
    assert (gpe6.family, gpe6.overhead, gpe6.inner) == (6, 56, (4, 6))
    # outer = 4 spelled out is the default: the same spec
    gpe4 = parse_spec(spec_with({"kind": "vxlan-gpe", "outer": 4}), PATH).tunnels[0]
    assert gpe4 == parse_spec(spec_with({"kind": "vxlan-gpe"}), PATH).tunnels[0]
    assert (gpe4.family, gpe4.overhead) == (4, 36)


def test_tunnel_must_be_an_array_of_tables() -> None:
    data = spec_with()
    data["tunnel"] = {"kind": "ipip"}
    assert "tunnel = " in refuse(data) and "must be an array of tables ([[tunnel]])" in refuse(data)


WINDOWS = {"loopback": "LO", "uplinks": ["LAN"]}


def test_windows_spec_refuses_tunnels() -> None:
    text = refuse(spec_with({"kind": "gue"}, windows=WINDOWS))
    assert text == (
        f'{PATH}: tunnel[0].kind = "gue": [[tunnel]] is Linux only (tunnel-mode DSR '
        "decapsulates in the Linux kernel); remove the [[tunnel]] tables from a spec for Windows"
    )


def test_platform_windows_refuses_tunnels_before_asking_the_host() -> None:
    spec = parse_spec(spec_with({"kind": "ipip"}), PATH)
    with pytest.raises(SpecError) as caught:
        check_windows_spec(spec, cast(WindowsHost, None))  # the host is never asked
    assert 'tunnel[0].kind = "ipip": [[tunnel]] is Linux only' in str(caught.value)
