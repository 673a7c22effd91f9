"""Monitoring outputs with plain data: Prometheus textfile (strict parser), Nagios line,
syslog datagrams captured from a local socket, the shipped timer and cron files."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dsrctl import monitoring, timer
from dsrctl.monitoring import DriftRun

parser = pytest.importorskip("prometheus_client.parser")

ROOT = Path(__file__).parents[2]
SPEC = "/etc/dsrctl/dsrctl.toml"
ITEMS: list[dict[str, Any]] = [
    {
        "resource": "sysctl:net.ipv4.conf.all.arp_ignore",
        "kind": "sysctl",
        "name": "net.ipv4.conf.all.arp_ignore",
        "expected": 1,
        "actual": 0,
        "action": "update",
    },
    {
        "resource": "address:lo:192.0.2.100/32",
        "kind": "address",
        "name": "lo:192.0.2.100/32",
        "expected": {"address": "192.0.2.100", "prefix": 32, "label": "lo:1"},
        "actual": None,
        "action": "create",
    },
]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found[(name, tuple(sorted({"spec": SPEC, **labels}.items())))]


def test_prometheus_in_sync_and_drift() -> None:
    ok = samples(monitoring.prometheus_text(DriftRun(SPEC, 1000.0, 0.25)))
    assert value(ok, "dsrctl_drift_in_sync") == 1
    assert value(ok, "dsrctl_drift_error") == 0
    assert value(ok, "dsrctl_drift_items", kind="sysctl") == 0
    assert value(ok, "dsrctl_drift_items", kind="route") == 0  # a VIP range's local route
    assert value(ok, "dsrctl_drift_duration_seconds") == 0.25
    assert value(ok, "dsrctl_drift_last_success_timestamp_seconds") == 1000.25
    drifted = samples(monitoring.prometheus_text(DriftRun(SPEC, 2000.0, 0.5, items=ITEMS)))
    assert value(drifted, "dsrctl_drift_in_sync") == 0
    assert value(drifted, "dsrctl_drift_items", kind="sysctl") == 1
    assert value(drifted, "dsrctl_drift_items", kind="address") == 1
    assert value(drifted, "dsrctl_drift_items", kind="file") == 0


def test_prometheus_error_keeps_the_last_success_and_does_not_look_healthy() -> None:
    first = monitoring.prometheus_text(DriftRun(SPEC, 1000.0, 0.25))
    failed = monitoring.prometheus_text(DriftRun(SPEC, 5000.0, 0.1, error="boom"), first)
    found = samples(failed)
    assert value(found, "dsrctl_drift_error") == 1
    assert value(found, "dsrctl_drift_in_sync") == 0
    assert value(found, "dsrctl_drift_last_success_timestamp_seconds") == 1000.25
    assert value(found, "dsrctl_drift_last_run_timestamp_seconds") == 5000.0
    assert not any(name == "dsrctl_drift_items" for name, _ in found)


def test_prometheus_escapes_label_values() -> None:
    text = monitoring.prometheus_text(DriftRun('/tmp/we"ird\\spec.toml', 1.0, 0.1))
    found = samples(text)
    assert found[("dsrctl_drift_in_sync", (("spec", '/tmp/we"ird\\spec.toml'),))] == 1
    again = monitoring.prometheus_text(
        DriftRun('/tmp/we"ird\\spec.toml', 9.0, 0.1, error="x"), text
    )
    assert "dsrctl_drift_last_success_timestamp_seconds" in again


def test_write_prometheus_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "dsrctl.prom"
    monitoring.write_prometheus(str(path), DriftRun(SPEC, 1.0, 0.1))
    inode = path.stat().st_ino
    monitoring.write_prometheus(str(path), DriftRun(SPEC, 2.0, 0.1, items=ITEMS))
    assert path.stat().st_ino != inode  # a new file renamed over the old one
    assert path.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dsrctl.prom"]
    assert value(samples(path.read_text()), "dsrctl_drift_in_sync") == 0


def test_nagios_lines_and_codes() -> None:
    code, line = monitoring.nagios_line(DriftRun(SPEC, 1.0, 0.2))
    assert code == 0
    assert line.startswith(f"DSRCTL OK - host matches {SPEC} | drifted=0;;1;0 ")
    code, line = monitoring.nagios_line(DriftRun(SPEC, 1.0, 0.2, items=ITEMS))
    assert code == 2
    assert line.startswith("DSRCTL CRITICAL - 2 item(s) drifted from")
    assert "sysctl net.ipv4.conf.all.arp_ignore (expected 1, actual 0)" in line
    assert "address lo:192.0.2.100/32 (expected label=lo:1, actual missing)" in line
    assert (
        "| drifted=2;;1;0 address=1;;1;0 file=0;;1;0 route=0;;1;0 sysctl=1;;1;0 duration=0.200s"
        in line
    )
    code, line = monitoring.nagios_line(DriftRun(SPEC, 1.0, 0.2, error="spec file not found"))
    assert (code, line) == (3, "DSRCTL UNKNOWN - spec file not found | duration=0.200s")
    assert "\n" not in line


@pytest.fixture
def syslog_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = tmp_path / "log.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(5)
    monkeypatch.setenv("DSRCTL_SYSLOG_SOCKET", str(path))
    yield server
    server.close()


def test_syslog_message_format(syslog_socket: socket.socket) -> None:
    severity, message = monitoring.drift_message(DriftRun(SPEC, 1.0, 0.2, items=ITEMS))
    monitoring.log(message, severity)
    data = syslog_socket.recv(65536).decode()
    # facility daemon (3) * 8 + warning (4) = 28
    assert data.startswith("<28>")
    assert f" dsrctl[{os.getpid()}]: drift found: 2 item(s) spec={SPEC}: " in data


def test_syslog_without_a_socket_never_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSRCTL_SYSLOG_SOCKET", "/nonexistent/log")
    monitoring.log("nobody listens")


def test_contrib_files_are_what_install_timer_writes() -> None:
    defaults = timer.TimerOptions()
    assert (ROOT / "contrib/systemd/dsrctl-drift.service").read_text() == timer.service_unit(
        defaults
    )
    assert (ROOT / "contrib/systemd/dsrctl-drift.timer").read_text() == timer.timer_unit(defaults)
    assert (ROOT / "contrib/cron.d/dsrctl").read_text() == timer.cron_file(defaults)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_installed_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    executable = shutil.which("dsrctl")
    assert executable is not None
    options = timer.TimerOptions(every="10min", executable=executable, prometheus="/tmp/x.prom")
    done = timer.install(options, root=str(tmp_path))
    unit_dir = tmp_path / "etc/systemd/system"
    link = unit_dir / "timers.target.wants/dsrctl-drift.timer"
    assert os.readlink(link) == "/etc/systemd/system/dsrctl-drift.timer"
    assert any(line.startswith("enabled dsrctl-drift.timer") for line in done)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "dsrctl-drift.service", "dsrctl-drift.timer"],
        cwd=unit_dir,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "OnUnitActiveSec=10min" in (unit_dir / "dsrctl-drift.timer").read_text()
    again = timer.install(options, root=str(tmp_path))
    assert all(line.startswith("unchanged") for line in again)


def test_cron_file_takes_a_lock_and_spreads_runs(tmp_path: Path) -> None:
    options = timer.TimerOptions(every="1h", delay="10min", executable="/usr/bin/dsrctl")
    (line,) = timer.install(options, root=str(tmp_path), cron=True)
    text = (tmp_path / "etc/cron.d/dsrctl").read_text()
    assert line == f"wrote {tmp_path}/etc/cron.d/dsrctl"
    assert "0 */1 * * * root flock -n /run/lock/dsrctl-drift.lock sh -c" in text
    assert "shuf -i 0-600 -n 1" in text
    with pytest.raises(Exception, match="give minutes or hours"):
        timer.cron_file(timer.TimerOptions(every="15s"))


HOSTILE_SPEC = '/srv/dsr specs/a%zb $HOME "q" \\x.toml'


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_a_spec_path_with_specifiers_quotes_and_dollars_reaches_drift_as_written(
    tmp_path: Path,
) -> None:
    """systemd expands % specifiers and $VARIABLES on ExecStart= lines, and shlex quoting
    is not its syntax: the old unit failed to load ("Failed to resolve specifiers")."""
    executable = shutil.which("dsrctl")
    assert executable is not None
    options = timer.TimerOptions(executable=executable, spec=HOSTILE_SPEC)
    timer.install(options, root=str(tmp_path))
    unit_dir = tmp_path / "etc/systemd/system"
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "dsrctl-drift.service"],
        cwd=unit_dir,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    exec_start = next(
        line
        for line in (unit_dir / "dsrctl-drift.service").read_text().splitlines()
        if line.startswith("ExecStart=")
    )
    assert exec_start == (
        f'ExecStart={executable} drift "/srv/dsr specs/a%%zb $$HOME \\"q\\" \\\\x.toml"'
    )


def test_cron_escapes_percent_and_makes_the_spec_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    options = timer.TimerOptions(executable="/usr/bin/dsrctl", spec="rel/50%.toml")
    text = timer.cron_file(options)
    job = text.splitlines()[-1]
    assert f"{tmp_path}/rel/50\\%.toml" in job
    assert "%" not in job.replace("\\%", "")


def test_a_bad_delay_names_the_delay_option() -> None:
    with pytest.raises(Exception, match="--delay '-5'"):
        timer.timer_unit(timer.TimerOptions(delay="-5"))


def test_install_timer_never_follows_a_link_planted_for_the_wants_directory(
    tmp_path: Path,
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "etc/systemd/system/timers.target.wants").symlink_to(elsewhere)
    options = timer.TimerOptions(executable="/usr/bin/dsrctl")
    with pytest.raises(Exception, match=r"timers\.target\.wants"):
        timer.install(options, root=str(root))
    assert list(elsewhere.iterdir()) == []
