"""`dsrctl import [--adopt]` on a hand-configured Windows host, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from providers.windows import parse
from tests.windows.fake_host import FakeWindows, host_state

VIPS = ["192.0.2.100", "198.18.0.100", "2001:db8::100"]

IMPORTED = """\
# Imported by `dsrctl import` from this host's current configuration.
# firewall rule 'admin' (allow in tcp port 3389 to 192.0.2.100 from 203.0.113.5) is left out: \
it does not allow 198.18.0.100, 2001:db8::100 (a spec's rule allows every VIP); it is limited \
to remote addresses 203.0.113.5. dsrctl leaves rules that are not in the spec alone
version = 1

[[vip]]
address = "192.0.2.100"

[[vip]]
address = "198.18.0.100"

[[vip]]
address = "2001:db8::100"

[windows]
loopback = "LO"
uplinks = [
    "LAN",
]
profile = "2008+"
metric = 254

[[windows.firewall]]
name = "web-vips"
protocol = "tcp"
ports = [
    80,
    443,
]
"""


def rule(name: str, **changes: Any) -> dict[str, Any]:
    """A firewall rule in the fake's state, as `netsh advfirewall firewall add rule` keeps it."""
    return {
        "name": name,
        "dir": "in",
        "action": "allow",
        "protocol": "tcp",
        "enabled": True,
        "profiles": ["domain", "private", "public"],
        "localip": list(VIPS),
        "remoteip": [],
        "localport": ["80", "443"],
        "remoteport": [],
        "program": None,
        **changes,
    }


def adapter(state: dict[str, Any], name: str) -> dict[str, Any]:
    return next(entry for entry in state["adapters"] if entry["name"] == name)


def hand_configured(version: str = "2008+") -> dict[str, Any]:
    """A real server set up by hand from the load balancer's application note."""
    state = host_state(version)
    lo = adapter(state, "LO")
    if version == "2003":
        lo["ipv4"].update(dhcp=False, addresses=[[vip, 32, False] for vip in VIPS[:2]])
        lo["ipv4"].update(metric=254, automatic_metric=False)
        return state
    # The VIPs, and an APIPA address that is no VIP (left from when DHCP was on).
    lo["ipv4"].update(dhcp=False, addresses=[[vip, 32, True] for vip in VIPS[:2]])
    lo["ipv4"]["addresses"].append(["169.254.80.7", 16, False])
    lo["ipv6"]["addresses"] = [[VIPS[2], 128, True]]
    for family in ("ipv4", "ipv6"):
        lo[family].update(weakhostsend="enabled", weakhostreceive="enabled")
        lo[family].update(metric=254, automatic_metric=False)
        adapter(state, "LAN")[family]["weakhostreceive"] = "enabled"
    state["firewall"] = [
        rule("web-vips", localport=["443", "80"]),
        rule("admin", localip=[VIPS[0]], remoteip=["203.0.113.5"], localport=["3389"]),
        rule("file-sharing", localip=[], localport=["445"]),  # any address: not about the VIPs
    ]
    return state


def test_import_prints_a_valid_spec_and_changes_nothing(win: FakeWindows) -> None:
    win.write(hand_configured())
    before = win.snapshot()
    result = win.dsrctl("import")
    assert result.returncode == 0, result.stderr
    assert result.stdout == IMPORTED
    assert result.stderr == ""
    log = win.log()
    assert "ipconfig /all" in log  # the loopback adapter, by its device
    assert "netsh advfirewall firewall show rule name=all verbose" in log
    assert win.writes() == [] and win.snapshot() == before
    assert not win.state_dir.exists()  # import alone records nothing

    result = win.dsrctl("validate", str(win.spec(result.stdout, "imported.toml")))
    assert result.returncode == 0, result.stderr
    assert "valid (3 VIP(s))" in result.stdout


def test_adopt_then_plan_shows_no_changes(win: FakeWindows) -> None:
    win.write(hand_configured())
    before = win.snapshot()
    out = win.root / "dsrctl.toml"
    result = win.dsrctl("import", "--adopt", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert out.read_text() == IMPORTED
    stderr = result.stderr.splitlines()
    assert stderr[0].startswith("! firewall rule 'admin' (allow in tcp port 3389")
    assert stderr[1:] == [
        f"Wrote {out}",
        # adapter, 3 VIPs, DHCP off, weak host and metric for 2 families, the rule
        "Adopted 14 resource(s): managed by dsrctl from now on, never deleted by it (it did "
        "not create them).",
    ]
    records = json.loads((win.state_dir / "ownership.json").read_text())["resources"]
    assert all(record["created"] is False for record in records.values())
    assert records["netsh:ipv4:LAN:weakhostreceive"]["original"] == "enabled"
    assert records["address:LO:2001:db8::100/128"]["original"]["prefix"] == 128
    assert records["firewall:web-vips"]["original"]["localport"] == ["80", "443"]

    result = win.dsrctl("plan", "--detailed-exitcode", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No changes. The host matches the spec." in result.stdout
    result = win.dsrctl("drift", str(out))
    assert result.returncode == 0 and result.stdout.startswith("in sync")
    assert win.writes() == [] and win.snapshot() == before

    again = win.dsrctl("import", "--adopt", "--out", str(win.root / "again.toml"))
    assert again.returncode == 0, again.stderr
    assert "Adopted 0 resource(s)" in again.stderr


def test_an_adopted_vip_dropped_from_the_spec_is_left_in_place(win: FakeWindows) -> None:
    win.write(hand_configured())
    out = win.root / "dsrctl.toml"
    assert win.dsrctl("import", "--adopt", "--out", str(out)).returncode == 0
    text = out.read_text().replace('[[vip]]\naddress = "198.18.0.100"\n\n', "")
    assert 'address = "198.18.0.100"' not in text
    out.write_text(text)

    plan = win.dsrctl("plan", str(out))
    assert plan.returncode == 0, plan.stderr
    assert (
        "  - address 198.18.0.100/32 on LO: mask 255.255.255.255  (MANUAL: LO holds "
        "198.18.0.100/32, which is not in the spec and was not added by dsrctl"
    ) in plan.stdout
    assert "~ firewall web-vips:" in plan.stdout  # the rule now allows the remaining VIPs
    result = win.dsrctl("apply", "--auto-approve", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "! left to do by hand: address:LO:198.18.0.100/32" in result.stdout
    assert not any("delete address" in line for line in win.log())
    assert [a[0] for a in win.adapter("LO")["ipv4"]["addresses"]][:2] == VIPS[:2]
    (web,) = [r for r in win.state()["firewall"] if r["name"] == "web-vips"]
    assert web["localip"] == [VIPS[0], VIPS[2]]

    # Later edits manage the adopted resources; the original is still the adopted value.
    out.write_text(text.replace("metric = 254", "metric = 100"))
    result = win.dsrctl("apply", "--auto-approve", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "~ netsh ipv4:LO:metric: 254 -> 100" in result.stdout
    assert win.adapter("LO")["ipv4"]["metric"] == 100
    records = json.loads((win.state_dir / "ownership.json").read_text())["resources"]
    assert records["netsh:ipv4:LO:metric"]["original"] == 254


def test_what_a_spec_cannot_express_becomes_notes(win: FakeWindows) -> None:
    state = hand_configured()
    lo, lan = adapter(state, "LO"), adapter(state, "LAN")
    lo["ipv4"]["addresses"].append(["192.0.2.200", 24, False])  # not a host address
    lo["ipv6"].update(weakhostsend="disabled", metric=300, automatic_metric=True)
    for family in ("ipv4", "ipv6"):
        lan[family]["weakhostreceive"] = "disabled"  # the uplink is found by its gateway
    vips = ["192.0.2.100", "198.18.0.100", "2001:db8::100"]
    state["firewall"] = [
        rule("web-vips", localport=["80", "443"]),
        rule("dns", protocol="udp", localport=["53"]),
        rule("off", enabled=False),
        rule("twice"),
        rule("Twice", dir="out"),
        rule("wider", localip=[*vips, "198.18.0.10"]),
        rule("domain-only", profiles=["domain"]),
        rule("app", program="C:\\app\\server.exe"),
        rule("block", action="block"),  # not an allow rule: not imported, no note
    ]
    win.write(state)
    result = win.dsrctl("import")
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stdout.splitlines() if line.startswith("# ")][1:]
    assert notes == [
        "# left out 192.0.2.200/24 on LO: not a /32 VIP (plan reports it as an address the "
        "spec does not name)",
        "# weak-host send is off on LO for IPv6: the spec turns it on (apply changes it)",
        "# no adapter has weak-host receive on; LAN (with the default gateway) is the spec's "
        "uplink: the spec turns weak-host receive on for it (apply changes it)",
        "# the IPv6 metric of LO is 300, the IPv4 one 254: the spec sets 254 for both (apply "
        "changes IPv6)",
        "# the IPv6 metric of LO is automatic; the spec gives the number 254: netsh turns "
        "'Automatic metric' off when it sets a metric, and cannot turn it on again",
        "# firewall rule 'app' (allow in tcp port 80,443 to 192.0.2.100,198.18.0.100,"
        "2001:db8::100, Program: C:\\app\\server.exe) is left out: it has settings a spec "
        "cannot express (Program: C:\\app\\server.exe). dsrctl leaves rules that are not in "
        "the spec alone",
        "# firewall rule 'domain-only' (allow in tcp port 80,443 to 192.0.2.100,198.18.0.100,"
        "2001:db8::100, profiles domain) is left out: it applies to the domain profile(s) "
        "only. dsrctl leaves rules that are not in the spec alone",
        "# firewall rule 'off' (allow in tcp port 80,443 to 192.0.2.100,198.18.0.100,"
        "2001:db8::100, disabled) is left out: it is disabled (the spec's rule would be "
        "enabled). dsrctl leaves rules that are not in the spec alone",
        "# firewall rule 'twice' (allow in tcp port 80,443 to 192.0.2.100,198.18.0.100,"
        "2001:db8::100) is left out: 2 rules carry this name; dsrctl manages one rule per "
        "name. dsrctl leaves rules that are not in the spec alone",
        "# firewall rule 'wider' (allow in tcp port 80,443 to 192.0.2.100,198.18.0.10,"
        "198.18.0.100,2001:db8::100) is left out: it also allows 198.18.0.10, not a VIP of "
        "this host. dsrctl leaves rules that are not in the spec alone",
    ]
    assert 'uplinks = [\n    "LAN",\n]' in result.stdout
    assert '[[windows.firewall]]\nname = "dns"\nprotocol = "udp"\nports = [\n    53,\n]\n' in (
        result.stdout
    )
    assert 'name = "web-vips"' in result.stdout

    spec = win.spec(result.stdout, "imported.toml")
    assert win.dsrctl("validate", str(spec)).returncode == 0
    plan = win.dsrctl("plan", str(spec))
    assert plan.returncode == 0, plan.stderr
    changes = [line for line in plan.stdout.splitlines() if line.startswith("  ")]
    assert [line.split(" -> ")[0] for line in changes] == [
        "  - address 192.0.2.200/24 on LO: mask 255.255.255.0  (MANUAL: LO holds 192.0.2.200/24, "
        "which is not in the spec and was not added by dsrctl (the server accepts traffic for "
        "every address on the loopback adapter): add it to the spec, or remove it by hand: "
        "'netsh interface ipv4 delete address name=\"LO\" address=192.0.2.200')",
        "  ~ netsh ipv4:LAN:weakhostreceive: disabled",
        "  ~ netsh ipv6:LAN:weakhostreceive: disabled",
        "  ~ netsh ipv6:LO:weakhostsend: disabled",
        "  ~ netsh ipv6:LO:metric: 300",
    ]
    assert not any("firewall" in line for line in changes)


def test_host_without_a_loopback_adapter(win: FakeWindows) -> None:
    win.write(host_state(loopback=False))
    out = win.root / "dsrctl.toml"
    result = win.dsrctl("import", "--adopt", "--out", str(out))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        "error: no Microsoft loopback adapter on this host (`ipconfig /all` shows no 'Microsoft "
        "KM-TEST Loopback Adapter' or 'Microsoft Loopback Adapter'; adapters: LAN): a DSR real "
        "server holds its VIPs on one (see docs/windows.md); if another adapter holds them, name "
        "it with --loopback NAME\n"
    )
    assert not out.exists() and not win.state_dir.exists() and win.writes() == []

    result = win.dsrctl("import", "--loopback", "VIPS")
    assert result.returncode == 1
    assert result.stderr == (
        "error: no network adapter named 'VIPS' on this host (--loopback; adapters: LAN)\n"
    )
    result = win.dsrctl("import", "--interface", "LO")
    assert result.returncode == 1
    assert result.stderr == "error: --interface is for Linux; on Windows use --loopback NAME\n"


def test_loopback_found_by_its_device_or_named(win: FakeWindows) -> None:
    state = hand_configured()
    # Created with devcon and never renamed: the name says nothing, the device does.
    adapter(state, "LO")["name"] = "Ethernet 2"
    state["devices"][0].update(adapter="Ethernet 2", description="Microsoft Loopback Adapter")
    state["firewall"] = []
    win.write(state)
    result = win.dsrctl("import")
    assert result.returncode == 0, result.stderr
    assert 'loopback = "Ethernet 2"' in result.stdout

    # Two loopback adapters: the operator names the one that holds the VIPs.
    devcon = win.root / "bin" / "devcon"
    assert win.dsrctl("apply", "--auto-approve", str(_minimal_spec(win, devcon))).returncode == 0
    result = win.dsrctl("import")
    assert result.returncode == 1
    assert result.stderr == (
        "error: 2 loopback adapters on this host (Ethernet 2, SPARE): name the one that holds "
        "the VIPs with --loopback NAME\n"
    )
    result = win.dsrctl("import", "--loopback", "ethernet 2")  # any case, as on Windows
    assert result.returncode == 0, result.stderr
    assert 'loopback = "Ethernet 2"' in result.stdout
    assert '"SPARE"' not in result.stdout  # another loopback adapter is no uplink


def test_without_ipconfig_the_loopback_is_named(win: FakeWindows) -> None:
    win.write(hand_configured())
    (win.root / "bin" / "ipconfig").unlink()
    result = win.dsrctl("import")
    assert result.returncode == 1
    assert result.stderr == (
        "error: cannot tell which adapter is the loopback adapter: ipconfig not found (looked "
        "on PATH); is this a Windows host?; name it with --loopback NAME\n"
    )
    result = win.dsrctl("import", "--loopback", "LO")
    assert result.returncode == 0, result.stderr
    assert result.stdout == IMPORTED


def _minimal_spec(win: FakeWindows, devcon: Path) -> Path:
    """A spec whose apply creates a second loopback adapter, SPARE, with devcon."""
    return win.spec(
        'version = 1\n[[vip]]\naddress = "203.0.113.9"\n[windows]\nloopback = "SPARE"\n'
        f'uplinks = ["LAN"]\ndevcon = "{devcon.name}"\n',
        "spare.toml",
    )


def test_2003_host(win: FakeWindows) -> None:
    win.write(hand_configured("2003"))
    before = win.snapshot()
    out = win.root / "dsrctl.toml"
    result = win.dsrctl("import", "--adopt", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_text() == (
        "# Imported by `dsrctl import` from this host's current configuration.\n"
        "# Windows Server 2003 has no netsh advfirewall: firewall rules are not imported (see "
        "docs/windows.md, The 2003 profile)\n"
        'version = 1\n\n[[vip]]\naddress = "192.0.2.100"\n\n[[vip]]\naddress = "198.18.0.100"\n'
        '\n[windows]\nloopback = "LO"\nprofile = "2003"\nmetric = 254\n'
    )
    assert "Adopted 5 resource(s)" in result.stderr  # adapter, 2 VIPs, DHCP off, metric
    # Only the probe that tells the profile: 2003's netsh has no 'interface ipv4' context.
    modern = ("ipv4", "ipv6", "advfirewall")
    probes = [line for line in win.log() if any(word in line for word in modern)]
    assert probes == ["netsh interface ipv4 show addresses"]
    result = win.dsrctl("plan", "--detailed-exitcode", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert win.writes() == [] and win.snapshot() == before


def test_2003_automatic_metric_is_a_note_and_a_manual_step(win: FakeWindows) -> None:
    state = hand_configured("2003")
    adapter(state, "LO")["ipv4"]["automatic_metric"] = True  # netsh shows InterfaceMetric 0
    win.write(state)
    result = win.dsrctl("import")
    assert result.returncode == 0, result.stderr
    assert (
        "# the interface metric of LO is automatic (netsh shows 0): the spec sets 254, which "
        "netsh on Windows Server 2003 cannot set; the plan shows it as a manual step\n"
    ) in result.stdout
    plan = win.dsrctl("plan", str(win.spec(result.stdout, "imported.toml")))
    assert "~ netsh ipv4:LO:metric: 0 -> 254  (MANUAL:" in plan.stdout


IPCONFIG = """\

Windows IP Configuration

   Host Name . . . . . . . . . . . . : WEB01
   Primary Dns Suffix  . . . . . . . : example.com

Ethernet adapter LAN:

   Connection-specific DNS Suffix  . : example.com
   Description . . . . . . . . . . . : Intel(R) 82574L Gigabit Network Connection
   Physical Address. . . . . . . . . : 00-0C-29-AA-BB-CC

Ethernet adapter Loopback for VIPs:

   Connection-specific DNS Suffix  . :
   Description . . . . . . . . . . . : Microsoft KM-TEST Loopback Adapter #2
   DHCP Enabled. . . . . . . . . . . : No

Wireless LAN adapter Wi-Fi:

   Media State . . . . . . . . . . . : Media disconnected
   Description . . . . . . . . . . . : Intel(R) Wi-Fi 6 AX201 160MHz

Tunnel adapter isatap.{5D3C0A52-1D3B-4E1A-8C5C-9F1E1D2C3B4A}:

   Description . . . . . . . . . . . : Microsoft ISATAP Adapter
"""


def test_ipconfig_descriptions() -> None:
    found = parse.ipconfig_descriptions(IPCONFIG.replace("\n", "\r\n"), "ipconfig /all")
    assert found == {
        "LAN": "Intel(R) 82574L Gigabit Network Connection",
        "Loopback for VIPs": "Microsoft KM-TEST Loopback Adapter #2",
        "Wi-Fi": "Intel(R) Wi-Fi 6 AX201 160MHz",
        "isatap.{5D3C0A52-1D3B-4E1A-8C5C-9F1E1D2C3B4A}": "Microsoft ISATAP Adapter",
    }
    assert parse.ipconfig_descriptions("", "ipconfig /all") == {}


@pytest.mark.parametrize(
    "text",
    [
        "\nWindows-IP-Konfiguration\n\nEthernet-Adapter LO:\n\n   Beschreibung. . . : x\n",
        "\nWindows IP Configuration\n\nEthernet adapter LO:\n\n   Beschreibung. . . : x\n",
    ],
)
def test_ipconfig_in_another_language_is_refused(text: str) -> None:
    with pytest.raises(parse.NetshOutputError, match="cannot read the output of `ipconfig /all`"):
        parse.ipconfig_descriptions(text, "ipconfig /all")
