"""A missing loopback adapter: created with devcon, or a manual step that stops apply."""

from __future__ import annotations

from typing import Any

from tests.windows.fake_host import SPEC, FakeWindows, host_state

WITH_DEVCON = SPEC.replace('uplinks = ["LAN"]', 'uplinks = ["LAN"]\ndevcon = "devcon"')


def test_missing_adapter_without_devcon_stops_apply_before_any_change(win: FakeWindows) -> None:
    win.write(host_state(loopback=False))
    spec = str(win.spec())
    result = win.dsrctl("plan", "--detailed-exitcode", spec)
    assert result.returncode == 1  # apply would refuse it (issue 12): an error, not "changes"
    assert result.stderr.startswith(
        "error: apply would refuse: adapter:LO needs a manual step: create the loopback adapter"
    )
    assert (
        "+ adapter LO: present  (MANUAL, apply stops before changing anything: create"
        in result.stdout
    )
    assert "devcon install %windir%\\inf\\netloop.inf *MSLOOP" in result.stdout
    assert 'netsh interface set interface name="<new adapter>" newname="LO"' in result.stdout
    assert "+ netsh ipv4:LO:weakhostsend: enabled" in result.stdout
    before = win.snapshot()
    win.clear_log()
    result = win.dsrctl("apply", "--auto-approve", spec)
    assert result.returncode == 1
    assert result.stderr.startswith(
        "error: apply stopped before changing anything: adapter:LO needs a manual step: create "
        "the loopback adapter by hand"
    )
    assert win.snapshot() == before and win.writes() == []


def test_adapter_created_with_devcon_found_and_renamed(win: FakeWindows) -> None:
    win.write(host_state(loopback=False))
    spec = str(win.spec(WITH_DEVCON))
    result = win.dsrctl("apply", "--auto-approve", spec)
    assert result.returncode == 0, result.stderr
    assert "+ adapter LO: present  (devcon installs *MSLOOP; the new adapter is renamed LO)" in (
        result.stdout
    )
    log = win.log()
    install = next(line for line in log if "devcon install" in line)
    assert install == "devcon install C:\\Windows\\inf\\netloop.inf *MSLOOP"
    assert 'netsh interface set interface name="Ethernet 2" newname="LO"' in log
    assert log.index(install) < log.index(
        'netsh interface set interface name="Ethernet 2" newname="LO"'
    )
    lo = win.adapter("LO")
    assert lo["ipv4"]["dhcp"] is False and lo["ipv4"]["addresses"] == [["192.0.2.100", 32, True]]
    assert win.state()["devices"][0]["adapter"] == "LO"
    assert win.dsrctl("drift", spec).returncode == 0


def test_a_failed_apply_removes_the_adapter_it_created(win: FakeWindows) -> None:
    win.write(host_state(loopback=False))
    before = win.snapshot()
    failure = {"match": ["ipv6 add address"], "output": "Element not found.", "exit": 1}
    win.change(lambda s: s["fail"].append(failure))
    result = win.dsrctl("apply", "--auto-approve", str(win.spec(WITH_DEVCON)))
    assert result.returncode == 1
    assert "Element not found." in result.stderr and "rolled back" in result.stderr
    assert "devcon remove @ROOT\\NET\\0000" in win.log()
    assert win.snapshot() == before


def test_a_failed_rename_removes_the_new_device_again(win: FakeWindows) -> None:
    def prepare(state: dict[str, Any]) -> None:
        state.update(host_state(loopback=False))
        state["fail"] = [{"match": ["newname="], "output": "Element not found.", "exit": 1}]

    win.change(prepare)
    before = win.snapshot()
    result = win.dsrctl("apply", "--auto-approve", str(win.spec(WITH_DEVCON)))
    assert result.returncode == 1
    assert "removed the new loopback device again (ROOT\\NET\\0000)" in result.stderr
    assert win.snapshot() == before
