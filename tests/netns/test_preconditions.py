"""What apply would refuse before its first change is a finding of validate and plan too
(issue 12, point 1), through the real CLI in a throwaway namespace: a linux.persist.root
without etc/sysctl.d fails validate and plan naming the directory, apply refuses before its
prompt saying "nothing was changed", and a non-root plan notes that apply needs root."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tests.netns.namespaces import Netns, snapshot
from tests.netns.terminal import as_nobody, at_the_prompt

SPEC = 'version = 1\n[[vip]]\naddress = "192.0.2.100"\n[linux.persist]\nroot = "{root}"\n'


def test_a_missing_directory_under_the_root_fails_validate_plan_and_apply_before_the_prompt(
    netns: Netns,
) -> None:
    root = netns.workdir / "bare-root"
    root.mkdir()
    spec = netns.workdir / "bare.toml"
    spec.write_text(SPEC.format(root=root))
    missing = root / "etc" / "sysctl.d"
    finding = f"cannot write {missing}/90-dsrctl.conf: directory {missing} does not exist"
    before = snapshot(netns)

    validate = netns.dsrctl("validate", str(spec))
    assert validate.returncode == 1, validate.stdout
    assert validate.stderr == f"error: apply would refuse: {finding}\n"
    plan = netns.dsrctl("plan", "--detailed-exitcode", "--out", str(netns.workdir / "p"), str(spec))
    assert plan.returncode == 1, plan.stdout
    assert plan.stderr == f"error: apply would refuse: {finding}\n"
    assert f"+ file {missing}/90-dsrctl.conf" in plan.stdout  # what apply would do
    assert "Saved this plan" not in plan.stdout and not (netns.workdir / "p").exists()
    assert netns.dsrctl("plan", "--json", str(spec)).returncode == 1

    code, output = at_the_prompt(netns, ["apply", str(spec)], b"yes\n")
    assert code == 1, output
    assert "Apply these changes?" not in output and "Only 'yes'" not in output, output
    assert output == f"error: {finding}; nothing was changed\n"
    auto = netns.dsrctl("apply", "--auto-approve", str(spec))
    assert auto.returncode == 1
    assert auto.stderr == f"error: {finding}; nothing was changed\n"
    assert snapshot(netns) == before
    assert not missing.exists()
    history = netns.dsrctl("history")
    assert history.stdout == "No applies or rollbacks recorded yet.\n", history.stdout

    # Once the directory exists, all three pass.
    missing.mkdir(parents=True)
    assert netns.dsrctl("validate", str(spec)).returncode == 0
    assert netns.dsrctl("plan", str(spec)).returncode == 0
    applied = netns.dsrctl("apply", "--auto-approve", str(spec))
    assert applied.returncode == 0, applied.stderr
    assert (missing / "90-dsrctl.conf").is_file()


def test_plan_as_non_root_notes_that_apply_needs_root(netns: Netns) -> None:
    # Everything nobody must read sits in a directory it can reach (pytest's tmp is 0700).
    with tempfile.TemporaryDirectory(prefix="dsrctl-nobody-") as reachable:
        os.chmod(reachable, 0o755)
        base = Path(reachable)
        (base / "etc" / "sysctl.d").mkdir(parents=True)
        spec = base / "dsrctl.toml"
        spec.write_text(SPEC.format(root=base))
        netns.env["DSRCTL_STATE_DIR"] = str(base / "state")
        before = snapshot(netns)

        plan = as_nobody(netns, "plan", str(spec))
        assert plan.returncode == 0, plan.stderr
        assert (
            "! as this user apply would refuse: apply changes addresses and sysctls: run it "
            "as root (it needs CAP_NET_ADMIN and write access to /proc/sys)"
        ) in plan.stdout.splitlines(), plan.stdout
        assert "nothing was changed" not in plan.stdout
        validate = as_nobody(netns, "validate", str(spec))
        assert validate.returncode == 0, validate.stderr
        assert "apply would refuse: apply changes addresses" in validate.stdout
        apply = as_nobody(netns, "apply", "--auto-approve", str(spec))
        assert apply.returncode == 1
        assert apply.stderr.endswith("; nothing was changed\n"), apply.stderr
        assert snapshot(netns) == before
