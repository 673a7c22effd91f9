"""Change-window safety against the real kernel: saved plans, confirm-or-revert, rollback,
crash recovery at every step boundary, the lock, adoption."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.netns.namespaces import SPEC, Netns, snapshot, sysctl_file, write_spec

# Step groups of SPEC's apply on a fresh namespace, in order: arp_ignore, arp_announce,
# the two VIPs (one netlink batch), the sysctl file.
BOUNDARIES = [-1, 0, 1, 2, 3]


def dsrctl_in(ns: Netns) -> list[str]:
    return ["ip", "netns", "exec", ns.name, sys.executable, "-m", "dsrctl"]


def start_apply(ns: Netns, *args: str, pause: int | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "DSRCTL_STATE_DIR": str(ns.state_dir)}
    env.pop("DSRCTL_REQUIRE_NETNS", None)
    if pause is not None:
        env["DSRCTL_TEST_PAUSE_AFTER_GROUP"] = str(pause)
    return subprocess.Popen(
        ["ip", "netns", "exec", ns.name, sys.executable, "-m", "dsrctl", "apply", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )


def wait_for_pause(proc: subprocess.Popen[str]) -> None:
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "test pause after step group" in line:
            return
        if not line and proc.poll() is not None:
            raise AssertionError(f"apply ended before the pause: {proc.returncode}")
    raise AssertionError("apply never reached the pause")


def kill_group(proc: subprocess.Popen[str]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def wait_until(check: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_kill_at_each_step_boundary_then_rollback_restores_exactly(
    netns: Netns, boundary: int
) -> None:
    spec = write_spec(netns, SPEC)
    before = snapshot(netns)
    proc = start_apply(netns, "--auto-approve", str(spec), pause=boundary)
    try:
        wait_for_pause(proc)
    finally:
        kill_group(proc)
    plan = netns.dsrctl("plan", str(spec))
    assert "was interrupted; `dsrctl rollback` restores the state before it" in plan.stdout
    history = netns.dsrctl("history").stdout
    assert "unfinished" in history
    rolled = netns.dsrctl("rollback", "--auto-approve")
    assert rolled.returncode == 0, rolled.stderr
    assert "recovered the lock left by a dsrctl run that died" in rolled.stdout
    assert snapshot(netns) == before
    assert "reverted by" in netns.dsrctl("history").stdout
    assert "was interrupted" not in netns.dsrctl("plan", str(spec)).stdout
    applied = netns.dsrctl("apply", "--auto-approve", str(spec))
    assert applied.returncode == 0, applied.stderr
    assert netns.dsrctl("drift", str(spec)).returncode == 0


def test_apply_after_a_crash_converges_and_remembers_what_the_dead_run_added(
    netns: Netns,
) -> None:
    spec = write_spec(netns, SPEC)
    proc = start_apply(netns, "--auto-approve", str(spec), pause=2)
    try:
        wait_for_pause(proc)
    finally:
        kill_group(proc)
    assert "192.0.2.100/32" in netns.addresses()
    applied = netns.dsrctl("apply", "--auto-approve", str(spec))
    assert applied.returncode == 0, applied.stderr
    assert "converging over the unfinished apply" in applied.stdout
    assert "unfinished, converged by" in netns.dsrctl("history").stdout
    # The VIPs the dead run added count as dsrctl's: dropping them from the spec removes them.
    smaller = write_spec(netns, 'version = 1\n[[vip]]\naddress = "198.18.0.1"\n')
    plan = netns.dsrctl("plan", str(smaller)).stdout
    assert "- address 192.0.2.100/32 on lo" in plan
    assert "- address 2001:db8::100/128 on lo" in plan


def test_rollback_of_a_converging_apply_also_undoes_the_dead_run(netns: Netns) -> None:
    """Never leave a VIP on lo with ARP relaxed: the dead run's VIP goes back out too."""
    first = write_spec(netns, 'version = 1\n[[vip]]\naddress = "192.0.2.100"\n')
    before = snapshot(netns)
    assert netns.dsrctl("apply", "--auto-approve", str(first)).returncode == 0
    first_id = json.loads(netns.dsrctl("history", "--json").stdout)["transactions"][0]["id"]
    second = write_spec(
        netns, 'version = 1\n[[vip]]\naddress = "192.0.2.100"\n[[vip]]\naddress = "192.0.2.101"\n'
    )
    proc = start_apply(netns, "--auto-approve", str(second), pause=0)  # VIP added, then killed
    try:
        wait_for_pause(proc)
    finally:
        kill_group(proc)
    assert "192.0.2.101/32" in netns.addresses()
    assert netns.dsrctl("apply", "--auto-approve", str(second)).returncode == 0
    rolled = netns.dsrctl("rollback", "--auto-approve", "--to", first_id)
    assert rolled.returncode == 0, rolled.stderr
    assert snapshot(netns) == before
    assert "192.0.2.101" not in netns.addresses()


