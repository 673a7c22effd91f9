"""The 2003 profile, profile mismatches, other display languages, output variants, spec
refusals, validate and show, through the real CLI against the fake host."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.windows.fake_host import SPEC, SPEC_2003, FakeWindows, host_state


def test_2003_profile_apply_and_manual_metric(win: FakeWindows) -> None:
    win.write(host_state("2003"))
    spec = str(win.spec(SPEC_2003))
    result = win.dsrctl("apply", "--auto-approve", spec)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "~ netsh ipv4:LO:metric: 0 -> 254  (MANUAL: netsh on Windows Server 2003 cannot" in out
    assert "Apply complete: 3 change(s) applied and verified." in out
    assert "! left to do by hand: netsh:ipv4:LO:metric: netsh on Windows Server 2003" in out
    log = win.log()
    assert not any("ipv4" in line or "ipv6" in line or "advfirewall" in line for line in log)
    assert not any("skipassource" in line or "weakhost" in line for line in log)
    assert (
        'netsh interface ip set address name="LO" source=static addr=192.0.2.100 '
        "mask=255.255.255.255 gateway=none"
    ) in log
    assert 'netsh interface ip add address name="LO" addr=198.18.0.100 mask=255.255.255.255' in log
    lo = win.adapter("LO")
    assert lo["ipv4"]["dhcp"] is False
    assert [a[0] for a in lo["ipv4"]["addresses"]] == ["192.0.2.100", "198.18.0.100"]

    # drift reads the metric back (InterfaceMetric) and reports it until it is done
    result = win.dsrctl("drift", spec)
    assert result.returncode == 2
    assert "DRIFT netsh ipv4:LO:metric: expected 254, actual 0" in result.stdout

    def set_by_hand(state: dict[str, Any]) -> None:
        state["adapters"][1]["ipv4"].update(metric=254, automatic_metric=False)

    win.change(set_by_hand)
    assert win.dsrctl("drift", spec).returncode == 0


def test_2003_firewall_is_a_documented_manual_step(win: FakeWindows) -> None:
    win.write(host_state("2003"))
    text = SPEC_2003 + '[[windows.firewall]]\nname = "web"\nports = [80]\n'
    result = win.dsrctl("plan", str(win.spec(text)))
    assert result.returncode == 0, result.stderr
    assert "! firewall rule 'web' is not managed on Windows Server 2003" in result.stdout
    assert 'netsh firewall add portopening protocol=TCP port=80 name="web-80"' in result.stdout


def test_profile_that_does_not_match_the_host(win: FakeWindows) -> None:
    result = win.dsrctl("plan", str(win.spec(SPEC_2003)))  # a 2008+ host
    assert result.returncode == 1
    assert "printed the format of Windows Server 2008 and later" in result.stderr
    assert 'set windows.profile = "2008+"' in result.stderr
    win.write(host_state("2003"))
    result = win.dsrctl("plan", str(win.spec(SPEC.replace('"LAN"', '"Local Area Connection"'))))
    assert result.returncode == 1
    assert "The following command was not found: interface ipv4 show interfaces" in result.stderr
    assert 'Windows Server 2003 has no such context: set windows.profile = "2003"' in result.stderr


@pytest.mark.parametrize(("language", "name"), [("de", "German"), ("fr", "French")])
def test_other_display_languages_are_refused(win: FakeWindows, language: str, name: str) -> None:
    win.change(lambda state: state.update(language=language))
    result = win.dsrctl("plan", str(win.spec()))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(
        "error: cannot read the output of `netsh interface show interface`"
    )
    assert f"the output is in {name}; dsrctl reads English netsh output only" in result.stderr
    assert "Traceback" not in result.stderr
    assert win.writes() == []


def only_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


def test_spec_refusals_before_anything_is_read(win: FakeWindows) -> None:
    bad = SPEC.replace('uplinks = ["LAN"]', 'uplinks = ["LAN"]\nmetrik = 254')
    result = win.dsrctl("plan", str(win.spec(bad)))
    assert result.returncode == 1 and result.stdout == ""
    path = win.root / "spec.toml"
    assert only_line(result.stderr) == (
        f"error: {path}: windows.metrik = 254: unknown key (did you mean 'metric'?); known keys "
        "here: devcon, firewall, loopback, metric, profile, uplinks"
    )
    assert win.log() == []  # refused before netsh ran at all
    result = win.dsrctl("apply", "--auto-approve", str(win.spec(SPEC.replace('"LAN"', '"WAN"'))))
    assert result.returncode == 1
    assert only_line(result.stderr) == (
        f'error: {path}: windows.uplinks[0] = "WAN": no network adapter of that name on this '
        "host (adapters: LAN, LO)"
    )
    no_table = SPEC.split("[windows]")[0]
    result = win.dsrctl("drift", str(win.spec(no_table)))
    assert result.returncode == 1
    assert "windows: this host runs Windows: the spec needs a [windows] table" in result.stderr
    missing_devcon = SPEC.replace(
        'uplinks = ["LAN"]', 'uplinks = ["LAN"]\ndevcon = "C:\\\\D\\\\devcon.exe"'
    )
    result = win.dsrctl("validate", str(win.spec(missing_devcon)))
    assert result.returncode == 1
    assert 'windows.devcon = "C:\\\\D\\\\devcon.exe": not found on this host' in result.stderr
    assert win.writes() == []


def test_validate_and_show(win: FakeWindows) -> None:
    result = win.dsrctl("validate", str(win.spec()))
    assert result.returncode == 0 and "valid (2 VIP(s))" in result.stdout
    result = win.dsrctl("show", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["platform"] == "windows" and report["profile"] == "2008+"
    lan = next(entry for entry in report["interfaces"] if entry["name"] == "LAN")
    assert lan["addresses"] == [{"address": "198.18.0.10", "prefix": 24}]
    assert lan["sysctl"]["weakhostreceive"] == "disabled"
