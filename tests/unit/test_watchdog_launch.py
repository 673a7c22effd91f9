"""How the confirm-or-revert watchdog is started: a transient systemd service where
systemd runs the host, a process in its own session otherwise (stand-in executables)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from dsrctl import confirm
from providers import safefile
from state.statedir import StateDir

FAKE_SYSTEMD_RUN = """#!/bin/sh
# Records its arguments, then starts what follows "--" detached, like a service would be.
printf '%s\\n' "$@" > "$FAKE_DIR/run.args"
[ -n "$FAKE_FAIL" ] && exit 1
while [ "$1" != "--" ]; do shift; done
shift
setsid "$@" < /dev/null > /dev/null 2>&1 &
echo $! > "$FAKE_DIR/main.pid"
"""
FAKE_SYSTEMCTL = """#!/bin/sh
printf '%s\\n' "$@" > "$FAKE_DIR/ctl.args"
cat "$FAKE_DIR/main.pid"
"""


@pytest.fixture
def fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("systemd-run", FAKE_SYSTEMD_RUN), ("systemctl", FAKE_SYSTEMCTL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DIR", str(tmp_path))
    monkeypatch.setattr(confirm, "_systemd_running", lambda: True)
    return tmp_path


def wait_gone(pid: int) -> bool:
    from state.process import process_alive

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return True
        time.sleep(0.1)
    return False


def test_watchdog_runs_as_a_transient_service_when_systemd_runs(fakes: Path) -> None:
    state = StateDir(str(fakes / "state"), safefile)
    state.ensure()
    pending = confirm.start_watchdog(state, "TXN1", time.time() + 600, "linux")
    args = (fakes / "run.args").read_text().splitlines()
    assert args[0] == "--unit=dsrctl-revert-TXN1.service"
    assert "--collect" in args
    command = args[args.index("--") + 1 :]
    assert command[-2:] == ["revert-unless-confirmed", "TXN1"]
    assert command[command.index("--state-dir") + 1] == state.path
    assert (fakes / "ctl.args").read_text().split() == [
        "show",
        "--property=MainPID",
        "--value",
        "dsrctl-revert-TXN1.service",
    ]
    assert pending.watchdog_pid == int((fakes / "main.pid").read_text())
    assert pending.watchdog_alive()
    # Confirmed: the watchdog sees the pending record gone and exits by itself.
    confirm.clear_pending(state, "TXN1")
    assert wait_gone(pending.watchdog_pid)


def test_falls_back_to_its_own_session_when_systemd_run_fails(
    fakes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_FAIL", "1")
    state = StateDir(str(fakes / "state"), safefile)
    state.ensure()
    pending = confirm.start_watchdog(state, "TXN2", time.time() + 600, "linux")
    assert not (fakes / "main.pid").exists()
    assert pending.watchdog_alive()
    assert os.getsid(pending.watchdog_pid) == pending.watchdog_pid  # a session of its own
    confirm.clear_pending(state, "TXN2")
    assert wait_gone(pending.watchdog_pid)
