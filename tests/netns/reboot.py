"""Persisted specs and simulated reboots, shared by the namespace tests of VIP persistence.

``spec_text`` writes a spec whose persistent files live under a temporary root;
``apply_once`` applies it in a first namespace, ``reboot`` gives a fresh one (what a
reboot gives: ARP sysctls from the sysctl file, no VIPs), and ``assert_in_sync`` checks
that ``dsrctl drift`` finds the host as the spec says. ``networkd_in`` runs the real
systemd-networkd in a namespace; ``NM_READ`` is NetworkManager's own keyfile parser
(libnm, via python3-gi), run as a script.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.netns.namespaces import Netns, NetnsFactory, write_spec

VIPS = {
    "192.0.2.100": 'address = "192.0.2.100"\nlabel = "lo:1"\n',
    "198.18.0.1": 'address = "198.18.0.1"\n',
    "2001:db8::100": 'address = "2001:db8::100"\n',
}
# VIP ranges (local routes), given to spec_text like the VIPs.
RANGES = {
    "198.18.5.0/24": 'address = "198.18.5.0"\nprefix = 24\n',
    "2001:db8:5::/120": 'address = "2001:db8:5::"\nprefix = 120\n',
}
NETWORKD = next(
    p
    for p in ("/lib/systemd/systemd-networkd", "/usr/lib/systemd/systemd-networkd")
    if os.path.exists(p)
)


def spec_text(root: Path, vips: list[str], addresses: str = "auto") -> str:
    tables = "".join(f"[[vip]]\n{VIPS.get(vip) or RANGES[vip]}" for vip in vips)
    return f'version = 1\n{tables}\n[linux.persist]\nroot = "{root}"\naddresses = "{addresses}"\n'


def apply_once(
    make_netns: NetnsFactory, root: Path, vips: list[str], addresses: str = "auto"
) -> Path:
    """Apply (twice: the second run changes nothing) in a first namespace; the spec."""
    server = make_netns("server")
    spec = write_spec(server, spec_text(root, vips, addresses))
    applied = server.dsrctl("apply", "--auto-approve", str(spec))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    again = server.dsrctl("apply", "--auto-approve", str(spec))
    assert "No changes." in again.stdout, again.stdout
    return spec


def reboot(make_netns: NetnsFactory, spec: Path, root: Path, lo_up: bool = True) -> Netns:
    """A fresh namespace in which systemd-sysctl has run: the ARP keys, but no VIP yet."""
    rebooted = make_netns("rebooted", lo_up=lo_up)
    assert rebooted.dsrctl("drift", str(spec)).returncode == 2  # nothing came back by itself
    rebooted.run("sysctl", "-q", "-p", str(root / "etc/sysctl.d/90-dsrctl.conf"))
    return rebooted


def assert_in_sync(ns: Netns, spec: Path) -> None:
    drift = ns.dsrctl("drift", str(spec))
    assert drift.returncode == 0, drift.stdout + drift.stderr
    assert drift.stdout.rstrip().endswith(f"in sync: the host matches {spec}")


@contextmanager
def networkd_in(ns: Netns, binds: dict[str, Path], wanted: list[str]) -> Iterator[None]:
    """The real systemd-networkd in ``ns`` with config directories from ``binds``."""
    script = ["set -e", "mount -o remount,bind,ro /sys", "mount -t tmpfs tmpfs /run/systemd"]
    script += ["if [ -d /run/dbus ]; then mount -t tmpfs tmpfs /run/dbus; fi"]
    script += ["mkdir -p /run/systemd/netif /run/systemd/network"]
    script += ["chown systemd-network:systemd-network /run/systemd/netif"]
    script += [f"mount --bind {shlex.quote(str(src))} {target}" for target, src in binds.items()]
    script += [f"exec {NETWORKD}"]
    command = ["ip", "netns", "exec", ns.name, "unshare", "--mount", "--propagation", "private"]
    process = subprocess.Popen(
        [*command, "sh", "-c", "; ".join(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "SYSTEMD_LOG_TARGET": "console"},
    )
    try:
        deadline = time.monotonic() + 30
        while not all(vip in ns.addresses() for vip in wanted):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(
                    f"networkd did not configure {wanted}:\n{process.communicate()[0]}"
                )
            time.sleep(0.1)
        yield
    finally:
        process.terminate()
        process.communicate(timeout=20)


# libnm's keyfile parser (python3-gi): loads the profile given as argv[1] into
# ``connection``, normalized and verified, its warnings in ``warnings``; a script appends
# what it prints.
NM_LOAD = """
import json, sys
import gi
gi.require_version("NM", "1.0")
from gi.repository import GLib, NM
data = open(sys.argv[1], "rb").read()
keyfile = GLib.KeyFile.new()
keyfile.load_from_data(data.decode(), len(data), GLib.KeyFileFlags.NONE)
warnings = []
def handler(keyfile, connection, kind, info, *_):
    if kind == NM.KeyfileHandlerType.WARN:
        warnings.append(info.warn_get()[0])
    return False
connection = NM.keyfile_read(keyfile, "/etc/NetworkManager/system-connections",
                             NM.KeyfileHandlerFlags.NONE, handler, None)
connection.normalize()
connection.verify()
"""
NM_READ = (
    NM_LOAD
    + """
ip4 = connection.get_setting_ip4_config()
addresses = [ip4.get_address(i) for i in range(ip4.get_num_addresses())]
print(json.dumps({
    "warnings": warnings,
    "type": connection.get_connection_type(),
    "uuid": connection.get_uuid(),
    "ipv4": [f"{a.get_address()}/{a.get_prefix()}" for a in addresses],
}))
"""
)


def replay_unit(ns: Netns, unit: Path, root: Path | None = None) -> None:
    """Each ExecStart= of ``unit`` in ``ns``, in order, as systemd runs them: a line
    prefixed with '-' may fail, any other must succeed. With ``root``, paths under /etc
    are taken as seen from it."""
    for line in unit.read_text().splitlines():
        if not line.startswith("ExecStart="):
            continue
        command = line.removeprefix("ExecStart=")
        may_fail = command.startswith("-")
        words = shlex.split(command.removeprefix("-"))
        if root is not None:
            words = [f"{root}{w}" if w.startswith("/etc/") else w for w in words]
        ns.run(*words, check=not may_fail)


def udev_sysctls(ns: Netns, root: Path) -> None:
    """dsrctl's sysctl file again, skipping keys of devices that do not exist: what
    systemd-sysctl does at boot (ENOENT is ignored), and what udev's 99-systemd.rules
    then does for each device as it appears (systemd-sysctl --prefix=/net/ipv4/conf/DEV)."""
    ns.run("sysctl", "-e", "-q", "-p", str(root / "etc/sysctl.d/90-dsrctl.conf"))
