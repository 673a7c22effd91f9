"""`show`'s tunnel side through the real CLI against the real kernel and the real nft:
a vxlan-gpe tunnel applied (this kernel has vxlan built in, none of ipip/gre/fou: those
run in the VM tier), listed in text and JSON with its module and the MSS clamp
(1500 - 36 - 40 = 1424 for IPv4, 1500 - 36 - 60 = 1404 for IPv6); gone from `show` after
the rollback; a host without tunnels shows no tunnel section and `show` imports none of
the tunnel readers there."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.netns.namespaces import Netns, with_uplink, write_spec

SPEC = """
version = 1
[[vip]]
address = "192.0.2.100"
[[vip]]
address = "2001:db8::100"
"""
TUNNEL = '[[tunnel]]\nkind = "vxlan-gpe"\n'
HEADING = (
    "Tunnel mode (decap devices, fou ports, kernel modules, MSS clamp) on the host and in "
    "dsrctl's records:"
)
# The modules a `show` without tunnels must not import.
TUNNEL_READERS = (
    "providers.linux.nft",
    "providers.linux.fou",
    "providers.linux.kmod",
    "providers.linux.tunnels",
    "providers.linux.decap_side",
    "dsrctl.render_tunnels",
)
IMPORTS = (
    "import atexit, sys\n"
    "atexit.register(lambda: sys.stderr.write('IMPORTED ' + ' '.join(sorted(sys.modules)) + "
    "'\\n'))\n"
    "sys.argv = ['dsrctl', 'show']\n"
    "from dsrctl.cli import main\n"
    "main()\n"
)


def tunnel_section(text: str) -> list[str]:
    lines = text.splitlines()
    if HEADING not in lines:
        return []
    section = []
    for line in lines[lines.index(HEADING) + 1 :]:
        if not line.startswith("  "):
            break
        section.append(line)
    return section


def host_view(netns: Netns) -> tuple[str, str, str]:
    """What a read must not change: the links, the nftables ruleset, the loaded modules."""
    return (
        netns.run("ip", "-d", "link", "show").stdout,
        netns.run("nft", "list", "ruleset").stdout,
        " ".join(sorted(os.listdir("/sys/module"))),
    )


def without_privileges(netns: Netns, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as root without capabilities: what a non-root user may read."""
    env = {**os.environ, "DSRCTL_STATE_DIR": str(netns.state_dir)}
    env.pop("DSRCTL_REQUIRE_NETNS", None)
    drop = ["setpriv", "--inh-caps=-all", "--bounding-set=-all"]
    return subprocess.run(
        ["ip", "netns", "exec", netns.name, *drop, sys.executable, "-m", "dsrctl", *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def imported_by_show(netns: Netns) -> set[str]:
    env = {**os.environ, "DSRCTL_STATE_DIR": str(netns.state_dir)}
    env.pop("DSRCTL_REQUIRE_NETNS", None)
    result = subprocess.run(
        ["ip", "netns", "exec", netns.name, sys.executable, "-c", IMPORTS],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stderr.splitlines() if x.startswith("IMPORTED "))
    return set(line.split()[1:]) & set(TUNNEL_READERS)


def test_show_lists_the_tunnel_side_and_forgets_it_after_rollback(netns: Netns) -> None:
    with_uplink(netns)
    spec = write_spec(netns, SPEC + TUNNEL)
    applied = netns.dsrctl("apply", "--auto-approve", str(spec))
    assert applied.returncode == 0, applied.stderr

    before = host_view(netns)
    shown = netns.dsrctl("show")
    assert shown.returncode == 0, shown.stderr
    assert tunnel_section(shown.stdout) == [
        "  decap devices:",
        "    dsrgpe0  vxlan-gpe external, up, managed by dsrctl, created by dsrctl: yes",
        "  kernel modules:",
        "    vxlan  loaded, built in, in use by dsrgpe0, managed by dsrctl, loaded by dsrctl: "
        "no (loaded before dsrctl)",
        "  MSS clamp (nftables table inet dsrctl): managed by dsrctl, created by dsrctl: yes",
        "    IPv4  MSS 1424  for 192.0.2.100/32",
        "    IPv6  MSS 1404  for 2001:db8::100/128",
    ]
    # After the ranges, before the table of effective values.
    lines = shown.stdout.splitlines()
    assert lines.index(HEADING) < next(
        i for i, line in enumerate(lines) if line.startswith("ARP and reverse-path filter")
    )
    data = json.loads(netns.dsrctl("show", "--json").stdout)["tunnels"]
    assert data["devices"] == [
        {
            "name": "dsrgpe0",
            "kind": "vxlan-gpe",
            "external": True,
            "fallback": False,
            "up": True,
            "on_host": True,
            "managed": True,
            "created_by_dsrctl": True,
        }
    ]
    assert data["modules"] == [
        {
            "name": "vxlan",
            "loaded": True,
            "builtin": True,
            "refcnt": 0,
            "users": ["dsrgpe0"],
            "managed": True,
            "loaded_by_dsrctl": False,
        }
    ]
    assert (data["fou_ports"], data["fou_note"]) == ([], None)  # no fou in this kernel
    assert data["mss"] == {
        "on_host": True,
        "ipv4": {"mss": 1424, "sources": ["192.0.2.100/32"]},
        "ipv6": {"mss": 1404, "sources": ["2001:db8::100/128"]},
        "other": [],
        "note": None,
        "managed": True,
        "created_by_dsrctl": True,
    }
    assert imported_by_show(netns) >= {"providers.linux.nft", "providers.linux.decap_side"}
    assert host_view(netns) == before  # reading changed nothing

    # Without CAP_NET_ADMIN nft cannot read the table: one line says so, show still works.
    unprivileged = without_privileges(netns, "show")
    assert unprivileged.returncode == 0, unprivileged.stderr
    assert tunnel_section(unprivileged.stdout)[-1] == (
        "  MSS clamp (nftables table inet dsrctl): not read: run dsrctl show as root (it needs "
        "CAP_NET_ADMIN); managed by dsrctl, created by dsrctl: yes"
    )
    clamp = json.loads(without_privileges(netns, "show", "--json").stdout)["tunnels"]["mss"]
    assert (clamp["on_host"], clamp["ipv4"]) == (None, None)

    # Someone's chain in dsrctl's table, the device deleted: both shown.
    netns.run("nft", "add", "chain", "inet", "dsrctl", "extra")
    netns.run("ip", "link", "del", "dsrgpe0")
    changed = tunnel_section(netns.dsrctl("show").stdout)
    assert changed[1] == (
        "    dsrgpe0  missing from the host, managed by dsrctl, created by dsrctl: yes"
    )
    assert changed[-1].startswith('    other (not dsrctl\'s): chain: {"family": "inet", ')
    assert '"name": "extra"' in changed[-1]
    assert "vxlan  loaded, built in, managed by dsrctl" in changed[3]  # no user left

    # (An apply would remove the chain, and its rollback could not put it back.)
    netns.run("nft", "delete", "chain", "inet", "dsrctl", "extra")
    repaired = netns.dsrctl("apply", "--auto-approve", str(spec))
    assert repaired.returncode == 0, repaired.stderr
    for _ in range(2):  # the repair, then the first apply
        rollback = netns.dsrctl("rollback", "--auto-approve")
        assert rollback.returncode == 0, rollback.stderr
    after = netns.dsrctl("show")
    assert after.returncode == 0, after.stderr
    assert HEADING not in after.stdout
    assert "dsrgpe0" not in after.stdout
    assert "tunnels" not in json.loads(netns.dsrctl("show", "--json").stdout)


def test_show_lists_tunnel_devices_dsrctl_does_not_manage(netns: Netns) -> None:
    netns.run("ip", "link", "add", "gpe7", "type", "vxlan", "gpe", "external", "dstport", "4790")
    shown = netns.dsrctl("show")
    assert shown.returncode == 0, shown.stderr
    assert tunnel_section(shown.stdout) == [
        "  decap devices:",
        "    gpe7  vxlan-gpe external, down, not managed by dsrctl",
        "  kernel modules:",
        "    vxlan  loaded, built in, in use by gpe7, not managed by dsrctl",
        "  MSS clamp (nftables table inet dsrctl): absent, not managed by dsrctl",
    ]
    # A vxlan device that is not in GPE mode is no decap device.
    netns.run("ip", "link", "del", "gpe7")
    netns.run("ip", "link", "add", "vx0", "type", "vxlan", "id", "7", "dstport", "4789")
    assert HEADING not in netns.dsrctl("show").stdout


def test_show_without_tunnels_prints_no_tunnel_section_and_imports_no_tunnel_reader(
    netns: Netns,
) -> None:
    with_uplink(netns)
    spec = write_spec(netns, SPEC)
    applied = netns.dsrctl("apply", "--auto-approve", str(spec))
    assert applied.returncode == 0, applied.stderr
    shown = netns.dsrctl("show")
    assert shown.returncode == 0, shown.stderr
    assert HEADING not in shown.stdout
    assert "MSS clamp" not in shown.stdout and "decap devices" not in shown.stdout
    assert "tunnels" not in json.loads(netns.dsrctl("show", "--json").stdout)
    assert imported_by_show(netns) == set()
