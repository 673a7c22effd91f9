"""Host facts that detection needs besides configuration files: versions and the uplink.

Read-only like the rest of detection. Only the live host (root "/") is asked by running a
program (``NetworkManager --version``) or through /proc; under another root, the dpkg
database is the only honest source of a version, and there is no uplink.
"""

from __future__ import annotations

import os
import subprocess

from providers.model import under_root as under

DPKG_STATUS = "/var/lib/dpkg/status"
_NM_PROGRAMS = ("/usr/sbin/NetworkManager", "/usr/bin/nmcli")


def dpkg_version(root: str, package: str) -> str | None:
    """The version of an installed package in the dpkg database under ``root``."""
    try:
        with open(under(root, DPKG_STATUS), encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    for stanza in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " "
        )
        if fields.get("Package") == package and fields.get("Status", "").endswith(" installed"):
            version = fields.get("Version", "")
            return version.split(":", 1)[-1] or None  # without the epoch
    return None


def nm_version(root: str, live: bool) -> str | None:
    """NetworkManager's version: the program's own answer on the live host, else dpkg's."""
    if not os.path.isdir(under(root, "/etc/NetworkManager")):
        return None  # not installed: nothing to ask (and keeps drift from running programs)
    if live:
        for program in _NM_PROGRAMS:
            if not os.access(program, os.X_OK):
                continue
            try:
                result = subprocess.run(
                    [program, "--version"], capture_output=True, text=True, timeout=10
                )
            except (OSError, subprocess.TimeoutExpired):
                continue
            words = result.stdout.split()
            if result.returncode == 0 and words:
                return words[-1]  # "1.42.4-1" or "nmcli tool, version 1.42.4-1"
    return dpkg_version(root, "network-manager")


def uplink(proc: str = "/proc") -> str | None:
    """The interface of the default route in this network namespace (IPv4, else IPv6)."""
    try:
        with open(os.path.join(proc, "net", "route"), encoding="ascii") as handle:
            for line in handle.read().splitlines()[1:]:
                fields = line.split()
                if len(fields) >= 8 and fields[1] == "00000000" and fields[7] == "00000000":
                    return fields[0]
    except OSError:
        pass
    try:
        with open(os.path.join(proc, "net", "ipv6_route"), encoding="ascii") as handle:
            for line in handle:
                fields = line.split()
                default = len(fields) == 10 and fields[0] == "0" * 32 and fields[1] == "00"
                if default and fields[9] != "lo":
                    return fields[9]
    except OSError:
        pass
    return None


def link_type(interface: str, sys_class_net: str = "/sys/class/net") -> str | None:
    """The link type systemd-networkd's ``Type=`` matches ("ether", "wlan", "bridge"...),
    from sysfs (this network namespace's); None when it cannot be told."""
    base = os.path.join(sys_class_net, interface)
    try:
        with open(os.path.join(base, "uevent"), encoding="ascii", errors="replace") as handle:
            for line in handle:
                key, _, value = line.strip().partition("=")
                if key == "DEVTYPE" and value:
                    return value
        with open(os.path.join(base, "type"), encoding="ascii") as handle:
            number = int(handle.read().strip())
    except (OSError, ValueError):
        return None
    return {1: "ether", 772: "loopback", 768: "tunnel", 776: "sit"}.get(number)
