"""plan, apply, drift and rollback on a fake Windows Server 2008+ host, through the real CLI."""

from __future__ import annotations

import json
from typing import Any

from tests.windows.fake_host import SPEC, FakeWindows


def test_plan_is_read_only_then_apply_converges(win: FakeWindows) -> None:
    spec = win.spec()
    before = win.snapshot()
    result = win.dsrctl("plan", "--detailed-exitcode", str(spec))
    assert result.returncode == 2, result.stderr
    out = result.stdout
    assert "~ netsh ipv4:LAN:weakhostreceive: disabled -> enabled" in out
    assert "~ netsh ipv4:LO:weakhostsend: disabled -> enabled" in out
    assert "~ netsh ipv6:LO:metric: 25 -> 254" in out
    assert "~ netsh ipv4:LO:dhcp: enabled -> disabled  (static addressing, no gateway)" in out
    assert "+ address 192.0.2.100/32 on LO: mask 255.255.255.255, skipassource" in out
    assert "+ address 2001:db8::100/128 on LO: /128, skipassource" in out
    assert "+ firewall dsr-web: allow in tcp port 80,443 to 192.0.2.100,2001:db8::100" in out
    assert "the IPv4 metric of LO is automatic now" in out
    assert out.rstrip().endswith("Plan: 3 to add, 9 to change, 0 to remove.")
    # weak host before the metric, the metric before any VIP, the firewall last
    assert out.index("weakhostsend") < out.index("LO:metric") < out.index("+ address")
    assert out.index("+ address") < out.index("+ firewall")
    assert win.snapshot() == before and win.writes() == []
    assert not win.state_dir.exists()

    result = win.dsrctl("apply", "--auto-approve", str(spec))
    assert result.returncode == 0, result.stderr
    assert "Apply complete: 12 change(s) applied and verified." in result.stdout
    lo, lan = win.adapter("LO"), win.adapter("LAN")
    assert lan["ipv4"]["weakhostreceive"] == lan["ipv6"]["weakhostreceive"] == "enabled"
    assert lan["ipv4"]["weakhostsend"] == "disabled"  # only the loopback sends weak
    for family in ("ipv4", "ipv6"):
        assert (lo[family]["weakhostsend"], lo[family]["weakhostreceive"]) == ("enabled", "enabled")
        assert lo[family]["metric"] == 254
    assert lo["ipv4"]["dhcp"] is False and lo["ipv4"]["gateways"] == []
    assert lo["ipv4"]["addresses"] == [["192.0.2.100", 32, True]]  # skipassource=true
    assert lo["ipv6"]["addresses"] == [["2001:db8::100", 128, True]]
    (rule,) = win.state()["firewall"]
    assert (rule["dir"], rule["action"], rule["protocol"]) == ("in", "allow", "tcp")
    assert (rule["localip"], rule["localport"]) == (["192.0.2.100", "2001:db8::100"], ["80", "443"])
    assert 'netsh interface ipv4 set interface interface="LO" weakhostsend=enabled' in win.log()

    win.clear_log()
    assert win.dsrctl("plan", "--detailed-exitcode", str(spec)).returncode == 0
    result = win.dsrctl("drift", str(spec))
    assert result.returncode == 0 and result.stdout.startswith("in sync")
    assert win.writes() == []
    records = json.loads((win.state_dir / "ownership.json").read_text())["resources"]
    assert records["address:LO:192.0.2.100/32"]["created"] is True
    assert records["netsh:ipv4:LAN:weakhostreceive"] == {
        "created": False,
        "original": "disabled",
        "since": records["netsh:ipv4:LAN:weakhostreceive"]["since"],
    }
    assert records["firewall:dsr-web"]["created"] is True

    # `dsrctl rollback` undoes the apply from the journal; only 'Automatic metric' stays off.
    result = win.dsrctl("rollback", "--auto-approve")
    assert result.returncode == 0, result.stdout + result.stderr
    assert without_metric_mode(win.snapshot()) == without_metric_mode(before)


def test_plan_json_names_kinds_and_phases(win: FakeWindows) -> None:
    result = win.dsrctl("plan", "--json", str(win.spec()))
    assert result.returncode == 0, result.stderr
    changes = {c["resource"]: c for c in json.loads(result.stdout)["changes"]}
    assert changes["netsh:ipv4:LO:dhcp"]["kind"] == "dhcp"
    assert changes["address:LO:192.0.2.100/32"]["after"] == {
        "address": "192.0.2.100",
        "prefix": 32,
        "skipassource": True,
    }
    assert changes["firewall:dsr-web"]["phase"] == "firewall"
    assert changes["firewall:dsr-web"]["after"]["localport"] == ["80", "443"]


