"""What an operator reads (issue 12, points 2, 3 and 5), through the real CLI in throwaway
namespaces: the rollback preview against the host as it is now, errors in dsrctl's own
words (a --state-dir that is a file, a non-root user, Ctrl-C at the prompt), and output
that reads at a glance (history's header, show's yes/no, drift's file diff)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from tests.netns.namespaces import SPEC, Netns, snapshot, sysctl_file, write_spec
from tests.netns.terminal import as_nobody, at_the_prompt


def test_rollback_dry_run_shows_what_the_host_has_now(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    netns.run("ip", "addr", "del", "192.0.2.100/32", "dev", "lo")  # removed by hand
    netns.set_sysctl("net.ipv4.conf.all.arp_announce", "1")  # changed by hand

    preview = netns.dsrctl("rollback", "--dry-run")

    assert preview.returncode == 0, preview.stderr
    lines = preview.stdout.splitlines()
    vip = lines.index("  - address 192.0.2.100/32 on lo: label lo:1  (rollback)")
    assert lines[vip + 1] == (
        "      host now: (absent): already done (the host holds what the rollback sets)"
    )
    announce = lines.index("  ~ sysctl net.ipv4.conf.all.arp_announce: 2 -> 0  (rollback)")
    assert lines[announce + 1] == (
        "      host now: 1: changed since the apply, which set 2; the rollback sets 0 all the same"
    )
    ignore = lines.index("  ~ sysctl net.ipv4.conf.all.arp_ignore: 1 -> 0  (rollback)")
    assert lines[ignore + 1] == "      host now: 1"
    assert lines[-1] == (
        "Of these, 1 already done on the host, 1 changed since the apply; the rollback sets "
        "every resource to the journal's value all the same."
    )
    # The rollback itself still restores everything the journal recorded.
    rolled = netns.dsrctl("rollback", "--auto-approve")
    assert rolled.returncode == 0, rolled.stderr
    assert "host now: (absent): already done" in rolled.stdout
    assert netns.sysctl("net.ipv4.conf.all.arp_announce") == "0"
    assert "192.0.2.100" not in netns.addresses()


def test_rollback_warns_when_the_apply_repaired_drift(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    netns.run("ip", "addr", "del", "192.0.2.100/32", "dev", "lo")
    repaired = netns.dsrctl("apply", "--auto-approve", str(spec))  # same spec: drift repair
    assert repaired.returncode == 0, repaired.stderr

    preview = netns.dsrctl("rollback", "--dry-run")

    assert preview.returncode == 0, preview.stderr
    warning = [line for line in preview.stdout.splitlines() if "repaired drift" in line]
    assert len(warning) == 1, preview.stdout
    assert warning[0].startswith("! apply ")
    assert warning[0].endswith(
        "repaired drift: address 192.0.2.100/32 on lo was (absent), not label lo:1 as dsrctl "
        "had set it; rolling it back brings that drift back"
    )
    assert "      host now: label lo:1" in preview.stdout.splitlines()
    # An apply that only changed what the spec asked is no drift repair.
    assert netns.dsrctl("rollback", "--auto-approve").returncode == 0
    assert "repaired drift" not in netns.dsrctl("rollback", "--dry-run").stdout


def test_rollback_dry_run_with_a_state_dir_that_is_a_file(netns: Netns) -> None:
    blocker = netns.workdir / "not-a-dir"
    blocker.write_text("")
    for state_dir in (blocker, blocker / "sub"):
        result = netns.dsrctl("--state-dir", str(state_dir), "rollback", "--dry-run")
        assert result.returncode == 1
        assert result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith(f"error: --state-dir {state_dir}"), result.stderr
        assert "give --state-dir (or DSRCTL_STATE_DIR) a directory" in result.stderr
        assert "inflight.json" not in result.stderr


def test_non_root_messages_name_the_command_and_what_to_do(netns: Netns) -> None:
    # A state directory that nobody can reach but not read (pytest's tmp is 0700).
    with tempfile.TemporaryDirectory(prefix="dsrctl-nobody-") as reachable:
        os.chmod(reachable, 0o755)
        netns.env["DSRCTL_STATE_DIR"] = state_dir = f"{reachable}/state"
        _non_root_messages(netns, Path(state_dir))


def _non_root_messages(netns: Netns, state_dir: Path) -> None:
    spec = write_spec(netns, SPEC)
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    # A VIP gone by hand: drift --fix would have something to do.
    netns.run("ip", "address", "del", "192.0.2.100/32", "dev", "lo")
    journal = state_dir / "journal.jsonl"
    before = snapshot(netns)

    history = as_nobody(netns, "history")
    assert history.returncode == 1, history.stderr
    assert history.stderr == (
        f"error: cannot read the journal {journal}: permission denied; run dsrctl history as "
        f"root, or give --state-dir a directory of your own (now {state_dir})\n"
    )
    rollback = as_nobody(netns, "rollback", "--auto-approve")
    assert rollback.returncode == 1
    assert rollback.stderr == (
        "error: rollback changes addresses and sysctls: run it as root (it needs "
        "CAP_NET_ADMIN and write access to /proc/sys); nothing was changed\n"
    )
    # The spec where nobody can read it, its persistent files out of the way (the
    # namespace's work directory is root's alone).
    readable = state_dir.parent / "dsrctl.toml"
    readable.write_text(SPEC + "\n[linux.persist]\nenabled = false\n")
    readable.chmod(0o644)
    fix = as_nobody(netns, "drift", "--fix", str(readable))
    assert fix.returncode == 1
    assert fix.stderr == (
        "error: drift --fix changes addresses and sysctls: run it as root (it needs "
        "CAP_NET_ADMIN and write access to /proc/sys); nothing was changed\n"
    )
    # Adopting writes only the ownership records: the state directory is what it lacks.
    adopt = as_nobody(netns, "import", "--adopt", "--out", str(state_dir.parent / "i.toml"))
    assert adopt.returncode == 1
    assert "changes addresses" not in adopt.stderr
    assert adopt.stderr.startswith("error: ") and adopt.stderr.count("\n") == 1, adopt.stderr
    assert f"state directory {state_dir} belongs to uid 0" in adopt.stderr
    assert "use another --state-dir" in adopt.stderr
    show = as_nobody(netns, "show")
    assert show.returncode == 1
    assert show.stderr == (
        f"error: cannot read the ownership records {state_dir / 'ownership.json'}: "
        f"permission denied; run dsrctl show as root, or give --state-dir a directory of "
        f"your own (now {state_dir})\n"
    )
    assert snapshot(netns) == before


def test_ctrl_c_at_the_prompt_says_nothing_was_changed(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    before = snapshot(netns)
    code, output = at_the_prompt(netns, ["apply", str(spec)], b"\x03")
    assert code == 130, output
    assert output.rstrip().endswith("error: aborted at the prompt (Ctrl-C); nothing was changed")
    assert "Aborted!" not in output and "Traceback" not in output
    assert snapshot(netns) == before
    # Ctrl-D (end of input): the same, exit 1.
    code, output = at_the_prompt(netns, ["apply", str(spec)], b"\x04")
    assert code == 1, output
    assert output.rstrip().endswith(
        "error: no answer at the prompt (end of input); nothing was changed"
    )
    # And at rollback's prompt, after the lock was taken: released, nothing undone.
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    applied = snapshot(netns)
    code, output = at_the_prompt(netns, ["rollback"], b"\x03")
    assert code == 130, output
    assert "error: aborted at the prompt (Ctrl-C); nothing was changed" in output
    assert snapshot(netns) == applied
    assert netns.dsrctl("rollback", "--dry-run").returncode == 0


def test_history_has_a_header_row_and_json_is_unchanged(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    assert netns.dsrctl("history").stdout == "No applies or rollbacks recorded yet.\n"
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    assert netns.dsrctl("rollback", "--auto-approve").returncode == 0
    lines = netns.dsrctl("history").stdout.splitlines()
    assert lines[0].split() == [
        "ID",
        "STARTED",
        "KIND",
        "USER",
        "SPEC",
        "SHA256",
        "STEPS",
        "RESULT",
    ]
    assert len(lines) == 3
    # Columns line up: every row's result starts under RESULT, its id under ID.
    column = lines[0].index("RESULT")
    assert lines[1][column:].startswith("applied, reverted by ")
    assert lines[2][column:].startswith("done, reverts ")
    assert lines[1][lines[0].index("STEPS") :].split()[0] == "5"
    data = json.loads(netns.dsrctl("history", "--json").stdout)
    assert set(data) == {"format_version", "transactions", "skipped_lines"}
    assert [row["result"] for row in data["transactions"]] == ["applied", "done"]


def test_show_says_yes_no_and_what_created_by_dsrctl_means(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    shown = netns.dsrctl("show")
    assert shown.returncode == 0, shown.stderr
    assert "True" not in shown.stdout and "False" not in shown.stdout
    assert "    2001:db8::100/128  deprecated=yes, nodad=yes" in shown.stdout.splitlines()
    tail = shown.stdout.splitlines()
    start = tail.index(f"dsrctl state directory: {netns.state_dir}")
    assert tail[start + 1 :] == [
        "dsrctl manages 5 resource(s):",
        "  address 192.0.2.100/32 on lo: created by dsrctl: yes (apply removes it when the "
        "spec drops it)",
        "  address 2001:db8::100/128 on lo: created by dsrctl: yes (apply removes it when the "
        "spec drops it)",
        f"  file {sysctl_file(netns)}: created by dsrctl: yes (apply removes it when the spec "
        "drops it)",
        "  the other 2: created by dsrctl: no (they were there before dsrctl: apply never "
        "removes them; when the spec drops one, an address stays in place and a sysctl or "
        "file gets its earlier value back)",
    ]
    as_json = json.loads(netns.dsrctl("show", "--json").stdout)
    assert set(as_json["dsrctl"]) == {
        "state_dir",
        "notes",
        "managed_resources",
        "created_by_dsrctl",
    }


def test_drift_of_a_hand_edited_file_shows_the_lines_that_changed(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    path = sysctl_file(netns)
    path.write_text(path.read_text().replace("arp_announce = 2", "arp_announce = 1") + "# mine\n")
    drift = netns.dsrctl("drift", str(spec))
    assert drift.returncode == 2, drift.stderr
    lines = drift.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"DRIFT file {path}:"))
    assert lines[start + 1 : start + 6] == [
        "      @@ -3,3 +3,2 @@",
        "       net.ipv4.conf.all.arp_ignore = 1",
        "      -net.ipv4.conf.all.arp_announce = 1",
        "      -# mine",
        "      +net.ipv4.conf.all.arp_announce = 2",
    ]
    # The same diff as plan shows.
    plan = netns.dsrctl("plan", str(spec)).stdout.splitlines()
    at = next(i for i, line in enumerate(plan) if line.startswith(f"  ~ file {path}:"))
    assert plan[at + 1 : at + 6] == lines[start + 1 : start + 6]
