"""Throwaway network namespaces for end-to-end tests against the real kernel: the
``Netns`` a test works in, the factory that creates and deletes them, and the spec
helpers every namespace test shares.

Every namespace is named ``dsrt-<pid>-<n>`` and deleted afterwards, also when the test
fails (the ``make_netns`` fixture calls ``NetnsFactory.cleanup``). Only
documentation ranges (192.0.2.0/24, 198.18.0.0/15, 2001:db8::/32) are used inside them;
the host's own network is never touched.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

_counter = itertools.count()


def _netns_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root (ip netns add)"
    if shutil.which("ip") is None:
        return "needs iproute2 (ip)"
    name = f"dsrt-probe-{os.getpid()}"
    probe = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot create a network namespace: {probe.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


# Why namespace tests cannot run here (probed once, at import), or None.
UNAVAILABLE = _netns_unavailable()


def sh(
    *args: str, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(args), capture_output=True, text=True, input=input)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


@dataclass
class Netns:
    """One namespace, with helpers to run commands and dsrctl inside it."""

    name: str
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def state_dir(self) -> Path:
        return self.workdir / "state"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", self.name, *args, check=check)

    def dsrctl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run the real CLI in the namespace (as an operator would), never raising."""
        env = {**os.environ, "DSRCTL_STATE_DIR": str(self.state_dir), **self.env}
        env.pop("DSRCTL_REQUIRE_NETNS", None)
        return subprocess.run(
            ["ip", "netns", "exec", self.name, sys.executable, "-m", "dsrctl", *args],
            capture_output=True,
            text=True,
            env=env,
            input=input if input is not None else "",
        )

    def sysctl(self, key: str) -> str:
        return self.run("sysctl", "-n", key).stdout.strip()

    def set_sysctl(self, key: str, value: str) -> None:
        self.run("sysctl", "-q", "-w", f"{key}={value}")

    def addresses(self, dev: str = "lo") -> str:
        return self.run("ip", "addr", "show", "dev", dev).stdout


class NetnsFactory:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.created: list[str] = []

    def __call__(self, role: str = "ns", lo_up: bool = True) -> Netns:
        name = f"dsrt-{os.getpid()}-{next(_counter)}"
        sh("ip", "netns", "add", name)
        self.created.append(name)
        if lo_up:
            sh("ip", "-n", name, "link", "set", "lo", "up")
        workdir = self.tmp_path / f"{role}-{name}"
        (workdir / "etc" / "sysctl.d").mkdir(parents=True)
        return Netns(name=name, workdir=workdir)

    def cleanup(self) -> None:
        for name in reversed(self.created):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def write_spec(ns: Netns, body: str, name: str = "dsrctl.toml") -> Path:
    """A spec whose persistent files live under the namespace's work directory: the
    sysctl file at <workdir>/etc/sysctl.d/90-dsrctl.conf, and whatever VIP persistence
    detects and writes under <workdir> too (linux.persist.root), never in the host's /etc."""
    path = ns.workdir / name
    if "[linux.persist]" not in body:
        body += f'\n[linux.persist]\nroot = "{ns.workdir}"\n'
    path.write_text(body)
    return path


# The spec most server tests apply: two VIPs, one labelled, one IPv6.
SPEC = """
version = 1
[[vip]]
address = "192.0.2.100"
label = "lo:1"
[[vip]]
address = "2001:db8::100"
"""


def sysctl_file(ns: Netns) -> Path:
    return ns.workdir / "etc" / "sysctl.d" / "90-dsrctl.conf"


def snapshot(ns: Netns) -> dict[str, object]:
    """Everything dsrctl could touch, to compare before and after."""
    path = sysctl_file(ns)
    return {
        "arp_ignore": ns.sysctl("net.ipv4.conf.all.arp_ignore"),
        "arp_announce": ns.sysctl("net.ipv4.conf.all.arp_announce"),
        "rp_filter": ns.sysctl("net.ipv4.conf.all.rp_filter"),
        "lo": json.loads(ns.run("ip", "-j", "addr", "show", "dev", "lo").stdout),
        "file": path.read_bytes() if path.exists() else None,
    }


def with_uplink(netns: Netns) -> None:
    """An uplink as a server has one: the device of the default route (the MSS clamp of
    a tunnel starts from its MTU)."""
    netns.run("ip", "link", "add", "u0", "type", "veth", "peer", "name", "u1")
    for device in ("u0", "u1"):
        netns.run("ip", "link", "set", device, "up")
    netns.run("ip", "address", "add", "198.18.0.2/24", "dev", "u0")
    netns.run("ip", "route", "add", "default", "via", "198.18.0.1", "dev", "u0")
