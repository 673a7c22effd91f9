"""drift for monitoring, through the real CLI against the real kernel: Nagios codes,
Prometheus textfile (strict parser, atomic replacement), syslog, --fix, install-timer."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest

from tests.netns.namespaces import SPEC, Netns, write_spec

parser = pytest.importorskip("prometheus_client.parser")


def metrics(path: Path) -> dict[str, float]:
    found = {}
    for family in parser.text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            kind = sample.labels.get("kind")
            found[sample.name + (f"[{kind}]" if kind else "")] = sample.value
    return found


def test_nagios_ok_critical_unknown(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    ok = netns.dsrctl("drift", "--nagios", str(spec))
    assert ok.returncode == 0
    assert ok.stdout.startswith(f"DSRCTL OK - host matches {spec} | drifted=0;;1;0")
    assert ok.stdout.count("\n") == 1
    netns.set_sysctl("net.ipv4.conf.all.arp_ignore", "0")
    critical = netns.dsrctl("drift", "--nagios", str(spec))
    assert critical.returncode == 2
    assert critical.stdout.startswith("DSRCTL CRITICAL - 1 item(s) drifted from")
    assert "sysctl net.ipv4.conf.all.arp_ignore (expected 1, actual 0)" in critical.stdout
    unknown = netns.dsrctl("drift", "--nagios", str(netns.workdir / "missing.toml"))
    assert unknown.returncode == 3
    assert unknown.stdout.startswith("DSRCTL UNKNOWN - ")
    assert "spec file not found" in unknown.stdout
    assert "Traceback" not in unknown.stderr


def test_prometheus_textfile_through_a_drift_and_an_error(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    prom = netns.workdir / "dsrctl.prom"
    assert netns.dsrctl("drift", "--prometheus", str(prom), str(spec)).returncode == 2
    fresh = metrics(prom)
    assert fresh["dsrctl_drift_in_sync"] == 0
    assert fresh["dsrctl_drift_items[sysctl]"] == 2
    assert fresh["dsrctl_drift_items[address]"] == 2
    assert fresh["dsrctl_drift_items[file]"] == 1
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    assert netns.dsrctl("drift", "--prometheus", str(prom), str(spec)).returncode == 0
    good = metrics(prom)
    assert good["dsrctl_drift_in_sync"] == 1
    assert good["dsrctl_drift_error"] == 0
    # A broken check: the spec became invalid. It must not look healthy.
    spec.write_text(spec.read_text().replace("version = 1", "version = 7"))
    failed = netns.dsrctl("drift", "--prometheus", str(prom), str(spec))
    assert failed.returncode == 1
    assert "unknown spec version" in failed.stderr
    broken = metrics(prom)
    assert broken["dsrctl_drift_error"] == 1
    assert broken["dsrctl_drift_in_sync"] == 0
    assert (
        broken["dsrctl_drift_last_success_timestamp_seconds"]
        == good["dsrctl_drift_last_success_timestamp_seconds"]
    )


def test_textfile_readers_never_see_a_partial_file(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    prom = netns.workdir / "dsrctl.prom"
    netns.dsrctl("drift", "--prometheus", str(prom), str(spec))
    stop = threading.Event()
    reads: list[int] = []
    bad: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            text = prom.read_text()
            reads.append(1)
            if not text.endswith("\n") or "dsrctl_drift_last_run_timestamp_seconds" not in text:
                bad.append(text)
            else:
                list(parser.text_string_to_metric_families(text))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(6):
            netns.dsrctl("drift", "--prometheus", str(prom), str(spec))
    finally:
        stop.set()
        thread.join()
    assert len(reads) > 50
    assert bad == []


def test_drift_and_apply_are_logged_to_syslog(netns: Netns, tmp_path: Path) -> None:
    path = tmp_path / "log.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(10)
    netns.env["DSRCTL_SYSLOG_SOCKET"] = str(path)
    try:
        spec = write_spec(netns, SPEC)
        assert netns.dsrctl("drift", str(spec)).returncode == 2
        drift = server.recv(65536).decode()
        assert drift.startswith("<28>")  # daemon.warning
        assert f"drift found: 5 item(s) spec={spec}" in drift
        assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
        apply = server.recv(65536).decode()
        assert apply.startswith("<29>")  # daemon.notice
        assert "5 change(s) applied" in apply
        assert "user=root" in apply
        assert netns.dsrctl("drift", str(spec)).returncode == 0
        assert "drift: in sync" in server.recv(65536).decode()
        assert netns.dsrctl("rollback", "--auto-approve").returncode == 0
        assert "rollback " in server.recv(65536).decode()
    finally:
        server.close()


def test_drift_fix_repairs_through_apply(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    netns.run("ip", "addr", "del", "192.0.2.100/32", "dev", "lo")
    fixed = netns.dsrctl("drift", "--fix", "--json", str(spec))
    assert fixed.returncode == 2
    report = json.loads(fixed.stdout)
    assert report["fixed"] is True
    assert [item["resource"] for item in report["drift"]] == ["address:lo:192.0.2.100/32"]
    assert "192.0.2.100/32" in netns.addresses()
    assert netns.dsrctl("drift", str(spec)).returncode == 0
    history = json.loads(netns.dsrctl("history", "--json").stdout)["transactions"]
    assert history[-1]["kind"] == "apply"
    assert history[-1]["steps"] == 1


def test_install_timer_under_a_root(netns: Netns) -> None:
    root = netns.workdir / "root"
    first = netns.dsrctl("install-timer", "--root", str(root), "--every", "5min")
    assert first.returncode == 0, first.stderr
    assert "enabled dsrctl-drift.timer" in first.stdout
    timer = (root / "etc/systemd/system/dsrctl-drift.timer").read_text()
    assert "OnUnitActiveSec=5min" in timer
    assert (root / "etc/systemd/system/timers.target.wants/dsrctl-drift.timer").is_symlink()
    again = netns.dsrctl("install-timer", "--root", str(root), "--every", "5min")
    assert again.stdout.count("unchanged") == 3
    cron = netns.dsrctl("install-timer", "--root", str(root), "--cron")
    assert cron.returncode == 0
    assert "flock -n" in (root / "etc/cron.d/dsrctl").read_text()
    bad = netns.dsrctl("install-timer", "--root", str(root), "--every", "soon")
    assert bad.returncode == 1
    assert "give minutes or hours" in bad.stderr
