"""A reboot, simulated per backend, for the [[tunnel]] decap side (a vxlan-gpe device:
this kernel has vxlan, not ipip, gre, ip6tnl or fou; those boot in the VM tier,
tests/vm/test_tunnel_reboot.py).

The method is test_persist_reboot.py's: apply in one namespace (with an uplink: the MSS
clamp starts from its MTU), take a fresh one with an uplink and nothing else, replay
what the boot runs, in the boot's order, with the real tool where Debian ships it, and
``dsrctl drift`` must exit 0 (it exits 2 before):

1. systemd-sysctl: dsrctl's sysctl file with ``sysctl -e``: the decap device's
   ``rp_filter`` key names a device that does not exist yet, and systemd-sysctl skips
   such a key (ENOENT) rather than fail;
2. systemd-modules-load (nothing to do here: vxlan is built in), then dsrctl's units that
   multi-user.target wants (dsrctl-tunnels.service, dsrctl-mss.service,
   dsrctl-vips.service), each ExecStart= as systemd runs it ('-' may fail);
3. the backend's own tool: the real systemd-networkd, ``netplan generate``, ``ifup -a``;
   NetworkManager's and ifcfg's VIPs are replayed as test_persist_reboot_ranges.py does;
4. udev: when the device appears, 99-systemd.rules runs systemd-sysctl for its keys:
   the sysctl file again with ``-e``, now that the device is there.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from providers.linux.persist import Detection, RenderRequest, networkd
from providers.model import TunnelState
from tests.netns.namespaces import Netns, NetnsFactory, sh, with_uplink, write_spec
from tests.netns.reboot import NETWORKD, assert_in_sync, networkd_in, replay_unit, udev_sysctls
from tests.persist_roots import (
    ifcfg_root,
    ifupdown_root,
    netplan_generate,
    netplan_root,
    networkd_root,
    nm_root,
    systemd_root,
)

VIP = "192.0.2.100"
GPE = f'version = 1\n[[vip]]\naddress = "{VIP}"\n[[tunnel]]\nkind = "vxlan-gpe"\n'
UNIT = "etc/systemd/system/dsrctl-tunnels.service"


def apply_tunnel(make_netns: NetnsFactory, root: Path, addresses: str = "auto") -> Path:
    server = make_netns("server")
    with_uplink(server)
    persist = f'[linux.persist]\nroot = "{root}"\naddresses = "{addresses}"\n'
    spec = write_spec(server, GPE + persist)
    applied = server.dsrctl("apply", "--auto-approve", str(spec))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "+ tunnel dsrgpe0" in applied.stdout
    again = server.dsrctl("apply", "--auto-approve", str(spec))
    assert "No changes." in again.stdout, again.stdout
    return spec


def boot(make_netns: NetnsFactory, spec: Path, root: Path, lo_up: bool = True) -> Netns:
    """A fresh namespace with its uplink; systemd-sysctl and dsrctl's units have run."""
    rebooted = make_netns("rebooted", lo_up=lo_up)
    with_uplink(rebooted)
    drift = rebooted.dsrctl("drift", "--json", str(spec))
    assert drift.returncode == 2
    assert "tunnel:dsrgpe0" in {item["resource"] for item in json.loads(drift.stdout)["drift"]}
    # systemd's own 50-default.conf (Debian, Fedora): a new device starts loose, so the
    # decap device is in sync only once its own key applies
    rebooted.run("sysctl", "-q", "-w", "net.ipv4.conf.default.rp_filter=2")
    udev_sysctls(rebooted, root)  # systemd-sysctl: the device's key is skipped
    units = root / "etc/systemd/system"
    for unit in sorted((units / "multi-user.target.wants").glob("dsrctl-*.service")):
        replay_unit(rebooted, units / unit.name, root)
    return rebooted


def gpe_up(ns: Netns) -> bool:
    found = ns.run("ip", "-d", "-j", "link", "show", "dev", "dsrgpe0", check=False)
    if found.returncode != 0:
        return False
    link = json.loads(found.stdout)[0]
    data = link["linkinfo"]["info_data"]
    return bool("UP" in link["flags"] and data["external"] and data["gpe"])


def verify_unit(root: Path) -> None:
    verify = sh("systemd-analyze", "verify", str(root / UNIT), check=False)
    assert (verify.returncode, verify.stderr) == (0, ""), verify.stderr
    enabled = sh("systemctl", f"--root={root}", "is-enabled", "dsrctl-tunnels.service", check=False)
    assert enabled.stdout.strip() == "enabled", enabled.stdout + enabled.stderr


def test_systemd_unit_creates_the_device_again(make_netns: NetnsFactory, tmp_path: Path) -> None:
    root = systemd_root(tmp_path / "root")
    spec = apply_tunnel(make_netns, root)
    verify_unit(root)
    rebooted = boot(make_netns, spec, root)
    assert gpe_up(rebooted)
    # before udev's run for the device: its rp_filter key is all that is missing
    drift = json.loads(rebooted.dsrctl("drift", "--json", str(spec)).stdout)["drift"]
    assert [item["resource"] for item in drift] == ["sysctl:net.ipv4.conf.dsrgpe0.rp_filter"]
    udev_sysctls(rebooted, root)
    assert_in_sync(rebooted, spec)
    # A restart of the unit (the device exists: 'ip link add' fails, '-' ignores it) changes
    # nothing; with the device down, it comes up again.
    rebooted.run("ip", "link", "set", "dsrgpe0", "down")
    replay_unit(rebooted, root / UNIT)
    assert_in_sync(rebooted, spec)


