"""What `show` and `plan` say about the boot configuration, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

from tests.netns.namespaces import Netns, write_spec
from tests.netns.reboot import spec_text
from tests.persist_roots import dpkg_installed, ifcfg_root, nm_root, write


def test_show_names_the_uplink_of_the_live_host(netns: Netns) -> None:
    netns.run("ip", "link", "add", "dsr-up0", "type", "veth", "peer", "name", "dsr-up1")
    netns.run("ip", "link", "set", "dsr-up1", "up")
    netns.run("ip", "addr", "add", "198.18.1.2/24", "dev", "dsr-up0")
    netns.run("ip", "link", "set", "dsr-up0", "up")
    netns.run("ip", "route", "add", "default", "via", "198.18.1.1")
    text = netns.dsrctl("show").stdout  # reads this host's /etc, writes nothing
    assert "boot configuration of lo (under /):" in text
    assert "  uplink dsr-up0 (the default route):" in text
    data = json.loads(netns.dsrctl("show", "--json").stdout)
    assert data["persistence"]["uplink"]["interface"] == "dsr-up0"
    # Under another root there is no uplink to speak of: it is this host's.
    assert "(the default route)" not in netns.dsrctl("show", "--root", str(netns.workdir)).stdout


def test_show_reports_network_scripts_and_networkmanager(netns: Netns, tmp_path: Path) -> None:
    root = ifcfg_root(tmp_path / "rhel")
    text = netns.dsrctl("show", "--root", str(root)).stdout
    assert (
        "  ifcfg: /etc/sysconfig/network-scripts/ifcfg-lo (DEVICE=lo) [active]\n"
        "  linux.persist.addresses = 'auto' -> ifcfg: ifcfg "
        "(/etc/sysconfig/network-scripts/ifcfg-lo: DEVICE=lo)\n"
    ) in text
    root = nm_root(tmp_path / "fedora")
    dpkg_installed(root, "network-manager", "1.40.16-1")
    text = netns.dsrctl("show", "--root", str(root)).stdout
    assert "  NetworkManager version: 1.40.16-1\n" in text
    assert "type=loopback) [ignored: NetworkManager 1.40.16-1 has no loopback profiles" in text
    assert "  linux.persist.addresses = 'auto' -> systemd-unit: " in text


def test_plan_warns_about_etc_sysctl_conf_on_a_host_without_systemd(
    netns: Netns, tmp_path: Path
) -> None:
    root = tmp_path / "sysv"
    write(root, "/etc/sysctl.d/README", "")
    write(root, "/etc/sysctl.conf", "net.ipv4.conf.all.arp_ignore = 0\n")
    spec = write_spec(netns, spec_text(root, ["198.18.0.1"]))
    plan = netns.dsrctl("plan", str(spec))
    assert plan.returncode == 0, plan.stdout + plan.stderr
    lines = plan.stdout.splitlines()
    assert (
        "! WARNING: /etc/sysctl.conf (read last by 'sysctl --system') line 1 sets "
        "net.ipv4.conf.all.arp_ignore = 0 and is read after 90-dsrctl.conf, so at boot it "
        "overrides dsrctl's 1: the host would answer ARP for its VIPs after a reboot; remove "
        "that line" in lines
    )
    assert (
        "! the VIPs are not persisted: no tool configures lo at boot and systemd does not "
        f"boot {root}; add them at boot yourself" in lines
    )
