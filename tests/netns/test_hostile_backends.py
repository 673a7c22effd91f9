"""Every persistence backend's file, rendered for a spec path that tries to inject lines,
read back by the real parser (issue 9, finding 5): the parsed result holds exactly what
dsrctl meant, no extra key, address, stanza or command.

The spec refuses such a path at load (tests/unit/test_hostile_values.py); these renderings
bypass it on purpose, to prove the header's own escaping. The parsers:

- systemd unit: ``systemd-analyze verify`` (it reports an ExecStartPre= whose command does
  not exist), and ExecStart= read with systemd's line ends (\\n, \\r, NUL);
- ifcfg: sourced by ``sh`` in an empty environment; no command runs, no extra variable;
- ifupdown: ``ifquery`` on the file;
- systemd-networkd: the real daemon in a namespace, on dsrctl's own .network file;
- netplan: ``netplan generate --root-dir``, then the .network file it renders;
- NetworkManager: libnm's keyfile parser through /usr/bin/python3 + python3-gi;
- sysctl.d: the values the spec accepts, read by ``sysctl --dry-run -p`` and by
  ``systemd-sysctl`` writing into a tmpfs over /proc/sys in a private mount namespace.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from pathlib import Path
from typing import Any

import pytest

from dsrctl.linux.desired import sysctl_file_content, vip_state
from dsrctl.spec import parse_spec
from providers.linux.persist import (
    Detection,
    RenderRequest,
    ifcfg,
    ifupdown,
    netplan,
    networkd,
    networkmanager,
    systemd_unit,
)
from tests.netns.namespaces import Netns, NetnsFactory, sh, write_spec
from tests.netns.reboot import NM_READ, networkd_in
from tests.persist_roots import netplan_generate, netplan_root, write

# systemd ends a line at \n, \r and NUL; YAML 1.1 also at NEL and U+2028.
BREAKS = ["\n", "\r", "\x00", "\x85", "\u2028"]
INJECTED = "198.18.66.66"  # an address that must never come out of any parser
FULL = [
    vip_state("192.0.2.100", 32, "lo:1", "lo"),
    vip_state("198.18.0.1", 32, None, "lo"),
    vip_state("2001:db8::100", 128, None, "lo"),
]
IPV4 = FULL[:2]
IPV6_FLAGS = ["preferred_lft", "0", "nodad"]


def hostile(payload: str, brk: str) -> str:
    """A spec path that carries ``payload`` on lines of its own, ended by ``brk``."""
    lines = payload.split("\n")
    return "/etc/dsrctl/dsrctl" + brk + brk.join(lines) + brk + ".toml"


def rendered(backend: Any, states: list[Any], spec_path: str, **facts: Any) -> tuple[str, bytes]:
    detection = Detection(root="/", interface="lo", live=False, systemd=True, **facts)
    files = backend.render(RenderRequest(tuple(states), "lo", spec_path, detection)).files
    ((path, state),) = files.items()
    assert state.content.decode().splitlines()[0].startswith("# Managed by dsrctl from ")
    return path, state.content


@pytest.mark.parametrize("brk", BREAKS)
def test_systemd_unit_header_cannot_add_a_command(tmp_path: Path, brk: str) -> None:
    spec = hostile("[Service]\nExecStartPre=/nonexistent/dsrctl-canary", brk)
    _, content = rendered(systemd_unit, FULL, spec)
    unit = tmp_path / systemd_unit.UNIT_NAME
    unit.write_bytes(content)
    verify = sh("systemd-analyze", "verify", str(unit), check=False)
    assert (verify.returncode, verify.stderr) == (0, ""), verify.stderr
    lines = re.split(r"\r\n|[\r\n\x00]", content.decode())  # systemd's read_line()
    commands = [shlex.split(line[10:]) for line in lines if line.startswith("ExecStart")]
    ip = systemd_unit.IP
    assert commands == [
        [ip, "-4", "address", "replace", "192.0.2.100/32", "dev", "lo", "label", "lo:1"],
        [ip, "-4", "address", "replace", "198.18.0.1/32", "dev", "lo"],
        [ip, "-6", "address", "replace", "2001:db8::100/128", "dev", "lo", *IPV6_FLAGS],
    ]


ALIAS_VARIABLES = ["DEVICE", "IPADDR", "IPV6INIT", "NETMASK", "ONBOOT", "PREFIX"]


@pytest.mark.parametrize("brk", BREAKS)
def test_ifcfg_header_cannot_run_a_command_when_sourced(tmp_path: Path, brk: str) -> None:
    spec = hostile(f"touch canary\nIPADDR={INJECTED}\n$(touch canary2)", brk)
    # the planner gives an unlabelled VIP its alias (lo:0) before rendering
    for state in [FULL[0], vip_state("198.18.0.1", 32, "lo:0", "lo")]:
        _, content = rendered(ifcfg, [state], spec)
        (tmp_path / "ifcfg-alias").write_bytes(content)
        sh("/bin/sh", "-n", str(tmp_path / "ifcfg-alias"))
        # Sourced as network-scripts do (". ./$FILE"), in an empty environment: which
        # variables it sets, and their values.
        script = "set | LC_ALL=C sort > before; . ./ifcfg-alias; set | LC_ALL=C sort > after; "
        script += "LC_ALL=C comm -13 before after | "
        script += "sed 's/=.*//'; echo --; printf '%s\\n' "
        script += " ".join(f'"${name}"' for name in ALIAS_VARIABLES)
        result = sh("env", "-i", "/bin/sh", "-c", f"cd {shlex.quote(str(tmp_path))}; {script}")
        assert result.stderr == ""
        names, values = result.stdout.split("--\n")
        assert names.split() == ALIAS_VARIABLES
        assert values.splitlines() == [
            state.label,
            state.address,
            "no",
            "255.255.255.255",
            "yes",
            "32",
        ]
        assert not (tmp_path / "canary").exists() and not (tmp_path / "canary2").exists()


@pytest.mark.parametrize("brk", BREAKS)
def test_ifupdown_header_cannot_add_a_stanza(tmp_path: Path, brk: str) -> None:
    spec = hostile(f"auto lo:9\niface lo:9 inet static\n    address {INJECTED}/32", brk)
    _, content = rendered(ifupdown, FULL, spec)
    interfaces = tmp_path / "interfaces"
    interfaces.write_bytes(content)
    listed = sh("ifquery", "-i", str(interfaces), "--list").stdout.split()
    assert listed == ["lo", "lo:1"]
    assert "address: 192.0.2.100" in sh("ifquery", "-i", str(interfaces), "lo:1").stdout
    for name in listed:
        assert INJECTED not in sh("ifquery", "-i", str(interfaces), name).stdout


@pytest.mark.parametrize("brk", BREAKS)
def test_networkmanager_header_cannot_add_an_address(tmp_path: Path, brk: str) -> None:
    spec = hostile(f"[ipv4]\naddress9={INJECTED}/32", brk)
    _, content = rendered(networkmanager, [FULL[1]], spec)
    profile = tmp_path / "dsrctl-lo.nmconnection"
    profile.write_bytes(content)
    parsed = json.loads(sh("/usr/bin/python3", "-c", NM_READ, str(profile)).stdout)
    assert parsed["warnings"] == []
    assert parsed["type"] == "loopback"
    assert parsed["ipv4"] == ["127.0.0.1/8", "198.18.0.1/32"]


@pytest.mark.parametrize("brk", BREAKS)
def test_netplan_header_cannot_add_an_address(tmp_path: Path, brk: str) -> None:
    root = netplan_root(tmp_path / "root")
    yaml = f"network:\n  version: 2\n  ethernets:\n    lo:\n      addresses: [{INJECTED}/32]"
    path, content = rendered(netplan, IPV4, hostile(yaml, brk), netplan_id="lo")
    target = root / path.lstrip("/")
    target.write_bytes(content)
    target.chmod(0o600)
    netplan_generate(root)
    network = (root / "run/systemd/network/10-netplan-lo.network").read_text()
    addresses = re.findall(r"^Address=(.*)$", network, re.MULTILINE)
    assert sorted(addresses) == ["192.0.2.100/32", "198.18.0.1/32", "198.18.0.9/32"]


@pytest.mark.parametrize("brk", ["\n", "\r", "\x00"])
def test_networkd_header_cannot_add_an_address(
    make_netns: NetnsFactory, tmp_path: Path, brk: str
) -> None:
    spec = hostile(f"[Address]\nAddress={INJECTED}/32", brk)
    path, content = rendered(networkd, FULL, spec)
    directory = tmp_path / "network"
    write(directory, path.rsplit("/", 1)[-1], content.decode())
    ns = make_netns("networkd", lo_up=False)
    wanted = ["192.0.2.100/32", "198.18.0.1/32", "2001:db8::100/128", "127.0.0.1/8"]
    with networkd_in(ns, {"/etc/systemd/network": directory}, wanted):
        time.sleep(1)  # networkd configures a link's addresses together; give it a moment
        assert INJECTED not in ns.addresses()


# sysctl.d: what the spec accepts is what systemd-sysctl and sysctl(8) read back.

SYSCTLS = {
    "net.ipv4.ip_local_port_range": "1024 65000",
    "net.ipv4.tcp_rmem": "4096\t131072\t6291456",
    "net.ipv4.conf.lo.rp_filter": 2,
}


def accepted_sysctl_file() -> bytes:
    spec = parse_spec(
        {"version": 1, "vip": [{"address": "192.0.2.1"}], "linux": {"sysctl": SYSCTLS}}
    )
    values = spec.linux.all_sysctls()
    return sysctl_file_content("/etc/dsrctl/dsrctl.toml", values)


def test_sysctl_dry_run_reads_exactly_the_spec_values(tmp_path: Path) -> None:
    path = tmp_path / "90-dsrctl.conf"
    path.write_bytes(accepted_sysctl_file())
    shown = sh("sysctl", "--dry-run", "-p", str(path)).stdout.splitlines()
    assert shown == [
        "net.ipv4.conf.all.arp_ignore = 1",
        "net.ipv4.conf.all.arp_announce = 2",
        "net.ipv4.conf.lo.rp_filter = 2",
        "net.ipv4.ip_local_port_range = 1024 65000",
        "net.ipv4.tcp_rmem = 4096\t131072\t6291456",
    ]


def test_systemd_sysctl_writes_exactly_the_spec_values(tmp_path: Path) -> None:
    path = tmp_path / "90-dsrctl.conf"
    path.write_bytes(accepted_sysctl_file())
    keys = ["net.ipv4.conf.all.arp_ignore", "net.ipv4.conf.all.arp_announce", *sorted(SYSCTLS)]
    files = [f"/proc/sys/{key.replace('.', '/')}" for key in keys]
    # A tmpfs over /proc/sys in a private mount namespace: systemd-sysctl writes there and
    # nothing reaches the kernel; an unexpected key would fail (no such file) on stderr.
    script = "mount -t tmpfs tmpfs /proc/sys && "
    script += " && ".join(f"mkdir -p {f.rsplit('/', 1)[0]} && : > {f}" for f in files)
    script += f" && /lib/systemd/systemd-sysctl {shlex.quote(str(path))} && "
    script += " && ".join(f"printf '%s|' \"$(cat {f})\"" for f in files)
    result = sh("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
    assert result.stderr == ""
    assert result.stdout.split("|")[:-1] == [
        "1",
        "2",
        "2",
        "1024 65000",
        "4096\t131072\t6291456",
    ]


def test_apply_of_a_spec_with_a_line_break_in_its_path_writes_nothing(netns: Netns) -> None:
    directory = netns.workdir / "x\nkernel.core_pattern=|sh"
    directory.mkdir()
    spec = write_spec(netns, 'version = 1\n[[vip]]\naddress = "192.0.2.100"\n')
    moved = directory / "dsrctl.toml"
    spec.rename(moved)
    before = netns.addresses()
    result = netns.dsrctl("apply", "--auto-approve", str(moved))
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "the spec's path contains '\\n'" in result.stderr
    assert not (netns.workdir / "etc/sysctl.d/90-dsrctl.conf").exists()
    assert netns.addresses() == before
