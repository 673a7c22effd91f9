"""Symlinks planted by an unprivileged user never make root write, truncate or chmod their
target (issue 9, finding 3), through the real CLI.

The attacker is uid 65534 and owns a directory dsrctl writes into, mode 0777 (a
node_exporter textfile directory, a shared plans directory, a persistence directory of
a careless image): it plants links to a root-owned victim file at every temporary name
the old writer would have used (``.NAME.dsrctl-tmp-PID`` for the next few thousand pids)
and at the final name itself. The first test shows that this planting does catch the
writer dsrctl had before commit 88c6eba; the others run every command that writes a file
and check that the victim is untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.netns.namespaces import SPEC, Netns, write_spec
from tests.netns.reboot import spec_text
from tests.persist_roots import (
    ifcfg_root,
    ifupdown_root,
    netplan_root,
    networkd_root,
    nm_root,
    systemd_root,
)
from tests.planted_links import (
    VICTIM_TEXT,
    Victim,
    assert_links_intact,
    give_to_nobody,
    plant,
)

REPO = Path(__file__).resolve().parents[2]
ALL = ["192.0.2.100", "198.18.0.1", "2001:db8::100"]


def test_the_planting_catches_the_writer_dsrctl_had_before(tmp_path: Path) -> None:
    """The pre-88c6eba writer (state/statedir.py at 832c2ef) follows the planted link:
    so each test below would fail with it."""
    if shutil.which("git") is None:
        pytest.skip("needs git to read the old writer")
    old = subprocess.run(
        ["git", "-C", str(REPO), "show", "832c2ef:state/statedir.py"],
        capture_output=True,
        text=True,
    )
    if old.returncode != 0:
        pytest.skip(f"the old writer is not in this checkout: {old.stderr.strip()}")
    (tmp_path / "old_statedir.py").write_text(old.stdout)
    victim = Victim(tmp_path / "victim")
    shared = tmp_path / "textfile"
    give_to_nobody(shared)
    plant(shared, victim, ["dsrctl.prom"], final=False)
    old_module = str(tmp_path / "old_statedir.py")
    script = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('old', {old_module!r})\n"
        "module = sys.modules['old'] = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        f"module.write_atomic({str(shared / 'dsrctl.prom')!r}, b'dsrctl_up 1\\n', 0o644)\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True)
    assert victim.path.read_bytes() == b"dsrctl_up 1\n"  # overwritten through the link
    assert victim.path.stat().st_mode & 0o777 == 0o644  # and chmodded


def test_drift_prometheus_and_plan_out_never_write_through_planted_links(
    netns: Netns, tmp_path: Path
) -> None:
    victim = Victim(tmp_path / "victim")
    spec = write_spec(netns, SPEC)
    textfiles, plans = tmp_path / "textfile", tmp_path / "plans"
    give_to_nobody(textfiles)
    give_to_nobody(plans)

    temps = plant(textfiles, victim, ["dsrctl.prom"])
    drift = netns.dsrctl("drift", "--prometheus", str(textfiles / "dsrctl.prom"), str(spec))
    assert drift.returncode in (0, 2), drift.stderr
    assert_links_intact(temps, victim)
    written = textfiles / "dsrctl.prom"
    assert not written.is_symlink() and b"dsrctl" in written.read_bytes()

    temps = plant(plans, victim, ["plan.json"])
    plan = netns.dsrctl("plan", "--out", str(plans / "plan.json"), str(spec))
    assert plan.returncode == 0, plan.stderr
    assert_links_intact(temps, victim)
    saved = plans / "plan.json"
    assert not saved.is_symlink() and json.loads(saved.read_text())["plan"]["changes"]


def test_install_timer_never_writes_through_planted_links(netns: Netns, tmp_path: Path) -> None:
    victim = Victim(tmp_path / "victim")
    spec = write_spec(netns, SPEC)
    root = tmp_path / "root"
    units = root / "etc/systemd/system"
    give_to_nobody(units)
    give_to_nobody(units / "timers.target.wants")
    temps = plant(units, victim, ["dsrctl-drift.service", "dsrctl-drift.timer"])
    temps += plant(units / "timers.target.wants", victim, ["dsrctl-drift.timer"], final=False)
    result = netns.dsrctl("install-timer", "--root", str(root), "--spec", str(spec))
    assert result.returncode == 0, result.stderr
    assert_links_intact(temps, victim)
    for name in ("dsrctl-drift.service", "dsrctl-drift.timer"):
        assert not (units / name).is_symlink() and b"dsrctl" in (units / name).read_bytes()


def plan_paths(netns: Netns, spec: Path) -> dict[str, str]:
    """host path -> resource kind of every file, link and directory the plan writes."""
    planned = netns.dsrctl("plan", "--json", str(spec))
    assert planned.returncode == 0, planned.stderr
    found = {}
    for change in json.loads(planned.stdout)["changes"]:
        kind, _, name = change["resource"].partition(":")
        if kind in ("file", "symlink", "dir"):
            found[name] = kind
    return found


# backend -> (root builder, VIPs it can keep)
BACKENDS: dict[str, tuple[Callable[[Path], Path], list[str]]] = {
    "systemd-unit": (systemd_root, ALL),
    "systemd-networkd": (networkd_root, ALL),
    "networkmanager": (nm_root, ["198.18.0.1"]),  # profiles keep no labels
    "ifupdown": (ifupdown_root, ALL),
    "netplan": (netplan_root, ["192.0.2.100", "198.18.0.1"]),  # no nodad
    "ifcfg": (ifcfg_root, ["192.0.2.100", "198.18.0.1"]),  # no IPv6 alias files
}


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_apply_and_rollback_never_write_through_links_planted_in_persistence_dirs(
    netns: Netns, tmp_path: Path, backend: str
) -> None:
    if backend == "netplan" and shutil.which("netplan") is None:
        pytest.skip("needs netplan")
    victim = Victim(tmp_path / "victim")
    build, vips = BACKENDS[backend]
    root = build(tmp_path / "root")
    spec = write_spec(netns, spec_text(root, vips, backend))
    paths = plan_paths(netns, spec)
    assert any(kind == "file" and "sysctl.d" not in path for path, kind in paths.items())
    temps: list[Path] = []
    finals: list[Path] = []
    by_dir: dict[Path, list[tuple[str, str]]] = {}
    for path, kind in paths.items():
        by_dir.setdefault(Path(path).parent, []).append((Path(path).name, kind))
    for directory, entries in sorted(by_dir.items()):
        if not directory.is_dir():
            continue  # dsrctl creates it (a drop-in directory): nobody can plant in it
        give_to_nobody(directory)
        for name, kind in entries:
            if kind == "dir":
                continue
            fresh = not os.path.lexists(directory / name)
            temps += plant(directory, victim, [name], final=fresh and kind == "file")
            if fresh and kind == "file":
                finals.append(directory / name)
    assert finals, "no final name was planted"

    applied = netns.dsrctl("apply", "--auto-approve", str(spec))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert_links_intact(temps, victim)
    for final in finals:
        assert not final.is_symlink() and final.read_bytes() != VICTIM_TEXT, final

    rolled = netns.dsrctl("rollback", "--auto-approve")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert_links_intact(temps, victim)
    for final in finals:  # what was there before: the planted link, as a link
        assert os.readlink(final) == str(victim.path), final
