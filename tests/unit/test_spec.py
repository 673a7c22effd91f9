"""The spec: every invalid spec is refused with file, key path and value; valid ones are
canonicalised."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from dsrctl.errors import SpecError
from dsrctl.spec import load_spec, parse_spec

BASE: dict[str, Any] = {"version": 1, "vip": [{"address": "192.0.2.100"}]}


def spec_with(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"version": 1, "vip": [{"address": "192.0.2.100"}]}
    data.update(changes)
    return data


def refuse(data: dict[str, Any]) -> SpecError:
    with pytest.raises(SpecError) as caught:
        parse_spec(data, "/etc/dsrctl/dsrctl.toml")
    return caught.value


def test_minimal_spec_gets_defaults() -> None:
    spec = parse_spec(BASE, "s.toml")
    assert spec.linux.interface == "lo"
    assert spec.linux.arp_ignore == 1
    assert spec.linux.arp_announce == 2
    assert spec.linux.persist.enabled is True
    assert spec.linux.persist.sysctl_file == "/etc/sysctl.d/90-dsrctl.conf"
    assert spec.linux.persist.addresses == "auto"
    assert spec.linux.persist.root == "/"
    assert [v.cidr for v in spec.vips] == ["192.0.2.100/32"]
    assert spec.linux.all_sysctls() == {
        "net.ipv4.conf.all.arp_ignore": 1,
        "net.ipv4.conf.all.arp_announce": 2,
    }


def test_vips_are_canonical_and_sorted() -> None:
    spec = parse_spec(
        spec_with(
            vip=[
                {"address": "2001:DB8:0:0::0100"},
                {"address": "198.18.0.2", "label": "lo:2"},
                {"address": "192.0.2.100", "prefix": 32},
            ]
        ),
        "s.toml",
    )
    assert [v.cidr for v in spec.vips] == ["192.0.2.100/32", "198.18.0.2/32", "2001:db8::100/128"]
    assert spec.vips[1].label == "lo:2"
    assert isinstance(spec.vips[2].address, ipaddress.IPv6Address)


def test_persist_backend_names_and_the_networkd_alias() -> None:
    for name in ("systemd-networkd", "networkd"):
        spec = parse_spec(spec_with(linux={"persist": {"addresses": name}}), "s.toml")
        assert spec.linux.persist.addresses == "systemd-networkd"  # old specs keep working
    for name in ("ifcfg", "networkmanager", "ifupdown", "netplan", "systemd-unit", "none"):
        spec = parse_spec(spec_with(linux={"persist": {"addresses": name}}), "s.toml")
        assert spec.linux.persist.addresses == name
    # An error names the value as the spec spells it.
    error = refuse(spec_with(linux={"persist": {"enabled": False, "addresses": "networkd"}}))
    assert str(error).startswith(
        '/etc/dsrctl/dsrctl.toml: linux.persist.addresses = "networkd": persistence is disabled'
    )


@pytest.mark.parametrize(
    ("data", "key", "words"),
    [
        ({"vip": [{"address": "192.0.2.1"}]}, "version", "required key is missing"),
        (spec_with(version=2), "version", "unknown spec version"),
        (spec_with(version="1"), "version", "must be an integer, not a string"),
        (spec_with(version=True), "version", "must be an integer, not a boolean"),
        ({"version": 1}, "vip", "at least one [[vip]]"),
        (spec_with(vip=[]), "vip", "at least one [[vip]]"),
        (spec_with(vip={"address": "192.0.2.1"}), "vip", "array of tables"),
        (spec_with(vipp=1), "vipp", "did you mean 'vip'"),
        (spec_with(vip=[{"adress": "192.0.2.1"}]), "vip[0].address", "'adress' a misspelling"),
        (
            spec_with(linux={"sysctl": {"net": {"ipv4": {"ip_forward": 1}}}}),
            "linux.sysctl.net",
            "quote the whole name",
        ),
        (
            spec_with(linux={"sysctl": {"net.ipv4.conf.default.arp_ignore": 8}}),
            'linux.sysctl."net.ipv4.conf.default.arp_ignore"',
            "drops off the network",
        ),
        (
            spec_with(linux={"persist": {"sysctl_file": "/etc/sysctl.conf"}}),
            "linux.persist.sysctl_file",
            "a file of its own",
        ),
        (spec_with(vip=[{"address": "192.0.2.1", "lable": "lo:1"}]), "vip[0].lable", "unknown"),
        (spec_with(vip=[{"address": "192.0.2.0/24"}]), "vip[0].address", "without CIDR"),
        (spec_with(vip=[{"address": "192.0.2.300"}]), "vip[0].address", "not an IPv4 or IPv6"),
        (spec_with(vip=[{"address": 3221225985}]), "vip[0].address", "must be a string"),
        (spec_with(vip=[{"address": "0.0.0.0"}]), "vip[0].address", "unspecified"),
        (spec_with(vip=[{"address": "::"}]), "vip[0].address", "unspecified"),
        (spec_with(vip=[{"address": "127.0.0.2"}]), "vip[0].address", "loopback range"),
        (spec_with(vip=[{"address": "::1"}]), "vip[0].address", "loopback range"),
        (spec_with(vip=[{"address": "224.0.0.5"}]), "vip[0].address", "multicast"),
        (spec_with(vip=[{"address": "ff02::1"}]), "vip[0].address", "multicast"),
        (spec_with(vip=[{"address": "169.254.1.1"}]), "vip[0].address", "link-local"),
        (spec_with(vip=[{"address": "fe80::1"}]), "vip[0].address", "link-local"),
        (spec_with(vip=[{"address": "255.255.255.255"}]), "vip[0].address", "broadcast"),
        (spec_with(vip=[{"address": "240.0.0.1"}]), "vip[0].address", "reserved"),
        (spec_with(vip=[{"address": "::ffff:192.0.2.1"}]), "vip[0].address", "IPv4-mapped"),
        (spec_with(vip=[{"address": "2001:db8::1%lo"}]), "vip[0].address", "scope"),
        (spec_with(vip=[{"address": "192.0.2.1", "prefix": 24}]), "vip[0].address", "host bits"),
        (spec_with(vip=[{"address": "2001:db8::1", "prefix": 64}]), "vip[0].address", "host bits"),
        (spec_with(vip=[{"address": "2001:db8::", "prefix": 31}]), "vip[0].prefix", "32-127"),
        (spec_with(vip=[{"address": "198.18.0.0", "prefix": 33}]), "vip[0].prefix", "8-31"),
        (spec_with(vip=[{"address": "10.0.0.0", "prefix": 7}]), "vip[0].prefix", "8-31"),
        (spec_with(vip=[{"address": "192.0.2.0", "prefix": 0}]), "vip[0].prefix", "8-31"),
        (
            spec_with(vip=[{"address": "192.0.2.0", "prefix": 24, "label": "lo:1"}]),
            "vip[0].label",
            "a range (/24) is a local route, not an address: it has no label",
        ),
        (
            spec_with(
                vip=[
                    {"address": "198.18.0.0", "prefix": 16},
                    {"address": "198.18.5.0", "prefix": 24},
                ]
            ),
            "vip[1].prefix",
            "range 198.18.5.0/24 overlaps range 198.18.0.0/16 given at vip[0]",
        ),
        (
            spec_with(
                vip=[
                    {"address": "198.18.5.0", "prefix": 24},
                    {"address": "198.18.5.0", "prefix": 24},
                ]
            ),
            "vip[1].address",
            "duplicate VIP: 198.18.5.0/24 is already given at vip[0]",
        ),
        (
            spec_with(
                vip=[{"address": "198.18.5.0", "prefix": 24}],
                windows={"loopback": "LO", "uplinks": ["LAN"]},
            ),
            "vip[0].prefix",
            "Windows cannot serve: netsh adds single addresses only",
        ),
        (
            spec_with(vip=[{"address": "2001:db8::1", "label": "lo:1"}]),
            "vip[0].label",
            "IPv4 addresses only",
        ),
        (
            spec_with(vip=[{"address": "192.0.2.1", "label": "lo:verylonglabel"}]),
            "vip[0].label",
            "at most 15",
        ),
        (spec_with(vip=[{"address": "192.0.2.1", "label": "lo: 1"}]), "vip[0].label", "ASCII"),
        (spec_with(vip=[{"address": "192.0.2.1", "label": "eth0:1"}]), "vip[0].label", "begin"),
        (
            spec_with(vip=[{"address": "192.0.2.1"}, {"address": "192.0.2.1"}]),
            "vip[1].address",
            "duplicate VIP",
        ),
        (
            spec_with(vip=[{"address": "2001:db8::a"}, {"address": "2001:DB8:0::A"}]),
            "vip[1].address",
            "already given at vip[0]",
        ),
        (spec_with(linux={"interface": "a" * 16}), "linux.interface", "at most 15"),
        (spec_with(linux={"interface": "eth/0"}), "linux.interface", "cannot contain"),
        (spec_with(linux={"interface": "lo:1"}), "linux.interface", "cannot contain"),
        (spec_with(linux={"interface": ""}), "linux.interface", "empty"),
        (spec_with(linux={"interface": ".."}), "linux.interface", "not interface names"),
        (spec_with(linux={"arp_ignore": 0}), "linux.arp_ignore", "answers ARP for any"),
        (spec_with(linux={"arp_ignore": 3}), "linux.arp_ignore", "scope global"),
        (spec_with(linux={"arp_ignore": 8}), "linux.arp_ignore", "drops off the network"),
        (spec_with(linux={"arp_ignore": 5}), "linux.arp_ignore", "reserved"),
        (spec_with(linux={"arp_ignore": 9}), "linux.arp_ignore", "out of range"),
        (spec_with(linux={"arp_announce": 1}), "linux.arp_announce", "uplink's subnet"),
        (spec_with(linux={"arp_announce": 0}), "linux.arp_announce", "any local address"),
        (spec_with(linux={"arp_announce": 3}), "linux.arp_announce", "out of range"),
        (spec_with(linux={"arp_ignore": 1.0}), "linux.arp_ignore", "not a float"),
        (spec_with(linux={"arp_ingore": 1}), "linux.arp_ingore", "did you mean 'arp_ignore'"),
        (spec_with(linux=[1]), "linux", "must be a table"),
        (
            spec_with(linux={"sysctl": {"net.ipv4.conf.eth0.rp_filter": 3}}),
            'linux.sysctl."net.ipv4.conf.eth0.rp_filter"',
            "out of range for rp_filter",
        ),
        (
            spec_with(linux={"sysctl": {"net.ipv4.conf.eth0.rp_filter": True}}),
            'linux.sysctl."net.ipv4.conf.eth0.rp_filter"',
            "integer or a string",
        ),
        (
            spec_with(linux={"sysctl": {"net.ipv4.conf.all.arp_ignore": 1}}),
            'linux.sysctl."net.ipv4.conf.all.arp_ignore"',
            "set linux.arp_ignore instead",
        ),
        (
            spec_with(linux={"sysctl": {"net/ipv4/conf/all/arp_announce": 2}}),
            'linux.sysctl."net/ipv4/conf/all/arp_announce"',
            "set linux.arp_announce instead",
        ),
        (
            spec_with(linux={"sysctl": {"net.ipv4.conf.eth0.arp_ignore": 8}}),
            'linux.sysctl."net.ipv4.conf.eth0.arp_ignore"',
            "max(all, interface)",
        ),
        (
            spec_with(linux={"sysctl": {"net.ipv4.conf.eth0.arp_ignore": 3}}),
            'linux.sysctl."net.ipv4.conf.eth0.arp_ignore"',
            "scope global",
        ),
        (
            spec_with(linux={"sysctl": {"net.ipv4.conf.eth0.arp_ignore": 6}}),
            'linux.sysctl."net.ipv4.conf.eth0.arp_ignore"',
            "reserved",
        ),
        (
            spec_with(linux={"sysctl": {"net..ipv4": 1}}),
            'linux.sysctl."net..ipv4"',
            "not a sysctl name",
        ),
        (spec_with(linux={"sysctl": {"kernel": 1}}), "linux.sysctl.kernel", "not a sysctl name"),
        (
            spec_with(linux={"sysctl": {"net.core.somaxconn": "1\n2"}}),
            'linux.sysctl."net.core.somaxconn"',
            "line break",
        ),
        (
            spec_with(
                linux={
                    "sysctl": {
                        "net.ipv4.conf.eth0/100.rp_filter": 1,
                        "net/ipv4/conf/eth0.100/rp_filter": 2,
                    }
                }
            ),
            'linux.sysctl."net/ipv4/conf/eth0.100/rp_filter"',
            "already set",
        ),
        (spec_with(linux={"persist": {"enabled": "yes"}}), "linux.persist.enabled", "true or"),
        (
            spec_with(linux={"persist": {"sysctl_file": "90-dsrctl.conf"}}),
            "linux.persist.sysctl_file",
            "absolute path",
        ),
        (
            spec_with(linux={"persist": {"sysctl_file": "/etc/sysctl.d/90-dsrctl"}}),
            "linux.persist.sysctl_file",
            "end in .conf",
        ),
        (
            spec_with(linux={"persist": {"addresses": "systemd"}}),
            "linux.persist.addresses",
            "unknown backend; known: auto, none, systemd-unit, systemd-networkd, "
            "networkmanager, ifupdown, netplan, ifcfg",
        ),
        (
            spec_with(linux={"persist": {"enabled": False, "addresses": "networkd"}}),
            "linux.persist.addresses",
            "persistence is disabled (enabled = false)",
        ),
        (
            spec_with(linux={"persist": {"root": "srv/image"}}),
            "linux.persist.root",
            "must be an absolute path",
        ),
        (
            spec_with(linux={"persist": {"sysctl-file": "/x.conf"}}),
            "linux.persist.sysctl-file",
            "did you mean 'sysctl_file'",
        ),
    ],
)
def test_invalid_specs_are_refused(data: dict[str, Any], key: str, words: str) -> None:
    error = refuse(data)
    assert error.key == key
    assert words in error.reason
    message = str(error)
    assert message.startswith(f"/etc/dsrctl/dsrctl.toml: {key}")
    assert "\n" not in message


def test_ranges_are_vips_with_a_shorter_prefix() -> None:
    spec = parse_spec(
        spec_with(
            vip=[
                {"address": "2001:db8:5::", "prefix": 64},
                {"address": "198.18.5.0", "prefix": 24},
                {"address": "192.0.2.100"},
            ]
        ),
        "s.toml",
    )
    assert [(v.cidr, v.is_range) for v in spec.vips] == [
        ("192.0.2.100/32", False),
        ("198.18.5.0/24", True),
        ("2001:db8:5::/64", True),
    ]
    assert spec.warnings == ()


def test_a_single_vip_inside_a_range_is_said_not_refused() -> None:
    # Both make the address local (the address on lo, the range's local route), so the
    # spec still works; the operator hears that one of them is redundant.
    spec = parse_spec(
        spec_with(vip=[{"address": "198.18.5.0", "prefix": 24}, {"address": "198.18.5.7"}]),
        "s.toml",
    )
    assert [v.cidr for v in spec.vips] == ["198.18.5.0/24", "198.18.5.7/32"]
    assert spec.warnings == (
        "VIP 198.18.5.7/32 lies inside range 198.18.5.0/24, which already makes it local: it "
        "is also added as an address on lo (harmless); remove the [[vip]] to keep the range "
        "alone",
    )


def test_error_message_shows_the_value() -> None:
    error = refuse(spec_with(linux={"arp_ignore": 0}))
    assert str(error).startswith("/etc/dsrctl/dsrctl.toml: linux.arp_ignore = 0: ")
    error = refuse(spec_with(vip=[{"address": "224.0.0.5"}]))
    assert 'vip[0].address = "224.0.0.5": ' in str(error)
    error = refuse(spec_with(linux={"persist": {"enabled": "yes"}}))
    assert 'linux.persist.enabled = "yes": must be true or false' in str(error)
    error = refuse(spec_with(vip=[{"address": "192.0.2.1", "label": True}]))
    assert "vip[0].label = true: must be a string" in str(error)


def test_extra_sysctls_are_canonical_and_may_warn() -> None:
    spec = parse_spec(
        spec_with(
            linux={
                "sysctl": {
                    "net/ipv4/conf/eth0.100/rp_filter": 2,
                    "net.ipv4.conf.lo.arp_ignore": 1,
                    "net.ipv4.conf.eth0.arp_ignore": 0,
                }
            }
        ),
        "s.toml",
    )
    assert dict(spec.linux.sysctl) == {
        "net.ipv4.conf.eth0/100.rp_filter": 2,
        "net.ipv4.conf.lo.arp_ignore": 1,
        "net.ipv4.conf.eth0.arp_ignore": 0,
    }
    assert any("eth0.arp_ignore = 0 has no effect" in w for w in spec.warnings)
    assert any("lo never receives or sends ARP" in w for w in spec.warnings)


def test_load_spec_file_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(SpecError, match="spec file not found"):
        load_spec(str(missing))
    broken = tmp_path / "broken.toml"
    broken.write_text("version = 1\n[[vip]\n")
    with pytest.raises(SpecError, match=r"invalid TOML: .*line 2"):
        load_spec(str(broken))
    with pytest.raises(SpecError, match="is a directory"):
        load_spec(str(tmp_path))
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"version = 1\n# \xff\xfe\n")
    with pytest.raises(SpecError, match="invalid TOML"):
        load_spec(str(binary))


def test_example_spec_is_valid() -> None:
    spec = load_spec(str(Path(__file__).parents[2] / "examples" / "dsrctl.toml"))
    assert [v.cidr for v in spec.vips] == ["192.0.2.100/32", "2001:db8::100/128"]
