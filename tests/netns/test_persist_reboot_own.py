"""A reboot, simulated for the files dsrctl writes where the operator has none, and for
the legacy network-scripts (see test_persist_reboot.py for the method).

- systemd-networkd with no .network file for lo: dsrctl's own 10-dsrctl-lo.network, booted
  with the real systemd-networkd, which must also keep 127.0.0.1/8, ::1 and an address it
  was not told about (KeepConfiguration=yes);
- NetworkManager with no loopback profile: dsrctl's own profile, read and verified by
  libnm's keyfile parser, its addresses added as NetworkManager would;
- ifcfg: the alias files, read the way network-scripts read them (sourced by sh with an
  empty environment, after the parent's defaults, as ifup-aliases does), then added as
  ifup-aliases adds them.
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path

from tests.netns.namespaces import Netns, NetnsFactory, sh
from tests.netns.reboot import (
    NM_READ,
    VIPS,
    apply_once,
    assert_in_sync,
    networkd_in,
    reboot,
)
from tests.persist_roots import dpkg_installed, enable, ifcfg_root, systemd_root

SCRIPTS = "etc/sysconfig/network-scripts"


def test_networkd_own_file_for_lo_comes_back(make_netns: NetnsFactory, tmp_path: Path) -> None:
    root = systemd_root(tmp_path / "root")
    enable(root, "systemd-networkd.service")
    own = root / "etc/systemd/network/10-dsrctl-lo.network"

    spec = apply_once(make_netns, root, list(VIPS), addresses="systemd-networkd")
    assert own.exists() and own.stat().st_mode & 0o777 == 0o644
    rebooted = reboot(make_netns, spec, root, lo_up=False)
    # An address that something else adds before networkd starts must survive it.
    rebooted.run("ip", "addr", "add", "198.18.7.7/32", "dev", "lo")
    binds = {"/etc/systemd/network": root / "etc/systemd/network"}
    with networkd_in(rebooted, binds, [*VIPS, "198.18.7.7/32", "127.0.0.1/8", "::1/128"]):
        assert_in_sync(rebooted, spec)
        shown = json.loads(rebooted.run("ip", "-j", "addr", "show", "dev", "lo").stdout)
        scopes = {a["local"]: a["scope"] for a in shown[0]["addr_info"]}
        assert scopes["127.0.0.1"] == "host" and scopes["::1"] == "host"


def test_networkmanager_own_profile_comes_back(make_netns: NetnsFactory, tmp_path: Path) -> None:
    root = systemd_root(tmp_path / "root")
    (root / "etc/NetworkManager/system-connections").mkdir(parents=True)
    enable(root, "NetworkManager.service")
    dpkg_installed(root, "network-manager", "1.42.4-1")
    profile = root / "etc/NetworkManager/system-connections/dsrctl-lo.nmconnection"

    spec = apply_once(make_netns, root, ["198.18.0.1"], addresses="networkmanager")
    assert profile.stat().st_mode & 0o777 == 0o600
    parsed = json.loads(sh("/usr/bin/python3", "-c", NM_READ, str(profile)).stdout)
    assert parsed["warnings"] == []
    assert parsed["type"] == "loopback"
    assert parsed["ipv4"] == ["127.0.0.1/8", "198.18.0.1/32"]
    rebooted = reboot(make_netns, spec, root)
    for cidr in parsed["ipv4"]:
        if cidr not in rebooted.addresses():
            rebooted.run("ip", "addr", "add", cidr, "dev", "lo")
    assert_in_sync(rebooted, spec)


def shell_values(path: Path, names: list[str], preset: dict[str, str]) -> dict[str, str]:
    """Source ``path`` as network-scripts do (``. ./$FILE``), with an empty environment
    apart from ``preset``, and return the named variables."""
    assign = "".join(f'{name}="${i + 1}"; ' for i, name in enumerate(preset))
    script = (
        f'{assign}. "${len(preset) + 1}"; '
        + "printf '%s\\n' "
        + " ".join(f'"${name}"' for name in names)
    )
    result = sh("env", "-i", "/bin/sh", "-c", script, "sh", *preset.values(), str(path))
    assert result.stderr == ""
    return dict(zip(names, result.stdout.split("\n"), strict=False))


def ifup_aliases(ns: Netns, scripts: Path, interface: str = "lo") -> list[str]:
    """What network-scripts' ifup-aliases runs for ``interface`` at boot (ifup-eth ->
    ifup-post -> ifup-aliases): every ifcfg-<interface>:* file, after the parent's
    PREFIX/NETMASK/BROADCAST defaults."""
    parent = shell_values(scripts / f"ifcfg-{interface}", ["PREFIX", "NETMASK", "BROADCAST"], {})
    added = []
    for path in sorted(scripts.glob(f"ifcfg-{interface}:*")):
        sh("/bin/sh", "-n", str(path))  # the shell's own syntax check
        preset = {"DEVICE": "", "IPADDR": "", **parent}
        found = shell_values(path, ["DEVICE", "IPADDR", "PREFIX", "NETMASK", "ONPARENT"], preset)
        if found["ONPARENT"].lower() == "no":
            continue
        device = found["DEVICE"] or path.name.removeprefix("ifcfg-")
        prefix = found["PREFIX"] or str(
            ipaddress.IPv4Network(f"0.0.0.0/{found['NETMASK']}").prefixlen
        )
        network = ipaddress.IPv4Interface(f"{found['IPADDR']}/{prefix}").network
        ns.run(
            "ip", "addr", "add", f"{found['IPADDR']}/{prefix}", "brd",
            str(network.broadcast_address), "dev", interface, "label", device,
        )  # fmt: skip
        added.append(f"{found['IPADDR']}/{prefix} {device}")
    return added


def test_ifcfg_aliases_come_back(make_netns: NetnsFactory, tmp_path: Path) -> None:
    root = ifcfg_root(tmp_path / "root")
    scripts = root / SCRIPTS
    spec = apply_once(make_netns, root, ["192.0.2.100", "198.18.0.1"])
    assert sorted(os.listdir(scripts)) == ["ifcfg-lo", "ifcfg-lo:0", "ifcfg-lo:1", "ifup-aliases"]
    alias = shell_values(scripts / "ifcfg-lo:0", ["DEVICE", "IPADDR", "PREFIX", "ONBOOT"], {})
    assert alias == {"DEVICE": "lo:0", "IPADDR": "198.18.0.1", "PREFIX": "32", "ONBOOT": "yes"}
    assert (scripts / "ifcfg-lo:0").stat().st_mode & 0o777 == 0o644
    rebooted = reboot(make_netns, spec, root)
    assert ifup_aliases(rebooted, scripts) == ["198.18.0.1/32 lo:0", "192.0.2.100/32 lo:1"]
    assert_in_sync(rebooted, spec)


def test_ifcfg_refuses_ipv6_vips_before_anything_changes(netns: Netns, tmp_path: Path) -> None:
    from tests.netns.namespaces import write_spec
    from tests.netns.reboot import spec_text

    root = ifcfg_root(tmp_path / "root")
    spec = write_spec(netns, spec_text(root, ["198.18.0.1", "2001:db8::100"]))
    result = netns.dsrctl("validate", str(spec))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f'error: {spec}: linux.persist.addresses = "auto": ifcfg cannot keep VIP '
        "2001:db8::100/128 across a reboot: network-scripts have no alias files for IPv6 "
        "addresses and cannot add one deprecated (preferred_lft 0); use "
        "linux.persist.addresses = 'systemd-unit' (network-scripts leave IPv6 addresses on "
        "lo alone)\n"
    )
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 1
    assert sorted(os.listdir(root / SCRIPTS)) == ["ifcfg-lo", "ifup-aliases"]
