"""Fault injection against the real kernel: a full disk at every write point, SIGKILL at
random moments, and after each the host is exactly as before or exactly as planned, and
rollback and apply keep working.

The full disk is a small tmpfs mounted inside ``ip netns exec`` (which runs in a mount
namespace of its own), so it exists only for the script that runs there and disappears
with it; the state directory and the persistence root both live on it.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.netns.namespaces import Netns

VIPS = 300


def dsrctl_in(ns: Netns) -> list[str]:
    return ["ip", "netns", "exec", ns.name, sys.executable, "-m", "dsrctl"]


TMPFS_BYTES = 1024 * 1024


def many_vips_spec(count: int, root: str) -> str:
    vips = "".join(f'[[vip]]\naddress = "198.18.{i // 250}.{i % 250 + 1}"\n' for i in range(count))
    return f'version = 1\n{vips}\n[linux.persist]\nroot = "{root}"\naddresses = "none"\n'


# Prints one JSON object per phase: the exit code, stderr, and the host as dsrctl sees it.
FAULT_SCRIPT = r"""
set -u
M="$1"; SPEC="$2"; FREE="$3"; PY="$4"
mount -t tmpfs -o size=%(size)d,mode=0700 tmpfs "$M" || exit 99
mkdir -p "$M/root/etc/sysctl.d" && mkdir -m 0700 "$M/state" || exit 98
export DSRCTL_STATE_DIR="$M/state"
host() {
  printf '{"lo": %%s, "arp_ignore": "%%s", "arp_announce": "%%s", "file": "%%s"}' \
    "$(ip -j addr show dev lo)" "$(sysctl -n net.ipv4.conf.all.arp_ignore)" \
    "$(sysctl -n net.ipv4.conf.all.arp_announce)" \
    "$(sha256sum "$M/root/etc/sysctl.d/90-dsrctl.conf" 2>/dev/null | cut -c1-64)"
}
phase() {
  name="$1"; shift
  "$PY" -m dsrctl "$@" >"$M/../out" 2>"$M/../err"; rc=$?
  printf '{"phase": "%%s", "rc": %%d, "stderr": %%s, "stdout": %%s, "host": %%s}\n' "$name" "$rc" \
    "$("$PY" -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' "$M/../err")" \
    "$("$PY" -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' "$M/../out")" \
    "$(host)"
}
printf '{"phase": "before", "rc": 0, "stderr": "", "stdout": "", "host": %%s}\n' "$(host)"
used=$(df -B1 --output=used "$M" | tail -1)
head -c $(( %(size)d - used - FREE )) /dev/zero > "$M/filler" 2>/dev/null
phase apply-full apply --auto-approve "$SPEC"
rm -f "$M/filler"
phase history history --json
phase apply-again apply --auto-approve "$SPEC"
used=$(df -B1 --output=used "$M" | tail -1)
head -c $(( %(size)d - used - FREE )) /dev/zero > "$M/filler" 2>/dev/null
phase rollback-full rollback --auto-approve
rm -f "$M/filler"
phase rollback rollback --auto-approve
phase drift-after drift "$SPEC"
umount "$M"
"""


def run_fault_script(netns: Netns, free_bytes: int) -> dict[str, dict[str, object]]:
    mount = netns.workdir / "small"
    mount.mkdir()
    spec = netns.workdir / "spec.toml"
    spec.write_text(many_vips_spec(VIPS, str(mount / "root")))
    script = FAULT_SCRIPT % {"size": TMPFS_BYTES}
    result = netns.run(
        "sh", "-c", script, "fault", str(mount), str(spec), str(free_bytes), sys.executable
    )
    phases = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return {str(p["phase"]): p for p in phases}


def lo_addresses(phase: dict[str, object]) -> list[str]:
    host = phase["host"]
    assert isinstance(host, dict)
    return sorted(f"{a['local']}/{a['prefixlen']}" for a in host["lo"][0]["addr_info"])


# Free bytes on the tmpfs when apply starts: from nothing (the journal's begin record does
# not fit) through the big intent record of 300 addresses, the sysctl file, the ownership
# records, up to enough for everything.
FREE = [0, 8192, 12288, 40960, 69632, 81920, 98304, 106496, 110592, 139264, 229376]


@pytest.mark.parametrize("free_bytes", FREE)
def test_a_full_disk_at_any_write_point_leaves_the_host_as_before_or_as_planned(
    netns: Netns, free_bytes: int
) -> None:
    phases = run_fault_script(netns, free_bytes)
    assert set(phases) >= {"before", "apply-full", "history", "apply-again", "rollback"}, phases
    before, full = phases["before"], phases["apply-full"]
    planned = phases["apply-again"]
    assert planned["rc"] == 0, planned["stderr"]
    assert len(lo_addresses(planned)) == VIPS + 2  # and 127.0.0.1/8, ::1/128
    stderr = str(full["stderr"])
    assert "Traceback" not in stderr
    if full["rc"] == 0:
        assert full["host"] == planned["host"]
    else:
        assert full["rc"] == 1
        assert full["host"] == before["host"], stderr
        assert "the host is as it was before apply" in stderr or "nothing was changed" in stderr, (
            stderr
        )
        assert "No space left on device" in stderr
    # Space freed: history reads a whole journal (nothing torn), rollback restores.
    assert phases["history"]["rc"] == 0, phases["history"]["stderr"]
    history = json.loads(str(phases["history"]["stdout"]))
    assert history["skipped_lines"] == []
    # A rollback on a full disk: all or nothing as well.
    undo = phases["rollback-full"]
    undo_stderr = str(undo["stderr"])
    assert "Traceback" not in undo_stderr
    if undo["rc"] == 0:
        assert undo["host"] == before["host"]
    else:
        assert undo["host"] == planned["host"], undo_stderr
        assert (
            "the host is as it was before rollback" in undo_stderr
            or "nothing was changed" in undo_stderr
        ), undo_stderr
    final = phases["rollback"]
    if undo["rc"] == 0:
        assert "nothing to roll back" in str(final["stderr"])
    else:
        assert final["rc"] == 0, final["stderr"]
    assert final["host"] == before["host"]


def test_a_killed_500_vip_apply_always_rolls_back_and_reapplies(netns: Netns) -> None:
    """SIGKILL of apply and its whole session at random moments: rollback restores the
    exact host before, apply then reaches the exact plan."""
    seed = int(os.environ.get("DSRCTL_TEST_SEED", time.time()))
    chance = random.Random(seed)
    spec = netns.workdir / "spec.toml"
    spec.write_text(many_vips_spec(500, str(netns.workdir)))
    env = {**os.environ, "DSRCTL_STATE_DIR": str(netns.state_dir)}
    env.pop("DSRCTL_REQUIRE_NETNS", None)
    command = ["ip", "netns", "exec", netns.name, sys.executable, "-m", "dsrctl"]

    def host() -> tuple[str, str, str, bytes | None]:
        path = netns.workdir / "etc" / "sysctl.d" / "90-dsrctl.conf"
        return (
            netns.run("ip", "-o", "addr", "show", "dev", "lo").stdout,
            netns.sysctl("net.ipv4.conf.all.arp_ignore"),
            netns.sysctl("net.ipv4.conf.all.arp_announce"),
            path.read_bytes() if path.exists() else None,
        )

    def dsrctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *args], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL
        )

    before = host()
    reference = dsrctl("apply", "--auto-approve", str(spec))
    assert reference.returncode == 0, reference.stderr
    planned = host()
    assert dsrctl("rollback", "--auto-approve").returncode == 0
    assert host() == before
    timed = time.monotonic()
    for attempt in range(6):
        delay = chance.uniform(0.0, 1.6)
        proc = subprocess.Popen(
            [*command, "apply", "--auto-approve", str(spec)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        time.sleep(delay)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        where = f"seed {seed}, attempt {attempt}, killed after {delay:.2f} s"
        undone = dsrctl("rollback", "--auto-approve")
        if undone.returncode != 0:
            # Killed before its first journal record: nothing to roll back, nothing changed.
            assert "nothing to roll back" in undone.stderr, f"{where}: {undone.stderr}"
        assert "Traceback" not in undone.stderr
        assert host() == before, where
        again = dsrctl("apply", "--auto-approve", str(spec))
        assert again.returncode == 0, f"{where}: {again.stderr}"
        assert host() == planned, where
        assert dsrctl("rollback", "--auto-approve").returncode == 0, where
        assert host() == before, where
    assert time.monotonic() - timed < 120


def state_with_one_apply(netns: Netns, tmp_path: Path) -> Path:
    spec = netns.workdir / "spec.toml"
    spec.write_text(
        'version = 1\n[[vip]]\naddress = "192.0.2.100"\n'
        f'[linux.persist]\nroot = "{netns.workdir}"\naddresses = "none"\n'
    )
    applied = netns.dsrctl("apply", "--auto-approve", str(spec))
    assert applied.returncode == 0, applied.stderr
    return spec


FOREIGN_LINES = [
    b'{"type": "intent", "txn": "20261204T0',  # torn by a crash or a full disk
    b"[1,2,3]",
    b"garbage that is not json",
    b'{"type": "intent", "txn": "x", "time": 1, "seq": 0, "steps": [{"kind": "warp-drive",'
    b' "resource": "warp:1"}]}',
    b'{"type": "end", "txn": "x", "time": 1, "v": 7, "result": "applied"}',
    b'{"type": "end", "txn": "x", "time": 1, "result": "exploded"}',
    b'{"type": "done", "txn": "x", "time": true, "seq": 0}',
]


def test_torn_and_foreign_journal_lines_never_lock_the_operator_out(
    netns: Netns, tmp_path: Path
) -> None:
    spec = state_with_one_apply(netns, tmp_path)
    journal = netns.state_dir / "journal.jsonl"
    with open(journal, "ab") as handle:
        handle.write(b"\n".join(FOREIGN_LINES))  # the last one torn: no newline
    listed = netns.dsrctl("history")
    assert listed.returncode == 0, listed.stderr
    assert "Traceback" not in listed.stderr + listed.stdout
    warned = [line for line in listed.stderr.splitlines() if line.startswith("warning:")]
    # All but the step of an unknown kind, which only matters to a rollback of its
    # transaction (see the next test); this one has no begin record and is ignored.
    assert len(warned) == len(FOREIGN_LINES) - 1, listed.stderr
    assert f"{journal} line" in warned[0]
    as_json = json.loads(netns.dsrctl("history", "--json").stdout)
    assert len(as_json["skipped_lines"]) == len(FOREIGN_LINES) - 1
    # A later apply warns once, and its records are not glued to the torn line.
    netns.run("sysctl", "-q", "-w", "net.ipv4.conf.all.arp_announce=0")
    repaired = netns.dsrctl("apply", "--auto-approve", str(spec))
    assert repaired.returncode == 0, repaired.stderr
    assert (repaired.stdout + repaired.stderr).count("history and rollback use the other") == 1
    # Rollback works on the valid records: undoes the repair, then the first apply.
    first = netns.dsrctl("rollback", "--auto-approve")
    assert first.returncode == 0, first.stderr
    assert netns.sysctl("net.ipv4.conf.all.arp_announce") == "0"
    second = netns.dsrctl("rollback", "--auto-approve")
    assert second.returncode == 0, second.stderr
    assert "192.0.2.100" not in netns.addresses()
    assert netns.dsrctl("history").returncode == 0


def test_an_unknown_step_kind_in_a_transaction_is_refused_in_one_line(
    netns: Netns, tmp_path: Path
) -> None:
    state_with_one_apply(netns, tmp_path)
    journal = netns.state_dir / "journal.jsonl"
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    for record in records:
        if record["type"] == "intent":
            record["steps"][0]["kind"] = "warp-drive"
            break
    journal.write_text("".join(json.dumps(r) + "\n" for r in records))
    refused = netns.dsrctl("rollback", "--auto-approve")
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "cannot be rolled back automatically" in refused.stderr
    assert "192.0.2.100" in netns.addresses()


def test_a_foreign_or_open_state_directory_is_refused(netns: Netns, tmp_path: Path) -> None:
    spec = state_with_one_apply(netns, tmp_path)
    state = netns.state_dir
    os.chmod(state, 0o777)
    refused = netns.dsrctl("apply", "--auto-approve", str(spec))
    assert refused.returncode == 1
    assert f"state directory {state} is writable by group or others" in refused.stderr
    assert "chmod go-w" in refused.stderr
    assert netns.dsrctl("plan", str(spec)).returncode == 1
    os.chmod(state, 0o700)
    os.chown(state, 65534, 65534)
    refused = netns.dsrctl("drift", str(spec))
    assert refused.returncode == 1
    assert "belongs to uid 65534" in refused.stderr
    os.chown(state, 0, 0)
    os.chmod(state / "ownership.json", 0o666)
    refused = netns.dsrctl("apply", "--auto-approve", str(spec))
    assert refused.returncode == 1
    assert "ownership.json is writable by group or others" in refused.stderr
    os.chmod(state / "ownership.json", 0o600)
    assert netns.dsrctl("drift", str(spec)).returncode == 0


@pytest.mark.parametrize("name", ["lock", "journal.jsonl", "watchdog.log", "ownership.json"])
def test_state_files_are_never_opened_through_a_link(
    netns: Netns, tmp_path: Path, name: str
) -> None:
    spec = state_with_one_apply(netns, tmp_path)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious\n")
    victim.chmod(0o644)
    link = netns.state_dir / name
    link.unlink(missing_ok=True)
    link.symlink_to(victim)
    netns.run("ip", "addr", "del", "192.0.2.100/32", "dev", "lo")
    result = netns.dsrctl("apply", "--auto-approve", "--confirm-timeout", "60", str(spec))
    assert result.returncode == 1, result.stdout
    assert "symbolic link" in result.stderr
    assert "Traceback" not in result.stderr
    assert victim.read_bytes() == b"precious\n"
    assert victim.stat().st_mode & 0o777 == 0o644
    assert "192.0.2.100" not in netns.addresses()


@pytest.mark.parametrize("created", ["true", '"false"'])
def test_a_forged_ownership_record_never_deletes_loopback(
    netns: Netns, tmp_path: Path, created: str
) -> None:
    spec = state_with_one_apply(netns, tmp_path)
    path = netns.state_dir / "ownership.json"
    data = json.loads(path.read_text())
    data["resources"]["address:lo:127.0.0.1/8"] = {
        "created": json.loads(created),
        "original": None,
        "since": "",
    }
    path.write_text(json.dumps(data))
    result = netns.dsrctl("apply", "--auto-approve", str(spec))
    assert "Traceback" not in result.stderr
    if created == "true":
        assert result.returncode == 0, result.stderr
        assert "ignored the ownership record address:lo:127.0.0.1/8" in result.stdout
    else:
        assert result.returncode == 1
        assert "'created' must be true or false" in result.stderr
    assert "127.0.0.1/8" in netns.addresses()


def test_state_dir_that_is_a_file_is_one_line(netns: Netns, tmp_path: Path) -> None:
    spec = state_with_one_apply(netns, tmp_path)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    for command in (["plan", str(spec)], ["apply", "--auto-approve", str(spec)], ["history"]):
        result = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                netns.name,
                sys.executable,
                "-m",
                "dsrctl",
                "--state-dir",
                str(blocker),
                *command,
            ],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 1, command
        assert result.stderr.strip() == (
            f"error: --state-dir {blocker} is not a directory (it is a regular file); give "
            "--state-dir (or DSRCTL_STATE_DIR) a directory of its own"
        ), result.stderr


def test_stray_temp_files_are_reported_by_drift_and_removed_by_apply(
    netns: Netns, tmp_path: Path
) -> None:
    spec = state_with_one_apply(netns, tmp_path)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(dead.stdout)
    strays = [
        netns.workdir / "etc" / "sysctl.d" / f".90-dsrctl.conf.dsrctl-tmp-{pid}-{'a' * 32}",
        netns.state_dir / f".ownership.json.dsrctl-tmp-{pid}-{'b' * 32}",
    ]
    for path in strays:
        path.write_bytes(b"half")
    drift = netns.dsrctl("drift", str(spec))
    assert drift.returncode == 0, drift.stderr
    assert "2 stray temporary file(s) of a killed run" in drift.stdout + drift.stderr
    netns.run("sysctl", "-q", "-w", "net.ipv4.conf.all.arp_announce=0")
    applied = netns.dsrctl("apply", "--auto-approve", str(spec))
    assert applied.returncode == 0, applied.stderr
    assert "removed 2 stray temporary file(s)" in applied.stdout + applied.stderr
    assert not any(path.exists() for path in strays)
    drift = netns.dsrctl("drift", str(spec))
    assert "stray temporary" not in drift.stdout + drift.stderr


def spec_two_vips(netns: Netns) -> Path:
    spec = netns.workdir / "spec.toml"
    spec.write_text(
        'version = 1\n[[vip]]\naddress = "192.0.2.100"\n[[vip]]\naddress = "2001:db8::100"\n'
        f'[linux.persist]\nroot = "{netns.workdir}"\naddresses = "none"\n'
    )
    return spec


def host_of(netns: Netns) -> tuple[str, str, str]:
    return (
        netns.run("ip", "-o", "addr", "show", "dev", "lo").stdout,
        netns.sysctl("net.ipv4.conf.all.arp_ignore"),
        netns.sysctl("net.ipv4.conf.all.arp_announce"),
    )


@pytest.mark.parametrize("pause_after", [0, 2])
def test_the_revert_is_armed_before_the_first_change(netns: Netns, pause_after: int) -> None:
    """apply --confirm-timeout killed with its whole session after the first change (ARP
    hardened) or halfway (the VIPs added, the file not yet written): the watchdog, armed
    before the first step, restores the host at the deadline. The old apply started the
    watchdog only after every step had run, so nothing ever reverted."""
    spec = spec_two_vips(netns)
    before = host_of(netns)
    env = {**os.environ, "DSRCTL_STATE_DIR": str(netns.state_dir)}
    env["DSRCTL_TEST_PAUSE_AFTER_GROUP"] = str(pause_after)
    env.pop("DSRCTL_REQUIRE_NETNS", None)
    proc = subprocess.Popen(
        [*dsrctl_in(netns), "apply", "--auto-approve", "--confirm-timeout", "3", str(spec)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "test pause after step group" in line, line + proc.stderr.read()
    assert host_of(netns) != before
    assert (netns.state_dir / "pending-confirm.json").exists()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    pending = netns.state_dir / "pending-confirm.json"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (host_of(netns) != before or pending.exists()):
        time.sleep(0.2)
    assert host_of(netns) == before
    history = netns.dsrctl("history")
    assert "reverted by" in history.stdout, history.stdout
    assert not (netns.state_dir / "pending-confirm.json").exists()


def test_a_failed_apply_ends_its_watchdog_quietly(netns: Netns) -> None:
    spec = spec_two_vips(netns)
    before = host_of(netns)
    readonly = netns.workdir / "etc" / "sysctl.d"
    script = (
        f'mount --bind {readonly} {readonly} && mount -o remount,bind,ro {readonly} && exec "$@"'
    )
    env = {**os.environ, "DSRCTL_STATE_DIR": str(netns.state_dir)}
    env.pop("DSRCTL_REQUIRE_NETNS", None)
    failed = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            netns.name,
            "sh",
            "-c",
            script,
            "sh",
            sys.executable,
            "-m",
            "dsrctl",
            "apply",
            "--auto-approve",
            "--confirm-timeout",
            "2",
            str(spec),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert failed.returncode == 1, failed.stdout
    assert "the host is as it was before apply" in failed.stderr
    assert host_of(netns) == before
    assert not (netns.state_dir / "pending-confirm.json").exists()
    log = netns.state_dir / "watchdog.log"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and "nothing to do" not in log.read_text():
        time.sleep(0.2)
    assert "nothing to do" in log.read_text()
    assert "FAILED" not in log.read_text()
    assert "reverted by" not in netns.dsrctl("history").stdout


def test_show_refuses_an_open_state_directory(netns: Netns, tmp_path: Path) -> None:
    state_with_one_apply(netns, tmp_path)
    os.chmod(netns.state_dir, 0o777)
    shown = netns.dsrctl("show")
    assert shown.returncode == 1
    assert "is writable by group or others" in shown.stderr
    os.chmod(netns.state_dir, 0o700)
    assert netns.dsrctl("show").returncode == 0
