"""Hostile and malformed input through the real CLI: one line on stderr, exit 1, no
traceback, and the host exactly as it was (issue 9, findings 9 and 11)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.netns.namespaces import SPEC, Netns, snapshot, sysctl_file, write_spec

NOBODY = 65534


def run(netns: Netns, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The CLI in the namespace with a timeout: a regression that blocks on a FIFO or
    reads /dev/zero fails the test instead of hanging it."""
    env = {**os.environ, "DSRCTL_STATE_DIR": str(netns.state_dir), "NO_COLOR": "1"}
    env.pop("DSRCTL_REQUIRE_NETNS", None)
    command = ["ip", "netns", "exec", netns.name, sys.executable, "-m", "dsrctl", *args]
    try:
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(command, -1, "", f"timed out after {timeout}s\n")


def one_line_error(result: subprocess.CompletedProcess[str], *expected: str) -> list[str]:
    """What is wrong with a result that must be exactly one error line naming ``expected``."""
    wrong = []
    if result.returncode != 1:
        wrong.append(f"exit {result.returncode}")
    lines = result.stderr.splitlines()
    if len(lines) != 1 or not lines[0].startswith("error: "):
        wrong.append(f"{len(lines)} stderr line(s)")
    if "Traceback" in result.stdout + result.stderr:
        wrong.append("a traceback")
    wrong += [f"no {text!r}" for text in expected if text not in result.stderr]
    return [f"{', '.join(wrong)}: {result.stderr.strip()[-300:]!r}"] if wrong else []


Edit = Callable[[dict[str, Any]], None]


def _set(*path: Any, value: Any) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        for key in path[:-1]:
            data = data[key]
        data[path[-1]] = value

    return edit


def _drop(*path: Any) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        for key in path[:-1]:
            data = data[key]
        del data[path[-1]]

    return edit


# Each edit of a good saved plan, with the words the one error line must contain.
EDITS: list[tuple[str, Edit, tuple[str, ...]]] = [
    ("no spec", _drop("spec"), ("spec: missing",)),
    ("no observed", _drop("observed"), ("observed: missing",)),
    ("no plan", _drop("plan"), ("plan: missing",)),
    ("no changes", _drop("plan", "changes"), ("plan.changes: missing",)),
    ("spec not a string", _set("spec", value=5), ("spec = 5: must be a string",)),
    ("spec relative", _set("spec", value="dsrctl.toml"), ('spec = "dsrctl.toml"',)),
    ("spec with NUL", _set("spec", value="/etc/x\x00y"), ("spec = ", "absolute path")),
    ("version true", _set("format_version", value=True), ("format_version = true", "boolean")),
    ("version huge", _set("format_version", value=10**40), ("unknown saved-plan version",)),
    ("version negative", _set("format_version", value=-1), ("format_version = -1",)),
    ("platform list", _set("platform", value=["linux"]), ('platform = ["linux"]',)),
    ("platform unknown", _set("platform", value="beos"), ("unknown platform",)),
    ("digest", _set("host_sha256", value="0" * 63), ("host_sha256 = ", "sha256 digest")),
    ("observed list", _set("observed", value=[]), ("observed = []: must be a table",)),
    ("plan array", _set("plan", value=[1, 2, 3]), ("plan = [1, 2, 3]: must be a table",)),
    ("changes table", _set("plan", "changes", value={}), ("plan.changes = {}: must be a list",)),
    ("change list", _set("plan", "changes", 0, value=[1]), ("plan.changes[0] = [1]",)),
    ("unknown kind", _set("plan", "changes", 0, "kind", value="shell"), ("unknown step kind",)),
    ("kind int", _set("plan", "changes", 0, "kind", value=7), ("plan.changes[0].kind = 7",)),
    ("no resource", _drop("plan", "changes", 0, "resource"), ("changes[0].resource: missing",)),
    ("action", _set("plan", "changes", 1, "action", value="rm"), ('changes[1].action = "rm"',)),
    ("in_sync string", _set("plan", "in_sync", value="false"), ('plan.in_sync = "false"',)),
    ("notes", _set("plan", "notes", value=[None]), ("plan.notes[0] = None",)),
    ("unknown key", _set("run_first", value="rm -rf /"), ("run_first = ", "unknown key")),
]