def test_the_unit_fails_when_the_device_cannot_be_made(
    make_netns: NetnsFactory, tmp_path: Path
) -> None:
    """'-' hides only the 'add': a device that is still missing fails the 'up' after it."""
    root = systemd_root(tmp_path / "root")
    apply_tunnel(make_netns, root)
    broken = tmp_path / "broken.service"
    broken.write_text((root / UNIT).read_text().replace("type vxlan gpe", "type nosuchkind"))
    fresh = make_netns("fresh")
    with pytest.raises(AssertionError, match="link set dsrgpe0 up"):
        replay_unit(fresh, broken)


def test_networkd_backend_leaves_vxlan_gpe_to_the_unit(
    make_netns: NetnsFactory, tmp_path: Path
) -> None:
    """networkd 252 has no collect-metadata VXLAN: no .netdev, no .network of dsrctl's
    for dsrgpe0 (the ipip, gre, ip6tnl and ip6gre kinds get networkd's own files: the
    test below and the VM tier)."""
    root = networkd_root(tmp_path / "root")
    spec = apply_tunnel(make_netns, root)
    assert not list((root / "etc/systemd/network").glob("10-dsrctl-tunnel-*"))
    verify_unit(root)
    rebooted = boot(make_netns, spec, root, lo_up=False)
    binds = {"/etc/systemd/network": root / "etc/systemd/network"}
    with networkd_in(rebooted, binds, [VIP, "198.18.0.9/32"]):
        assert gpe_up(rebooted)  # networkd leaves it alone: no .network matches it
        udev_sysctls(rebooted, root)
        assert_in_sync(rebooted, spec)


def test_netplan_backend_gets_the_unit(make_netns: NetnsFactory, tmp_path: Path) -> None:
    root = netplan_root(tmp_path / "root")
    spec = apply_tunnel(make_netns, root)
    verify_unit(root)
    rebooted = boot(make_netns, spec, root, lo_up=False)
    netplan_generate(root)
    binds = {
        "/etc/systemd/network": root / "etc/systemd/network",
        "/run/systemd/network": root / "run/systemd/network",
    }
    with networkd_in(rebooted, binds, [VIP, "198.18.0.9/32"]):
        udev_sysctls(rebooted, root)
        assert_in_sync(rebooted, spec)


