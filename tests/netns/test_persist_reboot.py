"""A reboot, simulated per backend: apply in one namespace, boot a fresh one from the files.

Each test applies a spec whose persistent files live under a temporary root, then takes
a fresh namespace (what a reboot gives: ARP sysctls at their defaults, no VIPs) and
replays what the boot would run, with the real tool wherever Debian ships it:

- the sysctl file through ``sysctl -p`` (what systemd-sysctl does with it);
- systemd-unit: ``systemd-analyze verify`` on the unit, ``systemctl --root is-enabled``
  on the wants link, then the unit's ExecStart= command lines, run as written;
- networkd: the real systemd-networkd, started in the namespace with the root's
  /etc/systemd/network in place of the host's (private mount namespace; /sys read-only
  so that it does not wait for udev; /run/systemd and /run/dbus private);
- netplan: the real ``netplan generate --root-dir`` (the boot generator), then the real
  systemd-networkd on what it rendered;
- ifupdown: the real ``ifup -a`` (networking.service) with the root's /etc/network;
- networkmanager: NetworkManager's own keyfile parser (libnm, via python3-gi) reads and
  verifies the profile; the addresses it yields are added with ``ip addr``, as
  NetworkManager would (the daemon needs D-Bus and is not run here).

Then ``dsrctl drift`` in the fresh namespace must exit 0, having exited 2 before the boot.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from tests.netns.namespaces import NetnsFactory, sh
from tests.netns.reboot import (
    NM_READ,
    VIPS,
    apply_once,
    assert_in_sync,
    networkd_in,
    reboot,
)
from tests.persist_roots import (
    NM_LO,
    ifupdown_root,
    netplan_generate,
    netplan_root,
    networkd_root,
    nm_root,
    systemd_root,
)


def test_systemd_unit_comes_back(make_netns: NetnsFactory, tmp_path: Path) -> None:
    root = systemd_root(tmp_path / "root")
    unit = root / "etc/systemd/system/dsrctl-vips.service"

    spec = apply_once(make_netns, root, list(VIPS))
    verify = sh("systemd-analyze", "verify", str(unit), check=False)
    assert (verify.returncode, verify.stderr) == (0, ""), verify.stderr
    enabled = sh("systemctl", f"--root={root}", "is-enabled", unit.name, check=False)
    assert enabled.stdout.strip() == "enabled", enabled.stdout + enabled.stderr
    rebooted = reboot(make_netns, spec, root)
    for line in unit.read_text().splitlines():
        if line.startswith("ExecStart="):
            rebooted.run(*shlex.split(line.removeprefix("ExecStart=")))
    assert_in_sync(rebooted, spec)


def test_networkd_dropin_comes_back_with_the_operators_own_file(
    make_netns: NetnsFactory, tmp_path: Path
) -> None:
    root = networkd_root(tmp_path / "root")
    binds = {"/etc/systemd/network": root / "etc/systemd/network"}
    wanted = [*VIPS, "198.18.0.9/32"]  # the VIPs and the operator's own address

    spec = apply_once(make_netns, root, list(VIPS))
    rebooted = reboot(make_netns, spec, root, lo_up=False)
    with networkd_in(rebooted, binds, wanted):
        assert_in_sync(rebooted, spec)
    dropin = root / "etc/systemd/network/10-lo.network.d/90-dsrctl.conf"
    assert "DuplicateAddressDetection=none" in dropin.read_text()


def test_netplan_yaml_comes_back_through_networkd(make_netns: NetnsFactory, tmp_path: Path) -> None:
    root = netplan_root(tmp_path / "root")
    binds = {
        "/etc/systemd/network": root / "etc/systemd/network",
        "/run/systemd/network": root / "run/systemd/network",
    }
    vips = ["192.0.2.100", "198.18.0.1"]
    spec = apply_once(make_netns, root, vips)
    rebooted = reboot(make_netns, spec, root, lo_up=False)
    netplan_generate(root)  # what netplan's systemd generator does at every boot
    with networkd_in(rebooted, binds, [*vips, "198.18.0.9/32"]):
        assert_in_sync(rebooted, spec)
    rendered = (root / "run/systemd/network/10-netplan-lo.network").read_text()
    assert "Address=192.0.2.100/32\nLabel=lo:1" in rendered


def test_networkd_dropin_for_netplans_rendered_file_keeps_ipv6_vips(
    make_netns: NetnsFactory, tmp_path: Path
) -> None:
    root = netplan_root(tmp_path / "root")
    binds = {
        "/etc/systemd/network": root / "etc/systemd/network",
        "/run/systemd/network": root / "run/systemd/network",
    }
    spec = apply_once(make_netns, root, list(VIPS), addresses="networkd")
    dropin = root / "etc/systemd/network/10-netplan-lo.network.d/90-dsrctl.conf"
    assert "DuplicateAddressDetection=none" in dropin.read_text()
    rebooted = reboot(make_netns, spec, root, lo_up=False)
    netplan_generate(root)  # regenerates /run; the drop-in in /etc is untouched
    with networkd_in(rebooted, binds, [*VIPS, "198.18.0.9/32"]):
        assert_in_sync(rebooted, spec)


def test_ifupdown_stanzas_come_back_with_ifup(make_netns: NetnsFactory, tmp_path: Path) -> None:
    root = ifupdown_root(tmp_path / "root")
    state = tmp_path / "ifstate"
    state.mkdir()

    spec = apply_once(make_netns, root, list(VIPS))
    rebooted = reboot(make_netns, spec, root, lo_up=False)
    script = (
        f"mount --bind {shlex.quote(str(root / 'etc/network'))} /etc/network && "
        f"ifup -a --no-scripts --state-dir {shlex.quote(str(state))}"
    )
    rebooted.run("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
    assert_in_sync(rebooted, spec)


@pytest.mark.parametrize("method", ["manual", "auto"])
def test_networkmanager_profile_comes_back(
    make_netns: NetnsFactory, tmp_path: Path, method: str
) -> None:
    # "auto" is what `nmcli connection add type loopback` writes: NetworkManager then adds
    # 127.0.0.1/8 itself, and the listed addresses on top.
    root = nm_root(tmp_path / "root", NM_LO.replace("method=manual", f"method={method}"))
    profile = root / "etc/NetworkManager/system-connections/lo.nmconnection"
    spec = apply_once(make_netns, root, ["198.18.0.1"])
    read = sh("/usr/bin/python3", "-c", NM_READ, str(profile))
    parsed = json.loads(read.stdout)
    assert parsed["warnings"] == []
    assert parsed["type"] == "loopback"
    assert parsed["uuid"] == "4a9a4e53-0f3e-4b8e-9a57-8f0f4b3ce0e1"  # the operator's profile
    assert parsed["ipv4"] == ["127.0.0.1/8", "198.18.0.1/32"]
    assert f"method={method}" in profile.read_text()
    rebooted = reboot(make_netns, spec, root)
    for cidr in parsed["ipv4"]:
        if cidr not in rebooted.addresses():
            rebooted.run("ip", "addr", "add", cidr, "dev", "lo")
    assert_in_sync(rebooted, spec)
    assert profile.stat().st_mode & 0o777 == 0o600
