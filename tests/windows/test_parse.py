"""Parsers of netsh and devcon output, against recorded formats (tests/windows/fixtures):
any column width, CRLF, a BOM, fields added or dropped; other languages refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from dsrctl.windows.model import FirewallRuleState
from providers.windows import parse
from providers.windows.reader import rule_state

FIXTURES = Path(__file__).parent / "fixtures"

# The same output as a host prints it (CRLF), as PowerShell saves it (BOM), and plain.
LINE_ENDS: dict[str, Callable[[str], str]] = {
    "lf": lambda text: text,
    "crlf": lambda text: text.replace("\n", "\r\n"),
    "bom-crlf": lambda text: "\ufeff" + text.replace("\n", "\r\n"),
}


@pytest.fixture(params=sorted(LINE_ENDS))
def read(request: pytest.FixtureRequest) -> Callable[[str], str]:
    transform = LINE_ENDS[request.param]
    return lambda name: transform((FIXTURES / name).read_text(encoding="utf-8"))


def test_adapter_table_by_header(read: Callable[[str], str]) -> None:
    for name in ("show-interface.txt", "show-interface-wide.txt"):
        rows = parse.adapters(read(name), "netsh interface show interface")
        assert rows[0] == parse.AdapterRow("LAN", "Enabled", "Connected", "Dedicated")
        assert rows[1].name == "Ethernet 2"
    rows = parse.adapters(read("show-interface.txt"), "cmd")
    assert [row.name for row in rows] == ["LAN", "Ethernet 2", "Backup NIC (spare)", "Löopback Ω"]
    assert rows[2].admin_state == "Disabled"


def test_table_with_values_wider_than_their_column(read: Callable[[str], str]) -> None:
    rows = parse.table(read("show-interfaces-table.txt"), "cmd", ("Idx", "Met", "MTU", "Name"))
    assert rows[0] == {
        "Idx": "1",
        "Met": "50",
        "MTU": "4294967295",
        "State": "connected",
        "Name": "Loopback Pseudo-Interface 1",
    }
    assert rows[2]["Name"] == "LO" and rows[2]["Met"] == "254"


def test_adapter_table_in_spanish_is_refused(read: Callable[[str], str]) -> None:
    with pytest.raises(parse.NetshOutputError) as caught:
        parse.adapters(read("show-interface-es.txt"), "netsh interface show interface")
    message = str(caught.value)
    assert message.startswith("cannot read the output of `netsh interface show interface`")
    assert "Spanish" in message and "English" in message


def test_interface_detail_by_key(read: Callable[[str], str]) -> None:
    required = ("Weak Host Sends", "Weak Host Receives", "Metric")
    values = parse.interface_detail(read("ipv4-detail.txt"), "cmd", required)
    assert (values["Weak Host Sends"], values["Weak Host Receives"]) == ("enabled", "disabled")
    assert values["Metric"] == "254"
    assert values["RA Based DNS Config (RFC 6106)"] == "disabled"
    # An older build: wider key column, an extra field, the last four fields dropped.
    values = parse.interface_detail(read("ipv4-detail-old-build.txt"), "cmd", required)
    assert values["Weak Host Receives"] == "enabled"
    assert values["Metric"] == "20"
    assert "ECN capability" not in values


def test_interface_detail_in_french_is_refused(read: Callable[[str], str]) -> None:
    command = 'netsh interface ipv4 show interfaces interface="LO"'
    with pytest.raises(parse.NetshOutputError) as caught:
        parse.interface_detail(read("ipv4-detail-fr.txt"), command, ("Weak Host Sends",))
    assert f"`{command}`" in str(caught.value)
    assert "French" in str(caught.value)


def test_interface_detail_missing_a_field_is_refused() -> None:
    text = (FIXTURES / "ipv4-detail.txt").read_text().replace("Weak Host Sends", "Weak Host X")
    with pytest.raises(parse.NetshOutputError, match="'Weak Host Sends' not found"):
        parse.interface_detail(text, "cmd", ("Weak Host Sends", "Metric"))


def test_ipv4_addresses_2008_format(read: Callable[[str], str]) -> None:
    configs = parse.ipv4_config(read("ipv4-addresses.txt"), "cmd")
    lan = configs["Local Area Connection"]
    assert lan.addresses == [("198.18.0.2", 24), ("198.18.0.3", 24)]
    assert lan.gateways == ["198.18.0.254"]
    assert lan.dhcp is False and lan.metric == 10
    assert configs["LO"].addresses == [("192.0.2.100", 32), ("192.0.2.101", 32)]
    assert configs["Ethernet 2"].dhcp is True
    assert configs["Ethernet 2"].addresses == []


def test_ip_address_2003_format(read: Callable[[str], str]) -> None:
    configs = parse.ipv4_config(read("ip-address-2003.txt"), "cmd")
    assert configs["Local Area Connection"].addresses == [("198.18.0.10", 24)]
    assert configs["Local Area Connection"].metric == 0  # automatic
    assert configs["LO"].addresses == [("192.0.2.100", 32)]
    assert configs["LO"].metric == 254
    assert configs["LO"].gateways == []


def test_ipv4_addresses_in_german_are_refused(read: Callable[[str], str]) -> None:
    with pytest.raises(parse.NetshOutputError, match="German"):
        parse.ipv4_config(read("ipv4-addresses-de.txt"), "netsh interface ipv4 show addresses")


def test_ipv4_address_without_its_subnet_is_refused() -> None:
    text = (FIXTURES / "ipv4-addresses.txt").read_text()
    text = text.replace("    Subnet Prefix:                        192.0.2.101/32", "    X:")
    with pytest.raises(parse.NetshOutputError, match=r"subnet of 192\.0\.2\.101"):
        parse.ipv4_config(text, "cmd")


def test_ipv6_addresses_by_heading_and_column(read: Callable[[str], str]) -> None:
    found = parse.ipv6_addresses(read("ipv6-addresses.txt"), "cmd")
    assert found["Wi-Fi"] == ["2001:db8:1111:1:c1cd:7a44:45a5:58f1", "fe80::f1f5:5cbb:f395:6c51"]
    assert found["LO"] == ["2001:db8::100", "2001:db8::101"]  # compressed at the boundary
    assert found["Ethernet 2"] == []


def test_firewall_rule_verbose(read: Callable[[str], str]) -> None:
    rules = parse.firewall_rules(read("rule-verbose.txt"), "cmd")
    assert len(rules) == 1
    state = rule_state(rules[0], "cmd", "")
    assert state == FirewallRuleState(
        protocol="tcp", localip=("192.0.2.100", "2001:db8::100"), localport=("80", "443")
    )


def test_firewall_rules_with_one_name_twice(read: Callable[[str], str]) -> None:
    rules = parse.firewall_rules(read("rule-two-blocks.txt"), "cmd")
    assert len(rules) == 2
    first = rule_state(rules[0], "cmd", "")
    assert first.enabled is False
    assert first.localip == ("192.0.2.100", "2001:db8::100")  # continuation lines
    assert first.remoteip == ("198.18.0.0/15",)
    assert first.protocol == "udp" and first.profiles == ("domain",)
    assert first.unmanaged == (("Program", "C:\\Services\\dns.exe"),)
    second = rule_state(rules[1], "cmd", "")
    assert second.localport == ("any",) and second.action == "block"


def test_firewall_no_match_and_other_languages(read: Callable[[str], str]) -> None:
    assert parse.firewall_rules("\r\nNo rules match the specified criteria.\r\n", "cmd") == []
    with pytest.raises(parse.NetshOutputError, match="German"):
        parse.firewall_rules(read("rule-de.txt"), "cmd")
    french = "\nAucune règle ne correspond aux critères spécifiés.\n"
    with pytest.raises(parse.NetshOutputError):
        parse.firewall_rules(french, "cmd")


def test_devcon_find(read: Callable[[str], str]) -> None:
    devices = parse.devcon_devices(read("devcon-find.txt"), "devcon find *MSLOOP")
    assert devices == [
        ("ROOT\\NET\\0000", "Microsoft KM-TEST Loopback Adapter"),
        ("ROOT\\NET\\0001", "Microsoft KM-TEST Loopback Adapter #2"),
    ]
    assert parse.devcon_devices("No matching devices found.\r\n", "cmd") == []
    with pytest.raises(parse.NetshOutputError):
        parse.devcon_devices("Keine übereinstimmenden Geräte gefunden.\r\n", "cmd")


def test_unknown_output_names_the_command_and_its_first_line() -> None:
    with pytest.raises(parse.NetshOutputError) as caught:
        parse.adapters("\r\nSomething else entirely\r\n", "netsh interface show interface")
    assert "unexpected output (first line: 'Something else entirely')" in str(caught.value)