def test_an_apply_killed_after_its_last_step_can_still_be_rolled_back(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    before = snapshot(netns)
    proc = start_apply(netns, "--auto-approve", str(spec), pause=3)
    try:
        wait_for_pause(proc)
    finally:
        kill_group(proc)
    converged = netns.dsrctl("apply", "--auto-approve", str(spec))
    assert "No changes" in converged.stdout
    rows = json.loads(netns.dsrctl("history", "--json").stdout)["transactions"]
    assert rows[-1]["result"] == "applied"
    assert netns.dsrctl("rollback", "--auto-approve").returncode == 0
    assert snapshot(netns) == before


def test_saved_plan_applies_exactly_and_refuses_when_stale(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    saved = netns.workdir / "change.plan"
    made = netns.dsrctl("plan", "--out", str(saved), str(spec))
    assert made.returncode == 0
    assert saved.stat().st_mode & 0o777 == 0o600
    planned = json.loads(saved.read_text())["plan"]["changes"]

    # The host changed by hand: refused, naming what changed, and nothing applied.
    netns.set_sysctl("net.ipv4.conf.all.arp_announce", "1")
    before = snapshot(netns)
    stale = netns.dsrctl("apply", str(saved))
    assert stale.returncode == 1
    assert "is stale: the host changed since the plan was made" in stale.stderr
    assert "sysctl:net.ipv4.conf.all.arp_announce (was 0, now 1)" in stale.stderr
    assert snapshot(netns) == before
    netns.set_sysctl("net.ipv4.conf.all.arp_announce", "0")

    # The spec edited: refused.
    original = spec.read_text()
    spec.write_text(original.replace("lo:1", "lo:2"))
    edited = netns.dsrctl("apply", str(saved))
    assert edited.returncode == 1
    assert "is stale: the spec" in edited.stderr
    spec.write_text(original)

    # Nothing changed: applied exactly, without asking (stdin is not a terminal).
    applied = netns.dsrctl("apply", str(saved))
    assert applied.returncode == 0, applied.stderr
    journal = [
        json.loads(line) for line in (netns.state_dir / "journal.jsonl").read_text().splitlines()
    ]
    ran = [step for r in journal if r["type"] == "intent" for step in r["steps"]]
    assert [(s["action"], s["resource"]) for s in ran] == [
        (c["action"], c["resource"]) for c in planned
    ]
    assert netns.dsrctl("drift", str(spec)).returncode == 0


def test_confirmed_changes_stay(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    applied = netns.dsrctl("apply", "--auto-approve", "--confirm-timeout", "4", str(spec))
    assert applied.returncode == 0, applied.stderr
    assert "reverted automatically at" in applied.stdout
    assert f"dsrctl --state-dir {netns.state_dir} confirm" in applied.stdout
    blocked = netns.dsrctl("apply", "--auto-approve", str(spec))
    assert blocked.returncode == 1
    assert "is waiting for `dsrctl confirm`" in blocked.stderr
    confirmed = netns.dsrctl("confirm")
    assert confirmed.returncode == 0, confirmed.stderr
    time.sleep(5)
    assert "192.0.2.100/32" in netns.addresses()
    assert netns.dsrctl("drift", str(spec)).returncode == 0
    assert netns.dsrctl("confirm").returncode == 1  # nothing left to confirm
    assert "confirmed" in netns.dsrctl("history").stdout


def test_unconfirmed_changes_revert(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    before = snapshot(netns)
    applied = netns.dsrctl("apply", "--auto-approve", "--confirm-timeout", "2", str(spec))
    assert applied.returncode == 0, applied.stderr
    assert "192.0.2.100/32" in netns.addresses()
    assert wait_until(lambda: snapshot(netns) == before, 20)
    assert "reverted by" in netns.dsrctl("history").stdout
    assert not (netns.state_dir / "pending-confirm.json").exists()


def test_changes_revert_even_when_the_applying_session_dies(netns: Netns) -> None:
    """The apply runs on a terminal; the terminal goes away (SIGHUP to its session) and the
    process group is killed: the revert still happens."""
    spec = write_spec(netns, SPEC)
    before = snapshot(netns)
    env = {**os.environ, "DSRCTL_STATE_DIR": str(netns.state_dir)}
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*dsrctl_in(netns), "apply", "--auto-approve", "--confirm-timeout", "3", str(spec)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    output = b""
    deadline = time.monotonic() + 30
    while b"confirm" not in output.split(b"unless confirmed")[-1] and time.monotonic() < deadline:
        output += os.read(master, 4096)
    os.close(master)  # the terminal is gone
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert b"reverted automatically at" in output
    assert wait_until(lambda: snapshot(netns) == before, 20)


def test_early_rollback_ends_the_wait(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    before = snapshot(netns)
    assert (
        netns.dsrctl("apply", "--auto-approve", "--confirm-timeout", "30", str(spec)).returncode
        == 0
    )
    rolled = netns.dsrctl("rollback", "--auto-approve")
    assert rolled.returncode == 0, rolled.stderr
    assert snapshot(netns) == before
    assert not (netns.state_dir / "pending-confirm.json").exists()
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0


def test_two_applies_started_together_one_wins(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    first = start_apply(netns, "--auto-approve", str(spec), pause=0)
    second = start_apply(netns, "--auto-approve", str(spec), pause=0)
    try:
        outcomes = []
        for proc in (first, second):
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                outcomes.append("paused")
            else:
                assert proc.stderr is not None
                outcomes.append(proc.stderr.read())
        assert outcomes.count("paused") == 1
        loser = next(o for o in outcomes if o != "paused")
        assert "another dsrctl run holds the lock" in loser
        assert "running 'dsrctl apply --auto-approve" in loser
        assert " since " in loser
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                kill_group(proc)
    assert netns.dsrctl("rollback", "--auto-approve").returncode == 0


def test_rollback_to_an_earlier_apply_and_dry_run(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    before = snapshot(netns)
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    first_id = json.loads(netns.dsrctl("history", "--json").stdout)["transactions"][0]["id"]
    bigger = write_spec(netns, SPEC + '[[vip]]\naddress = "198.18.0.9"\n')
    assert netns.dsrctl("apply", "--auto-approve", str(bigger)).returncode == 0
    after = snapshot(netns)
    dry = netns.dsrctl("rollback", "--dry-run", "--to", first_id)
    assert dry.returncode == 0
    assert "- address 198.18.0.9/32 on lo" in dry.stdout
    assert "- address 192.0.2.100/32 on lo" in dry.stdout
    assert snapshot(netns) == after
    rolled = netns.dsrctl("rollback", "--auto-approve", "--to", first_id)
    assert rolled.returncode == 0, rolled.stderr
    assert snapshot(netns) == before
    ownership = json.loads((netns.state_dir / "ownership.json").read_text())
    assert ownership["resources"] == {}
    again = netns.dsrctl("rollback", "--auto-approve")
    assert again.returncode == 1
    assert "nothing to roll back" in again.stderr


def test_history_names_user_spec_digest_and_result(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    (row,) = json.loads(netns.dsrctl("history", "--json").stdout)["transactions"]
    import hashlib

    assert row["spec_sha256"] == hashlib.sha256(spec.read_bytes()).hexdigest()
    assert row["user"] == "root"
    assert row["result"] == "applied"
    assert row["steps"] == 5


def test_import_and_adopt_a_hand_configured_server(netns: Netns) -> None:
    netns.set_sysctl("net.ipv4.conf.all.arp_ignore", "2")
    netns.set_sysctl("net.ipv4.conf.all.arp_announce", "2")
    netns.run("ip", "addr", "add", "192.0.2.50/32", "dev", "lo", "label", "lo:web")
    netns.run("ip", "addr", "add", "198.18.0.50/32", "dev", "lo")
    netns.run("ip", "addr", "add", "2001:db8::50/128", "dev", "lo", "preferred_lft", "0", "nodad")
    netns.run("ip", "addr", "add", "198.18.1.0/24", "dev", "lo")  # not a VIP: left out
    before = snapshot(netns)
    printed = netns.dsrctl("import")
    assert printed.returncode == 0, printed.stderr
    assert 'address = "192.0.2.50"\nlabel = "lo:web"' in printed.stdout
    assert "left out 198.18.1.0/24 on lo" in printed.stdout
    assert not netns.state_dir.exists()  # import alone records nothing

    out = netns.workdir / "imported.toml"
    adopted = netns.dsrctl("import", "--adopt", "--out", str(out))
    assert adopted.returncode == 0, adopted.stderr
    assert "Adopted 5 resource(s)" in adopted.stderr  # 3 VIPs, 2 ARP sysctls
    plan = netns.dsrctl("plan", "--detailed-exitcode", str(out))
    assert plan.returncode == 0, plan.stdout
    assert snapshot(netns) == before
    # Adopted, not created: dropped from the spec, a VIP is left in place, never deleted.
    text = out.read_text().replace('[[vip]]\naddress = "198.18.0.50"\n\n', "")
    assert "198.18.0.50" not in text
    out.write_text(text)
    assert netns.dsrctl("apply", "--auto-approve", str(out)).returncode == 0
    assert "198.18.0.50/32" in netns.addresses()


def test_saved_plan_file_is_not_mistaken_for_a_spec(netns: Netns, tmp_path: Path) -> None:
    bogus = tmp_path / "x.json"
    bogus.write_text('{"format": "something-else"}')
    result = netns.dsrctl("apply", "--auto-approve", str(bogus))
    assert result.returncode == 1
    assert "invalid TOML" in result.stderr
    assert sysctl_file(netns).exists() is False
