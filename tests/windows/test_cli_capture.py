"""capture on the server, plan --from-capture anywhere."""

from __future__ import annotations

import json
import os

from tests.windows.fake_host import SPEC, FakeWindows


def test_capture_then_review_the_plan_without_the_server(win: FakeWindows) -> None:
    spec = str(win.spec())
    live = win.dsrctl("plan", spec)
    result = win.dsrctl("capture", spec, "--output", "server.json")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "Captured the output of 8 command(s) to server.json."
    assert f"dsrctl plan --from-capture server.json {spec}" in result.stdout
    assert win.writes() == []
    capture = json.loads((win.root / "server.json").read_text())
    assert capture["format"] == "dsrctl-capture" and capture["platform"] == "windows"
    commands = {" ".join(entry["argv"]): entry for entry in capture["commands"]}
    raw = commands["netsh interface show interface"]["output"]
    assert raw.startswith("\r\nAdmin State    State") and raw.endswith("\r\n")
    assert (
        commands['netsh advfirewall firewall show rule name="dsr-web" verbose']["returncode"] == 1
    )

    # Elsewhere: no netsh on PATH, no access to the host; the same plan.
    offline = {"PATH": os.defpath, "DSRCTL_FAKE_WINDOWS": "/nonexistent"}
    result = win.dsrctl("plan", "--from-capture", "server.json", spec, env=offline)
    assert result.returncode == 0, result.stderr
    assert "! planned from the capture server.json" in result.stdout
    assert result.stdout.split("\n\n", 1)[1] == live.stdout.split("\n\n", 1)[1]

    # A reviewer's edit that needs no other read plans too; one that does is refused by name.
    edited = (
        SPEC.replace("ports = [80, 443]", "ports = [443]") + '[[vip]]\naddress = "198.18.0.9"\n'
    )
    result = win.dsrctl(
        "plan", "--from-capture", "server.json", str(win.spec(edited, "b.toml")), env=offline
    )
    assert result.returncode == 0, result.stderr
    assert "+ address 198.18.0.9/32 on LO" in result.stdout
    other_rule = SPEC.replace('name = "dsr-web"', 'name = "dsr-api"')
    result = win.dsrctl(
        "plan", "--from-capture", "server.json", str(win.spec(other_rule, "c.toml")), env=offline
    )
    assert result.returncode == 1
    assert (
        "the capture server.json has no output for `netsh advfirewall firewall show rule "
        'name="dsr-api" verbose`'
    ) in result.stderr


def test_capture_is_for_windows_and_checks_its_input(win: FakeWindows) -> None:
    spec = str(win.spec())
    result = win.dsrctl("capture", spec)
    assert result.returncode == 0, result.stderr  # default file name
    assert (win.root / "dsrctl-capture.json").exists()
    (win.root / "not-a-capture.json").write_text('{"format": "something"}')
    result = win.dsrctl("plan", "--from-capture", "not-a-capture.json", spec)
    assert result.returncode == 1
    assert "not-a-capture.json is not a dsrctl capture" in result.stderr