def drifted(win: FakeWindows, spec: str) -> dict[str, dict[str, Any]]:
    result = win.dsrctl("drift", "--json", spec)
    assert result.returncode == 2, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["in_sync"] is False
    return {item["resource"]: item for item in data["drift"]}


def test_drift_after_each_kind_of_manual_change(win: FakeWindows) -> None:
    spec = str(win.spec())
    assert win.dsrctl("apply", "--auto-approve", spec).returncode == 0
    converged = win.state()
    # Other builds and captures print the same state with other widths, line ends, field
    # sets and address forms: still in sync.
    for style in (
        {"crlf": False, "bom": True, "pad": 7, "lean": True, "ip_lines": True},
        {"pad": 3, "rich": True, "plain_hosts": True},
    ):
        win.change(lambda state, style=style: state["style"].update(style))
        result = win.dsrctl("plan", "--detailed-exitcode", spec)
        assert result.returncode == 0, (style, result.stdout, result.stderr)

    def manual(change: Any) -> dict[str, dict[str, Any]]:
        state = json.loads(json.dumps(converged))
        change(state)
        win.write(state)
        win.clear_log()
        items = drifted(win, spec)
        assert win.writes() == []
        return items

    def lo(state: dict[str, Any]) -> dict[str, Any]:
        return next(a for a in state["adapters"] if a["name"] == "LO")

    # A feature update deleted the loopback adapter (and with it every VIP on it); the
    # firewall rule went too.
    items = manual(lambda s: s.update(adapters=s["adapters"][:1], firewall=[]))
    assert items["adapter:LO"]["actual"] is None
    assert items["adapter:LO"]["expected"] == "present"
    assert items["address:LO:192.0.2.100/32"]["action"] == "create"
    assert items["netsh:ipv4:LO:weakhostsend"]["actual"] is None
    assert items["firewall:dsr-web"]["actual"] is None

    # Weak host reset on the uplink, the metric changed, a VIP gone and another one added by
    # hand, the firewall rule edited.
    def edits(state: dict[str, Any]) -> None:
        state["adapters"][0]["ipv6"]["weakhostreceive"] = "disabled"
        lo(state)["ipv4"].update(metric=10, addresses=[["198.18.0.77", 32, False]])
        state["firewall"][0].update(localport=["80"], enabled=False)

    items = manual(edits)
    assert sorted(items) == [
        "address:LO:192.0.2.100/32",
        "address:LO:198.18.0.77/32",
        "firewall:dsr-web",
        "netsh:ipv4:LO:metric",
        "netsh:ipv6:LAN:weakhostreceive",
    ]
    assert items["netsh:ipv6:LAN:weakhostreceive"]["actual"] == "disabled"
    assert items["netsh:ipv4:LO:metric"]["actual"] == 10
    assert items["address:LO:192.0.2.100/32"]["action"] == "create"
    assert items["address:LO:198.18.0.77/32"]["action"] == "delete"
    assert items["firewall:dsr-web"]["actual"]["localport"] == ["80"]
    assert items["firewall:dsr-web"]["actual"]["enabled"] is False

    # apply repairs what dsrctl owns, and leaves the hand-added VIP to the operator.
    state = json.loads(json.dumps(converged))
    lo(state)["ipv4"]["addresses"].append(["198.18.0.77", 32, False])
    state["adapters"][0]["ipv4"]["weakhostreceive"] = "disabled"
    state["firewall"][0]["localport"] = ["8080"]
    win.write(state)
    result = win.dsrctl("apply", "--auto-approve", spec)
    assert result.returncode == 0, result.stderr
    assert "Apply complete: 2 change(s) applied and verified." in result.stdout
    assert (
        "! left to do by hand: address:LO:198.18.0.77/32: LO holds 198.18.0.77/32" in result.stdout
    )
    assert ["198.18.0.77", 32, False] in win.adapter("LO")["ipv4"]["addresses"]
    assert win.state()["firewall"][0]["localport"] == ["80", "443"]
    assert list(drifted(win, spec)) == ["address:LO:198.18.0.77/32"]


def without_metric_mode(snapshot: dict[str, Any]) -> dict[str, Any]:
    for entry in snapshot["adapters"]:
        for family in ("ipv4", "ipv6"):
            entry[family].pop("automatic_metric")
    return snapshot


