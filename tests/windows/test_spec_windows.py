"""The [windows] table: defaults, canonical values, and every refusal naming file, key, value."""

from __future__ import annotations

from typing import Any

import pytest

from dsrctl.errors import SpecError
from dsrctl.spec import parse_spec
from dsrctl.windows.spec import FirewallRule

PATH = "C:/dsrctl/dsrctl.toml"


def spec_with(windows: dict[str, Any], vips: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"version": 1, "vip": vips or [{"address": "192.0.2.100"}], "windows": windows}


def refuse(windows: dict[str, Any], vips: list[dict[str, Any]] | None = None) -> str:
    with pytest.raises(SpecError) as caught:
        parse_spec(spec_with(windows, vips), PATH)
    return str(caught.value)


def test_defaults_and_canonical_values() -> None:
    spec = parse_spec(
        spec_with(
            {
                "loopback": "LO",
                "uplinks": ["LAN", "Ethernet 2"],
                "firewall": [{"name": "dsr-web", "protocol": "TCP", "ports": [443, 80]}],
            }
        ),
        PATH,
    )
    windows = spec.windows
    assert windows is not None
    assert (windows.loopback, windows.uplinks) == ("LO", ("LAN", "Ethernet 2"))
    assert (windows.profile, windows.metric, windows.devcon) == ("2008+", 254, None)
    assert windows.firewall == (FirewallRule("dsr-web", "tcp", (80, 443)),)
    assert spec.linux.interface == "lo"  # the [linux] defaults stay as they are


def test_no_windows_table_is_fine_for_linux() -> None:
    spec = parse_spec({"version": 1, "vip": [{"address": "192.0.2.100"}]}, PATH)
    assert spec.windows is None


def test_2003_profile_needs_no_uplinks_and_refuses_ipv6() -> None:
    spec = parse_spec(spec_with({"loopback": "LO", "profile": "2003"}), PATH)
    assert spec.windows is not None and spec.windows.legacy and spec.windows.uplinks == ()
    message = refuse(
        {"loopback": "LO", "profile": "2003"},
        [{"address": "192.0.2.100"}, {"address": "2001:db8::100"}],
    )
    assert message.startswith(f'{PATH}: windows.profile = "2003": the 2003 profile manages IPv4')
    assert "2001:db8::100" in message


@pytest.mark.parametrize(
    ("windows", "expected"),
    [
        ({"uplinks": ["LAN"]}, "windows.loopback: required key is missing"),
        ({"loopback": "LO"}, "windows.uplinks: required key is missing"),
        ({"loopback": "LO", "uplinks": []}, "windows.uplinks = []: at least one uplink"),
        ({"loopback": "LO", "uplinks": "LAN"}, 'windows.uplinks = "LAN": must be an array'),
        ({"loopback": "LO", "uplinks": ["LAN", 3]}, "windows.uplinks[1] = 3: must be a string"),
        ({"loopback": "LO", "uplinks": ["lo"]}, 'windows.uplinks[0] = "lo": the loopback adapter'),
        ({"loopback": "LO", "uplinks": ["LAN", "lan"]}, 'windows.uplinks[1] = "lan": duplicate'),
        ({"loopback": 'L"O', "uplinks": ["LAN"]}, 'windows.loopback = "L\\"O": netsh cannot take'),
        ({"loopback": "LO", "uplinks": ["LAN:1"]}, 'windows.uplinks[0] = "LAN:1": an adapter name'),
        ({"loopback": " LO", "uplinks": ["LAN"]}, "cannot begin or end with a space"),
        ({"loopback": "", "uplinks": ["LAN"]}, 'windows.loopback = "": an adapter name cannot be'),
        ({"loopback": "L\tO", "uplinks": ["LAN"]}, "control characters"),
        ({"loopback": "LO", "uplinks": ["LAN"], "profile": "2012"}, 'use "2008+" for Windows'),
        ({"loopback": "LO", "uplinks": ["LAN"], "profile": "2008"}, 'use "2008+" for Windows'),
        ({"loopback": "LO", "uplinks": ["LAN"], "profile": "xp"}, 'known profiles: "2008+"'),
        ({"loopback": "LO", "uplinks": ["LAN"], "metric": 0}, "windows.metric = 0: out of range"),
        ({"loopback": "LO", "uplinks": ["LAN"], "metric": "254"}, "must be an integer"),
        ({"loopback": "LO", "uplinks": ["LAN"], "devcon": "tools\\devcon.exe"}, "absolute Windows"),
        ({"loopback": "LO", "uplinks": ["LAN"], "devcon": "/usr/bin/devcon"}, "absolute Windows"),
        ({"loopback": "LO", "uplinks": ["LAN"], "weakhostsend": True}, "unknown key"),
    ],
)
def test_refusals(windows: dict[str, Any], expected: str) -> None:
    message = refuse(windows)
    assert message.startswith(f"{PATH}: windows.")
    assert expected in message


def test_unknown_key_gets_a_suggestion() -> None:
    message = refuse({"loopback": "LO", "uplinks": ["LAN"], "uplink": ["LAN"]})
    assert "windows.uplink = [\"LAN\"]: unknown key (did you mean 'uplinks'?)" in message
    message = refuse({"loopback": "LO", "uplinks": ["LAN"], "metrik": 254})
    assert "(did you mean 'metric'?)" in message


def test_absolute_devcon_paths_are_accepted() -> None:
    for devcon in ("C:\\Tools\\devcon.exe", "\\\\server\\share\\devcon.exe", "devcon.exe"):
        spec = parse_spec(spec_with({"loopback": "LO", "uplinks": ["LAN"], "devcon": devcon}), PATH)
        assert spec.windows is not None and spec.windows.devcon == devcon


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"protocol": "tcp", "ports": [80]}, "windows.firewall[0].name: required key is missing"),
        ({"name": "all", "ports": [80]}, "'all' means every firewall rule"),
        ({"name": "ALL", "ports": [80]}, "'all' means every firewall rule"),
        ({"name": "a|b", "ports": [80]}, "cannot contain '|'"),
        ({"name": "web", "protocol": "icmp", "ports": [80]}, "must be 'tcp' or 'udp'"),
        ({"name": "web"}, "windows.firewall[0].ports: required key is missing"),
        ({"name": "web", "ports": []}, "must be a non-empty array"),
        ({"name": "web", "ports": [0]}, "port 0 is out of range"),
        ({"name": "web", "ports": [80, 65536]}, "port 65536 is out of range"),
        ({"name": "web", "ports": [80, 80]}, "duplicate port(s): [80]"),
        ({"name": "web", "ports": [True]}, "a port must be an integer, not a boolean"),
        ({"name": "web", "ports": [80], "port": 80}, "(did you mean 'ports'?)"),
    ],
)
def test_firewall_refusals(rule: dict[str, Any], expected: str) -> None:
    message = refuse({"loopback": "LO", "uplinks": ["LAN"], "firewall": [rule]})
    assert message.startswith(f"{PATH}: windows.firewall[0]")
    assert expected in message


def test_duplicate_rule_names_are_refused_without_regard_to_case() -> None:
    rules = [{"name": "web", "ports": [80]}, {"name": "WEB", "ports": [443]}]
    message = refuse({"loopback": "LO", "uplinks": ["LAN"], "firewall": rules})
    assert message.startswith(f'{PATH}: windows.firewall[1].name = "WEB": duplicate rule name')
