"""VIP persistence through the real CLI: choices, refusals, drift, switches, rollback.

Every persistent file lives under a temporary root (linux.persist.root) that looks like
a host's /etc (tests/persist_roots.py); nothing is written to this host's /etc.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.netns.namespaces import Netns, write_spec
from tests.netns.reboot import spec_text
from tests.persist_roots import (
    NM_LO,
    enable,
    files_under,
    ifupdown_root,
    networkd_root,
    nm_root,
    systemd_root,
    write,
)

ALL = ["192.0.2.100", "198.18.0.1", "2001:db8::100"]
UNIT = "/etc/systemd/system/dsrctl-vips.service"
LINK = "/etc/systemd/system/multi-user.target.wants/dsrctl-vips.service"


def host_state(ns: Netns, root: Path) -> dict[str, object]:
    return {
        "arp_ignore": ns.sysctl("net.ipv4.conf.all.arp_ignore"),
        "lo": json.loads(ns.run("ip", "-j", "addr", "show", "dev", "lo").stdout),
        "root": files_under(root),
    }


def test_two_tools_on_lo_stop_every_command_until_the_spec_chooses(
    netns: Netns, tmp_path: Path
) -> None:
    root = ifupdown_root(networkd_root(tmp_path / "root"))
    spec = write_spec(netns, spec_text(root, ALL))
    before = host_state(netns, root)
    message = (
        f'error: {spec}: linux.persist.addresses = "auto": several tools configure lo at boot: '
        "systemd-networkd (/etc/systemd/network/10-lo.network: [Match] Name=lo); "
        "ifupdown (/etc/network/interfaces: auto lo, iface lo inet loopback); dsrctl cannot "
        "tell which one wins: set linux.persist.addresses to one of 'ifupdown', "
        "'systemd-networkd' (or 'none')\n"
    )
    for command in (["plan"], ["drift"], ["validate"], ["apply", "--auto-approve"]):
        result = netns.dsrctl(*command, str(spec))
        assert (result.returncode, result.stdout, result.stderr) == (1, "", message), command
    assert host_state(netns, root) == before
    assert not netns.state_dir.exists()

    chosen = write_spec(netns, spec_text(root, ALL, addresses="networkd"))
    plan = netns.dsrctl("plan", str(chosen))
    assert plan.returncode == 0, plan.stderr
    assert (
        "! WARNING: ifupdown (/etc/network/interfaces: auto lo, iface lo inet loopback) also "
        "configures lo at boot and may remove the VIPs that systemd-networkd adds" in plan.stdout
    )
    assert f"+ dir {root}/etc/systemd/network/10-lo.network.d: directory" in plan.stdout
    assert f"+ file {root}/etc/systemd/network/10-lo.network.d/90-dsrctl.conf" in plan.stdout
    assert netns.dsrctl("apply", "--auto-approve", str(chosen)).returncode == 0
    assert netns.dsrctl("drift", str(chosen)).returncode == 0


def test_a_vip_the_backend_cannot_keep_is_refused_before_anything_changes(
    netns: Netns, tmp_path: Path
) -> None:
    root = nm_root(tmp_path / "root")
    spec = write_spec(netns, spec_text(root, ALL))
    before = host_state(netns, root)
    result = netns.dsrctl("apply", "--auto-approve", str(spec))
    assert result.returncode == 1
    assert result.stderr == (
        f'error: {spec}: linux.persist.addresses = "auto": networkmanager cannot keep VIP '
        "192.0.2.100/32 across a reboot: NetworkManager profiles do not keep address labels\n"
    )
    assert host_state(netns, root) == before


def test_networkmanager_profile_is_extended_then_restored_byte_for_byte(
    netns: Netns, tmp_path: Path
) -> None:
    root = nm_root(tmp_path / "root")
    profile = root / "etc/NetworkManager/system-connections/lo.nmconnection"
    spec = write_spec(netns, spec_text(root, ["198.18.0.1"]))
    plan = netns.dsrctl("plan", str(spec)).stdout
    assert f"~ file {profile}: mode 0600" in plan
    assert "      +address2=198.18.0.1/32" in plan
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    assert "address2=198.18.0.1/32\n" in profile.read_text()
    off = write_spec(netns, spec_text(root, ["198.18.0.1"], addresses="none"))
    plan = netns.dsrctl("plan", str(off)).stdout
    assert "(restore the content before dsrctl)" in plan
    assert netns.dsrctl("apply", "--auto-approve", str(off)).returncode == 0
    assert profile.read_text() == NM_LO
    assert profile.stat().st_mode & 0o777 == 0o600


def test_drift_sees_an_edited_unit_and_a_removed_link_and_apply_repairs(
    netns: Netns, tmp_path: Path
) -> None:
    root = systemd_root(tmp_path / "root")
    spec = write_spec(netns, spec_text(root, ALL))
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    good = files_under(root)
    unit = root / UNIT.lstrip("/")
    unit.write_text(unit.read_text().replace("192.0.2.100/32", "192.0.2.101/32"))
    (root / LINK.lstrip("/")).unlink()
    drift = netns.dsrctl("drift", str(spec))
    assert drift.returncode == 2
    assert f"DRIFT file {unit}: expected mode 0644, 20 line(s)" in drift.stdout
    assert f"DRIFT symlink {root}{LINK}: expected {UNIT}, actual missing" in drift.stdout
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    assert files_under(root) == good
    assert netns.dsrctl("drift", str(spec)).returncode == 0


def test_switching_backend_removes_what_dsrctl_wrote_for_the_old_one(
    netns: Netns, tmp_path: Path
) -> None:
    root = systemd_root(tmp_path / "root")
    spec = write_spec(netns, spec_text(root, ALL))
    before = files_under(root)
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    assert (root / UNIT.lstrip("/")).exists()
    # The operator moves lo to systemd-networkd.
    write(root, "/etc/systemd/network/10-lo.network", "[Match]\nName=lo\n")
    enable(root, "systemd-networkd.service", "sockets.target")
    plan = netns.dsrctl("plan", str(spec)).stdout
    assert f"- file {root}{UNIT}" in plan
    assert f"- symlink {root}{LINK}: {UNIT}  (created by dsrctl)" in plan
    assert f"- dir {root}/etc/systemd/system/multi-user.target.wants: directory" in plan
    assert plan.index(f"- symlink {root}{LINK}") < plan.index("- dir ")
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    after = files_under(root)
    assert UNIT not in after and LINK not in after
    assert "/etc/systemd/system/multi-user.target.wants/" not in after
    assert "Address=192.0.2.100/32" in after["/etc/systemd/network/10-lo.network.d/90-dsrctl.conf"]
    assert netns.dsrctl("drift", str(spec)).returncode == 0
    # Persistence off: dsrctl removes its drop-in and the directory it made for it.
    off = write_spec(
        netns, spec_text(root, ALL).replace("[linux.persist]", "[linux.persist]\nenabled = false")
    )
    assert netns.dsrctl("apply", "--auto-approve", str(off)).returncode == 0
    assert files_under(root) == {
        **before,
        "/etc/systemd/network/": "",
        "/etc/systemd/network/10-lo.network": "[Match]\nName=lo\n",
        "/etc/systemd/system/sockets.target.wants/": "",
        "/etc/systemd/system/sockets.target.wants/systemd-networkd.service": (
            "-> /lib/systemd/system/systemd-networkd.service"
        ),
    }


def test_a_failed_link_rolls_back_the_unit_the_addresses_and_the_sysctls(
    netns: Netns, tmp_path: Path
) -> None:
    root = systemd_root(tmp_path / "root")
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir()
    spec = write_spec(netns, spec_text(root, ALL))
    before = host_state(netns, root)
    env = {**os.environ, "DSRCTL_STATE_DIR": str(netns.state_dir)}
    env.pop("DSRCTL_REQUIRE_NETNS", None)
    readonly = f'mount --bind {wants} {wants} && mount -o remount,bind,ro {wants} && exec "$@"'
    result = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            netns.name,
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            readonly,
            "sh",
            sys.executable,
            "-m",
            "dsrctl",
            "apply",
            "--auto-approve",
            str(spec),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    failed = f"error: apply failed: cannot write {root}{LINK}: Read-only file system"
    assert lines[0] == failed, result.stderr
    # two sysctls, three VIPs, the sysctl file and the unit, undone in reverse order
    assert lines[1] == "rolled back 7 completed step(s); the host is as it was before apply"
    assert host_state(netns, root) == before


def test_rollback_from_the_journal_removes_unit_link_and_directory(
    netns: Netns, tmp_path: Path
) -> None:
    root = systemd_root(tmp_path / "root")
    before = files_under(root)
    spec = write_spec(netns, spec_text(root, ALL))
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    rolled = netns.dsrctl("rollback", "--auto-approve")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert files_under(root) == before
    assert netns.dsrctl("drift", str(spec)).returncode == 2


def test_a_later_sysctl_file_is_warned_about_in_plan_and_drift(
    netns: Netns, tmp_path: Path
) -> None:
    root = systemd_root(tmp_path / "root")
    write(root, "/usr/lib/sysctl.d/99-vendor.conf", "net.ipv4.conf.all.arp_ignore = 0\n")
    spec = write_spec(netns, spec_text(root, ALL))
    warning = (
        "! WARNING: /usr/lib/sysctl.d/99-vendor.conf line 1 sets net.ipv4.conf.all.arp_ignore = 0 "
        "and is read after 90-dsrctl.conf, so at boot it overrides dsrctl's 1: the host would "
        "answer ARP for its VIPs after a reboot; remove that line or rename one of the files"
    )
    assert warning in netns.dsrctl("plan", str(spec)).stdout.splitlines()
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    drift = netns.dsrctl("drift", str(spec))
    assert drift.returncode == 0  # the running host is right; the warning is about the boot
    assert warning in drift.stdout.splitlines()


def test_show_reports_who_configures_lo_at_boot(netns: Netns, tmp_path: Path) -> None:
    root = networkd_root(tmp_path / "root")
    text = netns.dsrctl("show", "--root", str(root)).stdout
    assert f"boot configuration of lo (under {root}):" in text
    line = "  systemd-networkd: /etc/systemd/network/10-lo.network ([Match] Name=lo) [active]"
    assert line in text
    assert (
        "  linux.persist.addresses = 'auto' -> systemd-networkd: "
        "systemd-networkd (/etc/systemd/network/10-lo.network: [Match] Name=lo)" in text
    )
    data = json.loads(netns.dsrctl("show", "--json", "--root", str(root)).stdout)
    assert data["persistence"]["auto"] == "systemd-networkd"
    assert data["persistence"]["claims"][0]["path"] == "/etc/systemd/network/10-lo.network"


def test_a_missing_root_is_a_spec_error(netns: Netns, tmp_path: Path) -> None:
    spec = write_spec(netns, spec_text(tmp_path / "nowhere", ALL))
    result = netns.dsrctl("plan", str(spec))
    assert result.returncode == 1
    assert result.stderr == (
        f'error: {spec}: linux.persist.root = "{tmp_path}/nowhere": no such directory\n'
    )


def test_a_directory_dsrctl_made_is_kept_when_someone_else_put_files_in_it(
    netns: Netns, tmp_path: Path
) -> None:
    root = networkd_root(tmp_path / "root")
    spec = write_spec(netns, spec_text(root, ALL))
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    dropins = root / "etc/systemd/network/10-lo.network.d"
    write(root, "/etc/systemd/network/10-lo.network.d/50-mtu.conf", "[Link]\nMTUBytes=9000\n")
    before = files_under(root)
    off = write_spec(netns, spec_text(root, ALL, addresses="none"))
    result = netns.dsrctl("apply", "--auto-approve", str(off))
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == (
        f"error: apply failed: cannot remove directory {dropins}, which dsrctl created: it now "
        "holds files dsrctl did not write (50-mtu.conf); move them or remove the directory "
        "by hand"
    )
    assert "rolled back 1 completed step(s)" in result.stderr
    assert files_under(root) == before  # dsrctl's drop-in is back, next to the operator's