def test_ifupdown_creates_the_device_with_ifup(make_netns: NetnsFactory, tmp_path: Path) -> None:
    root = ifupdown_root(tmp_path / "root")
    spec = apply_tunnel(make_netns, root)
    assert not (root / UNIT).exists()  # ifupdown brings the decap side back itself
    for existing in (False, True):  # and a device that exists already is kept
        state = tmp_path / f"ifstate-{existing}"
        state.mkdir()
        rebooted = boot(make_netns, spec, root, lo_up=False)
        if existing:
            rebooted.run("ip", "link", "add", "dsrgpe0", "type", "vxlan", "gpe", "external",
                         "dstport", "4790", "nolearning")  # fmt: skip
        assert not gpe_up(rebooted)
        script = (
            f"mount --bind {shlex.quote(str(root / 'etc/network'))} /etc/network && "
            f"ifup -a --no-scripts --state-dir {shlex.quote(str(state))}"
        )
        rebooted.run("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
        assert gpe_up(rebooted)
        udev_sysctls(rebooted, root)
        assert_in_sync(rebooted, spec)


@pytest.mark.parametrize("backend", ["networkmanager", "ifcfg", "none"])
def test_backends_without_external_devices_get_the_unit(
    make_netns: NetnsFactory, tmp_path: Path, backend: str
) -> None:
    roots: dict[str, Callable[[Path], Path]] = {
        "networkmanager": nm_root,
        "ifcfg": ifcfg_root,
        "none": systemd_root,
    }
    root = roots[backend](tmp_path / "root")
    spec = apply_tunnel(make_netns, root, addresses=backend)
    verify_unit(root)
    rebooted = boot(make_netns, spec, root)
    # the VIP as NetworkManager / ifcfg would add it (test_persist_reboot*.py read their
    # files with the real parsers); 'none' persists no VIP: the operator adds it
    label = ["label", "lo:0"] if backend == "ifcfg" else []  # ifcfg-lo:0
    rebooted.run("ip", "addr", "add", f"{VIP}/32", "dev", "lo", *label)
    udev_sysctls(rebooted, root)
    assert_in_sync(rebooted, spec)


def test_dropping_the_tunnel_removes_the_unit_and_rollback_restores_it(
    make_netns: NetnsFactory, tmp_path: Path
) -> None:
    root = systemd_root(tmp_path / "root")
    server = make_netns("server")
    with_uplink(server)
    spec = write_spec(server, GPE + f'[linux.persist]\nroot = "{root}"\n')
    assert server.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    unit = root / UNIT
    link = root / "etc/systemd/system/multi-user.target.wants/dsrctl-tunnels.service"
    written = unit.read_bytes()
    spec.write_text(spec.read_text().replace('[[tunnel]]\nkind = "vxlan-gpe"\n', ""))
    dropped = server.dsrctl("apply", "--auto-approve", str(spec))
    assert dropped.returncode == 0, dropped.stdout + dropped.stderr
    assert "- file " + str(unit) in dropped.stdout
    assert not unit.exists() and not link.is_symlink()
    back = server.dsrctl("rollback", "--auto-approve")
    assert back.returncode == 0, back.stdout + back.stderr
    assert unit.read_bytes() == written and link.is_symlink() and gpe_up(server)


# -- networkd's own files for the kinds this kernel lacks ------------------------------
def test_networkd_reads_dsrctls_netdev_and_network_files_without_a_warning(
    make_netns: NetnsFactory, tmp_path: Path
) -> None:
    """The files of a gue, gre and ip6ip6 spec, as networkd.render writes them, fed to the
    real systemd-networkd: not one warning about them (a wrong key would be one), and
    the .network of a module's fallback device brings up a device networkd did not make
    (a stand-in named tunl0, down, as loading ipip leaves it) with no address on it.
    (This kernel has no gre or ip6tnl: the VM tier proves the devices themselves.)"""
    directory = tmp_path / "network"
    directory.mkdir()
    tunnels = (
        ("tunl0", TunnelState("ipip", False, True)),
        ("dsrgre0", TunnelState("gre", True, True)),
        ("dsr6tnl0", TunnelState("ip6tnl", True, True)),
    )
    detection = Detection(root="/", interface="lo", live=False, systemd=True)
    request = RenderRequest((), "lo", "/etc/dsrctl/dsrctl.toml", detection, tunnels=tunnels,
                            fou_ports=(19523,))  # fmt: skip
    files = networkd.decap_files(request)
    assert len(files) == 5  # two .netdev, three .network, nothing for the port
    for path, state in files.items():
        (directory / path.rsplit("/", 1)[1]).write_bytes(state.content)
    ns = make_netns("networkd", lo_up=False)
    ns.run("ip", "link", "add", "tunl0", "type", "vxlan", "gpe", "external", "dstport", "4790")
    log = run_networkd(ns, directory, until=lambda: link_up(ns, "tunl0"))
    assert "10-dsrctl" not in warnings(log), log
    assert ns.run("ip", "-j", "addr", "show", "dev", "tunl0").stdout.count("local") == 0
    # A key networkd does not know, in a copy: the check above would see it.
    bogus = directory / "10-dsrctl-tunnel-dsrgre0.netdev"
    bogus.write_text(bogus.read_text().replace("External=yes", "External=yes\nExternl=yes"))
    ns2 = make_netns("networkd2", lo_up=False)
    log = run_networkd(ns2, directory, until=lambda: False, seconds=3)
    assert "10-dsrctl-tunnel-dsrgre0.netdev" in warnings(log), log


def link_up(ns: Netns, name: str) -> bool:
    found = ns.run("ip", "-j", "link", "show", "dev", name, check=False)
    return found.returncode == 0 and "UP" in json.loads(found.stdout)[0]["flags"]


def warnings(log: str) -> str:
    keys = ("Unknown", "ignoring", "Failed to parse", "Invalid")
    return "\n".join(line for line in log.splitlines() if any(key in line for key in keys))


def run_networkd(ns: Netns, directory: Path, until: Callable[[], bool], seconds: float = 20) -> str:
    """systemd-networkd in ``ns`` with ``directory`` as /etc/systemd/network, until
    ``until()`` or for ``seconds``; its log."""
    script = [
        "set -e",
        "mount -o remount,bind,ro /sys",
        "mount -t tmpfs tmpfs /run/systemd",
        "if [ -d /run/dbus ]; then mount -t tmpfs tmpfs /run/dbus; fi",
        "mkdir -p /run/systemd/netif /run/systemd/network",
        "chown systemd-network:systemd-network /run/systemd/netif",
        f"mount --bind {shlex.quote(str(directory))} /etc/systemd/network",
        f"exec {NETWORKD}",
    ]
    process = subprocess.Popen(
        ["ip", "netns", "exec", ns.name, "unshare", "--mount", "--propagation", "private",
         "sh", "-c", "; ".join(script)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SYSTEMD_LOG_TARGET": "console"},
    )  # fmt: skip
    deadline = time.monotonic() + seconds
    done = False
    while time.monotonic() < deadline and process.poll() is None:
        if until():
            done = True
            break
        time.sleep(0.1)
    time.sleep(0.5)  # the last lines of the log
    process.terminate()
    log = process.communicate(timeout=20)[0]
    assert done or seconds < 20, f"networkd did not bring the device up:\n{log}"
    return log
