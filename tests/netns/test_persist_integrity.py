"""Every backend, through the real CLI: drift sees a persisted file edited or deleted by
hand (exit 2) and apply repairs it; an apply that fails after writing the persistent
files rolls every one of them back byte for byte, with its mode (or its absence).

The edit removes what dsrctl put there for VIP 198.18.0.1 (in the operator's own
NetworkManager profile, dsrctl owns its address lines only: other edits are the
operator's and are kept).

The failure is real: the sysctl file is moved to <root>/zz, a directory that is
read-only in the mount namespace dsrctl runs in, so its write (the last file step, after
every file of the backend) fails and apply rolls back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.netns.namespaces import Netns, write_spec
from tests.netns.reboot import VIPS, spec_text
from tests.persist_roots import (
    dpkg_installed,
    enable,
    ifcfg_root,
    ifupdown_root,
    netplan_root,
    networkd_root,
    nm_root,
    systemd_root,
    write,
)

ALL = list(VIPS)
IPV4 = ["192.0.2.100", "198.18.0.1"]


def own_networkd(root: Path) -> Path:
    systemd_root(root)
    enable(root, "systemd-networkd.service")
    return root


def own_networkmanager(root: Path) -> Path:
    systemd_root(root)
    (root / "etc/NetworkManager/system-connections").mkdir(parents=True)
    enable(root, "NetworkManager.service")
    dpkg_installed(root, "network-manager", "1.42.4-1")
    return root


def ifcfg_with_an_operator_alias(root: Path) -> Path:
    ifcfg_root(root)  # an alias of the operator's, which dsrctl leaves as it is
    alias = "DEVICE=lo:0\nIPADDR=198.18.0.50\nNETMASK=255.255.255.255\nONBOOT=yes\n"
    write(root, "/etc/sysconfig/network-scripts/ifcfg-lo:0", alias, 0o640)
    return root


# backend -> (root builder, VIPs, addresses, the file whose edit and removal drift sees)
BACKENDS: dict[str, tuple[Callable[[Path], Path], list[str], str, str]] = {
    "systemd-unit": (systemd_root, ALL, "auto", "/etc/systemd/system/dsrctl-vips.service"),
    "systemd-networkd drop-in": (
        networkd_root,
        ALL,
        "auto",
        "/etc/systemd/network/10-lo.network.d/90-dsrctl.conf",
    ),
    "systemd-networkd own file": (
        own_networkd,
        ALL,
        "systemd-networkd",
        "/etc/systemd/network/10-dsrctl-lo.network",
    ),
    "networkmanager profile": (
        nm_root,
        ["198.18.0.1"],
        "auto",
        "/etc/NetworkManager/system-connections/lo.nmconnection",
    ),
    "networkmanager own profile": (
        own_networkmanager,
        ["198.18.0.1"],
        "networkmanager",
        "/etc/NetworkManager/system-connections/dsrctl-lo.nmconnection",
    ),
    "ifupdown": (ifupdown_root, ALL, "auto", "/etc/network/interfaces.d/dsrctl"),
    "netplan": (netplan_root, IPV4, "auto", "/etc/netplan/90-dsrctl.yaml"),
    "ifcfg": (
        ifcfg_with_an_operator_alias,
        IPV4,
        "auto",
        "/etc/sysconfig/network-scripts/ifcfg-lo:2",  # lo:0 is the operator's, lo:1 labelled
    ),
}


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Every file, link and directory under ``root``: content (or target) and mode."""
    found: dict[str, tuple[str, int]] = {}
    for directory, dirs, names in os.walk(root):
        for name in [*names, *dirs]:
            path = Path(directory, name)
            rel = "/" + str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = (f"-> {os.readlink(path)}", 0)
            elif path.is_dir():
                found[rel + "/"] = ("", path.stat().st_mode & 0o7777)
            else:
                found[rel] = (path.read_bytes().hex(), path.stat().st_mode & 0o7777)
    return found


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_drift_sees_a_persisted_file_edited_or_deleted_by_hand(
    netns: Netns, tmp_path: Path, backend: str
) -> None:
    build, vips, addresses, watched = BACKENDS[backend]
    root = build(tmp_path / "root")
    spec = write_spec(netns, spec_text(root, vips, addresses))
    applied = netns.dsrctl("apply", "--auto-approve", str(spec))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    good = snapshot(root)
    path = root / watched.lstrip("/")
    for damage in ("edit", "delete"):
        if damage == "edit":
            lines = path.read_text().splitlines(keepends=True)
            path.write_text("".join(line for line in lines if "198.18.0.1" not in line))
        else:
            path.unlink()
        drift = netns.dsrctl("drift", str(spec))
        assert drift.returncode == 2, drift.stdout + drift.stderr
        operator_gone = backend == "networkmanager profile" and damage == "delete"
        if not operator_gone:
            assert f"DRIFT file {path}: " in drift.stdout
        repaired = netns.dsrctl("apply", "--auto-approve", str(spec))
        assert repaired.returncode == 0, repaired.stdout + repaired.stderr
        assert netns.dsrctl("drift", str(spec)).returncode == 0
        if operator_gone:
            # The operator removed the loopback profile dsrctl had extended: NetworkManager
            # no longer manages lo, so auto moves the VIPs to the unit; the profile stays gone.
            assert not path.exists()
            assert (root / "etc/systemd/system/dsrctl-vips.service").exists()
        else:
            assert snapshot(root) == good


def apply_with_readonly(
    netns: Netns, readonly: Path, spec: Path
) -> subprocess.CompletedProcess[str]:
    """dsrctl apply in ``netns``, in a mount namespace where ``readonly`` cannot be written."""
    env = {**os.environ, "DSRCTL_STATE_DIR": str(netns.state_dir)}
    env.pop("DSRCTL_REQUIRE_NETNS", None)
    script = (
        f'mount --bind {readonly} {readonly} && mount -o remount,bind,ro {readonly} && exec "$@"'
    )
    command = ["ip", "netns", "exec", netns.name, "unshare", "--mount", "--propagation", "private"]
    dsrctl = [sys.executable, "-m", "dsrctl", "apply", "--auto-approve", str(spec)]
    return subprocess.run(
        [*command, "sh", "-c", script, "sh", *dsrctl], capture_output=True, text=True, env=env
    )


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_a_failed_apply_restores_every_persistent_file_byte_for_byte(
    netns: Netns, tmp_path: Path, backend: str
) -> None:
    build, vips, addresses, _ = BACKENDS[backend]
    root = build(tmp_path / "root")
    (root / "zz").mkdir()
    text = spec_text(root, vips, addresses) + 'sysctl_file = "/zz/90-dsrctl.conf"\n'
    spec = write_spec(netns, text)
    plan = json.loads(netns.dsrctl("plan", "--json", str(spec)).stdout)
    written = [c["resource"] for c in plan["changes"] if c["kind"] in ("file", "symlink", "dir")]
    assert written[-1] != f"file:{root}/zz/90-dsrctl.conf" or len(written) > 1
    before = snapshot(root)
    lo_before = netns.run("ip", "-j", "addr", "show", "dev", "lo").stdout
    result = apply_with_readonly(netns, root / "zz", spec)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == (
        f"error: apply failed: cannot write {root}/zz/90-dsrctl.conf: Read-only file system"
    )
    assert lines[1].endswith("; the host is as it was before apply"), result.stderr
    assert snapshot(root) == before
    assert netns.run("ip", "-j", "addr", "show", "dev", "lo").stdout == lo_before
