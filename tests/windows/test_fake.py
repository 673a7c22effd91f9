"""The stand-ins refuse what netsh and devcon refuse, with their texts and exit codes:
a fake that accepts anything would test nothing."""

from __future__ import annotations

from tests.windows.fake_host import FakeWindows

SYNTAX = "The syntax supplied for this command is not valid. Check help for the correct syntax."


def test_misspelled_keyword_is_a_syntax_error(win: FakeWindows) -> None:
    # The app note's typo: netsh has no "weakhostsendsend".
    result = win.netsh("interface", "ipv4", "set", "interface", '"LO"', "weakhostsendsend=enabled")
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == SYNTAX
    assert "Usage: " in result.stdout
    assert win.adapter("LO")["ipv4"]["weakhostsend"] == "disabled"
    ok = win.netsh(
        "interface", "ipv4", "set", "interface", 'interface="LO"', "weakhostsend=enabled"
    )
    assert (ok.returncode, ok.stdout.strip()) == (0, "Ok.")
    assert win.adapter("LO")["ipv4"]["weakhostsend"] == "enabled"


def test_bad_value_unknown_command_and_unknown_interface(win: FakeWindows) -> None:
    bad = win.netsh("interface", "ipv4", "set", "interface", 'interface="LO"', "weakhostsend=on")
    assert (bad.returncode, bad.stdout.strip()) == (1, "The parameter is incorrect.")
    unknown = win.netsh("interface", "ipv4", "sett", "interface", 'interface="LO"')
    assert unknown.returncode == 1
    assert unknown.stdout.strip() == (
        'The following command was not found: interface ipv4 sett interface interface="LO".'
    )
    missing = win.netsh("interface", "ipv4", "show", "interfaces", 'interface="WAN"')
    assert missing.returncode == 1
    assert missing.stdout.strip() == (
        "The filename, directory name, or volume label syntax is incorrect."
    )


def test_address_already_present_and_absent(win: FakeWindows) -> None:
    add = ["interface", "ipv4", "add", "address", 'name="LAN"', "address=198.18.0.10"]
    result = win.netsh(*add, "mask=255.255.255.0")
    assert (result.returncode, result.stdout.strip()) == (1, "The object already exists.")
    delete = ["interface", "ipv4", "delete", "address", 'name="LAN"', "address=198.18.0.99"]
    result = win.netsh(*delete)
    assert (result.returncode, result.stdout.strip()) == (1, "Element not found.")
    result = win.netsh(*add[:5], "address=198.18.0.11")  # no mask
    assert result.returncode == 1 and "essential parameters" in result.stdout


def test_names_are_split_as_netsh_splits_a_command_line(win: FakeWindows) -> None:
    win.change(lambda s: s["adapters"][1].update(name="Loopback DSR"))
    unquoted = win.netsh("interface", "ipv4", "show", "interfaces", "interface=Loopback DSR")
    assert unquoted.returncode == 1  # netsh sees interface=Loopback and a stray word DSR
    quoted = win.netsh("interface", "ipv4", "show", "interfaces", 'interface="Loopback DSR"')
    assert quoted.returncode == 0 and "Interface Loopback DSR Parameters" in quoted.stdout


def test_elevation_2003_contexts_and_firewall(win: FakeWindows) -> None:
    set_lo = ["interface", "ipv4", "set", "interface", 'interface="LO"', "metric=254"]
    win.change(lambda s: s.update(elevated=False))
    result = win.netsh(*set_lo)
    assert result.returncode == 1
    assert (
        result.stdout.strip()
        == "The requested operation requires elevation (Run as administrator)."
    )
    assert win.netsh("interface", "show", "interface").returncode == 0  # reads need no elevation
    win.change(lambda s: s.update(elevated=True, version="2003"))
    result = win.netsh(*set_lo)
    assert result.returncode == 1 and "The following command was not found" in result.stdout
    result = win.netsh("advfirewall", "firewall", "show", "rule", 'name="x"')
    assert result.returncode == 1 and "The following command was not found" in result.stdout
    win.change(lambda s: s.update(version="2008+"))
    result = win.netsh("advfirewall", "firewall", "show", "rule", 'name="dsr-web"', "verbose")
    assert (result.returncode, result.stdout.strip()) == (
        1,
        "No rules match the specified criteria.",
    )
    rule = ["advfirewall", "firewall", "add", "rule", 'name="dsr-web"', "dir=in", "action=allow"]
    for _ in range(2):  # netsh allows two rules with one name
        assert win.netsh(*rule, "protocol=TCP", "localport=80").returncode == 0
    result = win.netsh("advfirewall", "firewall", "delete", "rule", 'name="dsr-web"')
    assert result.stdout.split() == ["Deleted", "2", "rule(s).", "Ok."]


def test_output_has_crlf_line_ends_and_optionally_a_bom(win: FakeWindows) -> None:
    import subprocess

    def raw() -> bytes:
        command = ["netsh", "interface", "show", "interface"]
        return subprocess.run(command, capture_output=True, env=win.env).stdout

    assert raw().startswith(b"\r\nAdmin State")
    win.change(lambda s: s["style"].update(bom=True))
    assert raw().startswith(b"\xef\xbb\xbf\r\nAdmin State")


def test_devcon_creates_and_removes_a_loopback_adapter(win: FakeWindows) -> None:
    import subprocess

    def devcon(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["devcon", *args], capture_output=True, text=True, env=win.env)

    assert devcon("install", "C:\\Windows\\inf\\netloop.inf", "*MSLOOP").returncode == 0
    found = devcon("find", "*MSLOOP").stdout.splitlines()
    assert found[-1] == "2 matching device(s) found."
    assert found[1].startswith("ROOT\\NET\\0001") and found[1].endswith("Adapter #2")
    assert win.adapter("Ethernet 2")["ipv4"]["dhcp"] is True
    assert devcon("install", "netloop.inf", "*MSLOOP").returncode == 2
    assert devcon("remove", "@ROOT\\NET\\0001").returncode == 0
    assert [a["name"] for a in win.state()["adapters"]] == ["LAN", "LO"]