# Raw bytes: not JSON at all, or JSON that Python reads in surprising ways.
RAW: list[tuple[str, Callable[[bytes], bytes], tuple[str, ...]]] = [
    ("truncated", lambda good: good[: len(good) // 2], ("damaged saved plan: invalid JSON",)),
    ("NUL byte", lambda good: good.replace(b'"created"', b'"cre\x00ated"'), ("invalid JSON",)),
    ("not UTF-8", lambda good: good.replace(b'"created": "', b'"created": "\xff'), ("UTF-8",)),
    (
        "NaN",
        lambda good: good.replace(b'"format_version": 1', b'"format_version": NaN', 1),
        ("NaN is not a JSON number",),
    ),
    (
        "digits",
        lambda good: good.replace(b'"format_version": 1', b'"format_version": 9' + b"9" * 5000, 1),
        ("invalid JSON",),
    ),
    (
        "duplicate key",
        lambda good: good.replace(b'"spec":', b'"spec": "/x", "spec":', 1),
        ("duplicate key 'spec'",),
    ),
    (
        "nested",
        lambda good: (
            b'{"format": "dsrctl-saved-plan", "x": ' + b"[" * 100000 + b"]" * 100000 + b"}"
        ),
        ("nested too deeply",),
    ),
    ("JSON array", lambda good: b"[" + good + b"]", ("invalid TOML",)),
]


def _saved_plan(netns: Netns) -> tuple[Path, Path, bytes]:
    spec = write_spec(netns, SPEC)
    saved = netns.workdir / "change.plan"
    made = run(netns, "plan", "--out", str(saved), str(spec))
    assert made.returncode == 0, made.stderr
    return spec, saved, saved.read_bytes()


def test_malformed_saved_plans_are_one_line_errors_and_change_nothing(netns: Netns) -> None:
    _, saved, good = _saved_plan(netns)
    before = snapshot(netns)
    bad = netns.workdir / "bad.plan"
    problems = []
    for name, edit, expected in EDITS:
        data = json.loads(good)
        edited = copy.deepcopy(data)
        edit(edited)
        bad.write_text(json.dumps(edited, indent=1))
        result = run(netns, "apply", "--auto-approve", str(bad))
        problems += [f"{name}: {p}" for p in one_line_error(result, str(bad), *expected)]
    for name, mangle, expected in RAW:
        bad.write_bytes(mangle(good))
        result = run(netns, "apply", str(bad))
        problems += [f"{name}: {p}" for p in one_line_error(result, str(bad), *expected)]
    assert problems == []
    assert snapshot(netns) == before
    assert not sysctl_file(netns).exists()
    # The good plan still applies.
    applied = run(netns, "apply", str(saved))
    assert applied.returncode == 0, applied.stderr


def test_odd_files_and_option_values_are_one_line_errors(netns: Netns, tmp_path: Path) -> None:
    spec = write_spec(netns, SPEC)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    folder.mkdir()
    before = snapshot(netns)
    cases: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
        (("apply", "--auto-approve", str(fifo)), (f"{fifo}: is a FIFO, not a spec file",)),
        (("plan", str(fifo)), ("is a FIFO",)),
        (("drift", str(fifo)), ("is a FIFO",)),
        (("validate", str(fifo)), ("is a FIFO",)),
        (("plan", "/dev/zero"), ("/dev/zero: is a character device",)),
        (("apply", "--auto-approve", str(folder)), ("is a directory",)),
        (
            ("plan", "--out", str(tmp_path / "missing" / "x.plan"), str(spec)),
            ("cannot write the plan to", "does not exist"),
        ),
        (("plan", "--out", str(folder), str(spec)), ("it is a directory",)),
        (("plan", "--out", str(fifo), str(spec)), ("it is a FIFO, not a regular file",)),
        (("plan", "--out", str(spec), str(spec)), ("is the spec itself",)),
        (("plan", "--out", "x\nExecStart=/bin/sh", str(spec)), ("has control characters",)),
        (("drift", "--prometheus", str(fifo), str(spec)), ("cannot write the metrics",)),
        (("plan", "--from-capture", str(fifo), str(spec)), ("it is a FIFO",)),
        (("show", "--root", str(tmp_path / "missing")), ("no such directory",)),
    ]
    for seconds in ("nan", "inf", "-5", "0", "1e999", "86401", "abc"):
        cases.append(
            (
                ("apply", "--auto-approve", "--confirm-timeout", seconds, str(spec)),
                ("--confirm-timeout",),
            )
        )
    problems = []
    for args, expected in cases:
        result = run(netns, *args, timeout=20)
        problems += [f"{' '.join(args)}: {p}" for p in one_line_error(result, *expected)]
    assert problems == []
    assert snapshot(netns) == before
    assert fifo.exists() and not fifo.is_file()  # never replaced by a regular file
    assert spec.read_text().startswith("\nversion = 1")


def test_a_spec_others_can_edit_is_refused_by_apply_and_noted_by_plan(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    before = snapshot(netns)
    spec.chmod(0o666)
    refused = run(netns, "apply", "--auto-approve", str(spec))
    assert (
        one_line_error(
            refused,
            f"refusing to apply: the spec {spec}",
            "is writable by group and others (mode 0666)",
            f"chmod go-w {spec}",
            "nothing was changed",
        )
        == []
    )
    fix = run(netns, "drift", "--fix", str(spec))
    assert one_line_error(fix, "refusing to repair drift (--fix)", "nothing was changed") == []
    assert snapshot(netns) == before

    planned = run(netns, "plan", str(spec))
    assert planned.returncode == 0, planned.stderr
    assert f"! the spec {spec} can be changed by someone other than root" in planned.stdout
    as_json = json.loads(run(netns, "plan", "--json", str(spec)).stdout)
    assert any("apply will refuse it" in note for note in as_json["notes"])
    drift = json.loads(run(netns, "drift", "--json", str(spec)).stdout)
    assert any(f"chmod go-w {spec}" in note for note in drift["notes"])

    spec.chmod(0o644)
    os.chown(spec, NOBODY, NOBODY)
    refused = run(netns, "apply", "--auto-approve", str(spec))
    assert one_line_error(refused, "owned by nobody (uid 65534)", f"chown root {spec}") == []
    assert snapshot(netns) == before
    os.chown(spec, 0, 0)

    # The directory: others can replace the file unless the sticky bit is set.
    netns.workdir.chmod(0o777)
    refused = run(netns, "apply", "--auto-approve", str(spec))
    assert one_line_error(refused, f"{netns.workdir} is a directory writable by") == []
    assert snapshot(netns) == before
    netns.workdir.chmod(0o1777)
    applied = run(netns, "apply", "--auto-approve", str(spec))
    assert applied.returncode == 0, applied.stderr


def test_the_spec_behind_a_saved_plan_and_the_plan_itself_must_be_trusted(
    netns: Netns,
) -> None:
    spec, saved, _ = _saved_plan(netns)
    before = snapshot(netns)
    spec.chmod(0o646)
    refused = run(netns, "apply", str(saved))
    assert one_line_error(refused, f"the spec {spec}", "writable by others (mode 0646)") == []
    spec.chmod(0o644)
    os.chown(saved, NOBODY, NOBODY)
    refused = run(netns, "apply", str(saved))
    assert one_line_error(refused, f"the saved plan {saved}", "owned by nobody") == []
    assert snapshot(netns) == before
    os.chown(saved, 0, 0)
    applied = run(netns, "apply", str(saved))
    assert applied.returncode == 0, applied.stderr


def test_install_timer_refuses_a_fix_timer_over_a_spec_others_can_edit(
    netns: Netns, tmp_path: Path
) -> None:
    spec = write_spec(netns, SPEC)
    spec.chmod(0o666)
    root = tmp_path / "root"
    refused = run(netns, "install-timer", "--fix", "--spec", str(spec), "--root", str(root))
    assert one_line_error(refused, "refusing to install a timer", f"chmod go-w {spec}") == []
    assert not root.exists()
    injected = run(netns, "install-timer", "--spec", "x\nExecStartPre=/bin/sh", "--root", str(root))
    assert one_line_error(injected, "--spec", "control characters") == []
    assert not root.exists()
    noted = run(netns, "install-timer", "--spec", str(spec), "--root", str(root))
    assert noted.returncode == 0, noted.stderr
    assert f"! the spec {spec} can be changed" in noted.stdout