def test_rollback_after_an_injected_failure_restores_every_observed_value(
    win: FakeWindows,
) -> None:
    spec = str(win.spec())
    before = win.snapshot()
    failure = {"match": ["firewall add rule"], "output": "The parameter is incorrect.", "exit": 1}
    win.change(lambda s: s["fail"].append(failure))
    result = win.dsrctl("apply", "--auto-approve", spec)
    assert result.returncode == 1
    assert "apply failed: `netsh advfirewall firewall add rule" in result.stderr
    assert "The parameter is incorrect." in result.stderr
    assert "rolled back 11 completed step(s)" in result.stderr
    assert "Traceback" not in result.stderr
    after = win.snapshot()
    # netsh cannot switch 'Automatic metric' back on (the plan said so); all else is back.
    assert without_metric_mode(after) == without_metric_mode(before)
    assert win.adapter("LO")["ipv4"]["metric"] == 25
    assert win.adapter("LO")["ipv4"]["dhcp"] is True
    log = win.log()
    assert 'netsh interface ipv4 set address name="LO" source=dhcp' in log
    assert 'netsh interface ipv6 delete address interface="LO" address=2001:db8::100' in log
    assert not (win.state_dir / "ownership.json").exists()


def test_not_elevated(win: FakeWindows) -> None:
    spec = str(win.spec())
    before = win.snapshot()
    unelevated = {"DSRCTL_FAKE_UNELEVATED": "1"}  # reads work (tests/windows/test_fake.py)
    result = win.dsrctl("apply", "--auto-approve", spec, env=unelevated)
    assert result.returncode == 1
    assert "The requested operation requires elevation (Run as administrator)." in result.stderr
    assert "Run dsrctl from an elevated prompt" in result.stderr
    assert "rolled back 0 completed step(s)" in result.stderr
    assert win.snapshot() == before


def test_names_with_spaces_and_non_ascii(win: FakeWindows) -> None:
    def rename(state: dict[str, Any]) -> None:
        state["adapters"][0]["name"] = "Ethernet 1 (uplink)"
        state["adapters"][1]["name"] = "Loopback DSR é"

    win.change(rename)
    text = SPEC.replace('"LO"', '"Loopback DSR é"').replace('["LAN"]', '["Ethernet 1 (uplink)"]')
    spec = str(win.spec(text))
    result = win.dsrctl("apply", "--auto-approve", spec)
    assert result.returncode == 0, result.stderr
    assert "+ address 192.0.2.100/32 on Loopback DSR é" in result.stdout
    assert (
        'netsh interface ipv4 set interface interface="Ethernet 1 (uplink)" weakhostreceive=enabled'
        in win.log()
    )


def test_dropped_resources_are_removed_only_if_dsrctl_created_them(win: FakeWindows) -> None:
    def preexisting(state: dict[str, Any]) -> None:
        lo = state["adapters"][1]
        lo["ipv4"].update(dhcp=False, addresses=[["198.18.0.5", 32, False]])

    win.change(preexisting)
    text = SPEC + '[[vip]]\naddress = "198.18.0.5"\n[[vip]]\naddress = "198.18.0.6"\n'
    assert win.dsrctl("apply", "--auto-approve", str(win.spec(text))).returncode == 0
    result = win.dsrctl(
        "apply", "--auto-approve", str(win.spec(SPEC.replace("[80, 443]", "[443]")))
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "- address 198.18.0.6/32 on LO: mask 255.255.255.255  (added by dsrctl, no longer" in out
    assert "- address 198.18.0.5/32 on LO: mask 255.255.255.255  (MANUAL: LO holds" in out
    assert "~ firewall dsr-web:" in out
    addresses = [a[0] for a in win.adapter("LO")["ipv4"]["addresses"]]
    assert addresses == ["198.18.0.5", "192.0.2.100"]  # only what dsrctl added is gone
    assert "! left to do by hand: address:LO:198.18.0.5/32" in out


def test_a_foreign_rule_of_the_same_name_is_not_replaced(win: FakeWindows) -> None:
    foreign = {
        "name": "dsr-web",
        "enabled": True,
        "dir": "in",
        "action": "allow",
        "protocol": "tcp",
        "profiles": ["domain", "private", "public"],
        "localip": [],
        "remoteip": [],
        "localport": ["80"],
        "remoteport": [],
        "program": "C:\\Apps\\web.exe",
    }
    win.change(lambda s: s["firewall"].append(foreign))
    before = win.snapshot()
    result = win.dsrctl("apply", "--auto-approve", str(win.spec()))
    assert result.returncode == 1
    assert "firewall rule 'dsr-web' has settings dsrctl could not restore" in result.stderr
    assert "Program: C:\\Apps\\web.exe" in result.stderr and "nothing was changed" in result.stderr
    assert win.snapshot() == before
