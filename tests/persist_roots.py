"""Throwaway root trees that look like the /etc of hosts where a given tool manages lo.

Each builder writes what that distribution actually has (the operator's own config file,
the service's enablement link as `systemctl enable` makes it), so that detection reads
a tree, never this host's /etc (linux.persist.root points at the tree).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

NETWORKD_LO = "[Match]\nName=lo\n\n[Network]\nAddress=198.18.0.9/32\n"
NM_LO = """[connection]
id=lo
uuid=4a9a4e53-0f3e-4b8e-9a57-8f0f4b3ce0e1
type=loopback
interface-name=lo

[loopback]

[ipv4]
address1=127.0.0.1/8
method=manual

[ipv6]
addr-gen-mode=default
method=auto

[proxy]
"""
DEBIAN_INTERFACES = """# interfaces(5) file used by ifup(8) and ifdown(8)
# Include files from /etc/network/interfaces.d:
source /etc/network/interfaces.d/*

# The loopback network interface
auto lo
iface lo inet loopback
"""
# RHEL 7's /etc/sysconfig/network-scripts/ifcfg-lo, as the initscripts package ships it
RHEL_IFCFG_LO = """DEVICE=lo
IPADDR=127.0.0.1
NETMASK=255.0.0.0
NETWORK=127.0.0.0
# If you're having problems with gated making 127.0.0.0/8 a martian,
# you can change this to something else (255.255.255.255, for example)
BROADCAST=127.255.255.255
ONBOOT=yes
NAME=loopback
"""
NETPLAN_LO = """network:
  version: 2
  renderer: networkd
  ethernets:
    lo:
      addresses: [198.18.0.9/32]
"""


def write(root: Path, path: str, text: str, mode: int = 0o644) -> Path:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    target.chmod(mode)
    return target


def systemd_root(root: Path) -> Path:
    """The directories Debian's systemd package ships (empty)."""
    (root / "etc/systemd/system").mkdir(parents=True, exist_ok=True)
    (root / "etc/systemd/network").mkdir(parents=True, exist_ok=True)
    (root / "etc/sysctl.d").mkdir(parents=True, exist_ok=True)
    return root


def enable(root: Path, unit: str, target: str = "multi-user.target") -> None:
    """What `systemctl enable` leaves behind: a link in the target's .wants directory."""
    wants = root / f"etc/systemd/system/{target}.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / unit).symlink_to(f"/lib/systemd/system/{unit}")


def networkd_root(root: Path, network: str = NETWORKD_LO, enabled: bool = True) -> Path:
    systemd_root(root)
    write(root, "/etc/systemd/network/10-lo.network", network)
    if enabled:
        enable(root, "systemd-networkd.service")
    return root


def nm_root(root: Path, profile: str = NM_LO, enabled: bool = True) -> Path:
    systemd_root(root)
    write(root, "/etc/NetworkManager/system-connections/lo.nmconnection", profile, 0o600)
    if enabled:
        enable(root, "NetworkManager.service")
    return root


def ifupdown_root(root: Path, interfaces: str = DEBIAN_INTERFACES) -> Path:
    systemd_root(root)
    write(root, "/etc/network/interfaces", interfaces)
    (root / "etc/network/interfaces.d").mkdir(parents=True, exist_ok=True)
    write(root, "/usr/sbin/ifup", "#!/bin/sh\n", 0o755)
    enable(root, "networking.service")
    return root


def ifcfg_root(root: Path, enabled: bool = True) -> Path:
    """A RHEL 7 host: network-scripts installed, the SysV ``network`` service enabled."""
    systemd_root(root)
    write(root, "/etc/sysconfig/network-scripts/ifcfg-lo", RHEL_IFCFG_LO)
    write(root, "/etc/sysconfig/network-scripts/ifup-aliases", "#!/bin/bash\n", 0o755)
    write(root, "/etc/rc.d/init.d/network", "#!/bin/bash\n", 0o755)
    if enabled:  # what `chkconfig network on` leaves behind
        (root / "etc/rc.d/rc3.d").mkdir(parents=True, exist_ok=True)
        (root / "etc/rc.d/rc3.d/S10network").symlink_to("../init.d/network")
    return root


def dpkg_installed(root: Path, package: str, version: str) -> None:
    """An entry in the dpkg database under ``root``, as dpkg writes it."""
    write(
        root,
        "/var/lib/dpkg/status",
        f"Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\n\n"
        f"Package: {package}\nStatus: install ok installed\nPriority: optional\n"
        f"Version: {version}\nDescription: x\n continued\n",
    )


def netplan_root(root: Path, yaml: str = NETPLAN_LO, generate: bool = True) -> Path:
    """netplan's YAML, rendered as its boot-time generator would (the real netplan)."""
    systemd_root(root)
    write(root, "/etc/netplan/50-cloud-init.yaml", yaml, 0o600)
    enable(root, "systemd-networkd.service")
    if generate:
        netplan_generate(root)
    return root


def netplan_generate(root: Path) -> None:
    result = subprocess.run(
        ["netplan", "generate", "--root-dir", str(root)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def files_under(root: Path) -> dict[str, str]:
    """Every file and link under ``root`` -> its content or link target (for snapshots)."""
    found = {}
    for directory, dirs, names in os.walk(root):
        for name in [*names, *(d for d in dirs if os.path.islink(os.path.join(directory, d)))]:
            path = Path(directory, name)
            rel = "/" + str(path.relative_to(root))
            found[rel] = f"-> {os.readlink(path)}" if path.is_symlink() else path.read_text()
        for name in dirs:
            found.setdefault("/" + str(Path(directory, name).relative_to(root)) + "/", "")
    return found
