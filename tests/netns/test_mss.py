"""The MSS clamp of tunnel mode against the real kernel and the real nft.

A client and a server namespace over a veth pair (MTU 1500); the VIPs on the server's lo,
the client routes them via the server. The spec has a vxlan-gpe tunnel (this kernel has
vxlan; the clamp does not depend on the tunnel: it acts on the SYN-ACKs the server sends
from the VIPs), so the clamp is 1500 - 36 - 40 = 1424 for IPv4 and 1404 for IPv6. The
client turns TCP timestamps off, so the MSS of its connected socket (TCP_MAXSEG) is what
the server's SYN-ACK advertised: 1460 / 1440 without the table, which is how these tests
can fail.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.netns.namespaces import Netns, NetnsFactory, sh, write_spec
from tests.netns.reboot import assert_in_sync, replay_unit, udev_sysctls
from tests.persist_roots import systemd_root

VIP4, VIP6 = "198.18.5.10", "2001:db8:5::10"
PORT = 8080
CLAMPED = {VIP4: 1500 - 36 - 40, VIP6: 1500 - 36 - 60}
UNCLAMPED = {VIP4: 1460, VIP6: 1440}
VIPS = f'version = 1\n[[vip]]\naddress = "{VIP4}"\n[[vip]]\naddress = "{VIP6}"\n'
TUNNEL = '[[tunnel]]\nkind = "vxlan-gpe"\n'
LISTEN = """
import socket, sys, time
for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
    s = socket.socket(family)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(sys.argv[1])))
    s.listen(64)
    globals()[f"keep{family}"] = s
print("ready", flush=True)
time.sleep(600)
"""
CONNECT = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as s:
    print(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG))
"""


def link(client: Netns, server: Netns, uplink: str = "s0") -> None:
    """The veth pair, addresses and routes: the server's default route is the uplink."""
    client.run(
        "ip", "link", "add", "c0", "type", "veth", "peer", "name", uplink, "netns", server.name
    )
    for ns, dev, v4, v6 in ((client, "c0", "192.0.2.1", "2001:db8:1::1"),
                            (server, uplink, "192.0.2.2", "2001:db8:1::2")):  # fmt: skip
        ns.run("ip", "link", "set", dev, "mtu", "1500", "up")
        ns.run("ip", "addr", "add", f"{v4}/24", "dev", dev)
        ns.run("ip", "addr", "add", f"{v6}/64", "dev", dev, "nodad")
    client.run("ip", "route", "add", f"{VIP4}/32", "via", "192.0.2.2")
    client.run("ip", "-6", "route", "add", f"{VIP6}/128", "via", "2001:db8:1::2")
    client.set_sysctl("net.ipv4.tcp_timestamps", "0")  # the MSS seen is the one advertised
    server.run("ip", "route", "add", "default", "via", "192.0.2.1")
    server.run("ip", "-6", "route", "add", "default", "via", "2001:db8:1::1")


@contextmanager
def listening(server: Netns) -> Iterator[None]:
    process = subprocess.Popen(
        ["ip", "netns", "exec", server.name, sys.executable, "-c", LISTEN, str(PORT)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        yield
    finally:
        process.kill()
        process.wait()


def mss(client: Netns) -> dict[str, int]:
    """The MSS of a connection from the client to each VIP."""
    return {
        vip: int(client.run(sys.executable, "-c", CONNECT, vip, str(PORT)).stdout)
        for vip in (VIP4, VIP6)
    }


def has_table(ns: Netns) -> bool:
    return "table inet dsrctl" in ns.run("nft", "list", "tables").stdout


def applied(ns: Netns, spec: Path) -> str:
    result = ns.dsrctl("apply", "--auto-approve", str(spec))
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_clamp_is_applied_observed_repaired_and_removed(make_netns: NetnsFactory) -> None:
    client, server = make_netns("client"), make_netns("server")
    link(client, server)
    spec = write_spec(server, VIPS + TUNNEL)
    with listening(server):
        plan = server.dsrctl("plan", str(spec))
        assert "+ nft mss: IPv4 MSS 1424 for 198.18.5.10/32; IPv6 MSS 1404" in plan.stdout
        assert "vxlan-gpe adds 36 bytes on s0 (MTU 1500)" in plan.stdout
        assert "PMTUD works only if the balancer sends ICMP too-big" in plan.stdout
        applied(server, spec)
        assert mss(client) == CLAMPED
        assert "No changes." in applied(server, spec)

        # A transaction the kernel refuses (the jump's target does not exist) leaves the
        # table as it was, although its "delete table" came first: nft -f is atomic.
        broken = (
            "add table inet dsrctl\ndelete table inet dsrctl\ntable inet dsrctl {\n"
            "chain mss { type filter hook output priority mangle; jump nosuch\n}\n}\n"
        )
        failed = subprocess.run(
            ["ip", "netns", "exec", server.name, "nft", "-f", "-"],
            input=broken,
            capture_output=True,
            text=True,
        )
        assert "Could not process rule" in failed.stderr, failed.stderr
        assert server.dsrctl("drift", str(spec)).returncode == 0

        # Deleted by hand: the clamp is gone (the check can fail), drift says so, apply repairs.
        server.run("nft", "delete", "table", "inet", "dsrctl")
        assert mss(client) == UNCLAMPED
        drift = server.dsrctl("drift", str(spec))
        assert drift.returncode == 2, drift.stdout + drift.stderr
        assert "DRIFT nft mss: expected IPv4 MSS 1424" in drift.stdout
        assert "actual missing" in drift.stdout
        applied(server, spec)
        assert mss(client) == CLAMPED

        # Rollback undoes the repair: the table dsrctl created goes.
        rollback = server.dsrctl("rollback", "--auto-approve")
        assert rollback.returncode == 0, rollback.stdout + rollback.stderr
        assert not has_table(server) and mss(client) == UNCLAMPED

        # Someone adds a chain to dsrctl's table; apply replaces the table (drift
        # repaired); rolling that apply back restores the clamp, not the chain dsrctl
        # cannot write, and its verification accepts that.
        applied(server, spec)
        server.run("nft", "add", "chain", "inet", "dsrctl", "theirs")
        assert "DRIFT nft mss" in server.dsrctl("drift", str(spec)).stdout
        applied(server, spec)
        rollback = server.dsrctl("rollback", "--auto-approve")
        assert rollback.returncode == 0, rollback.stdout + rollback.stderr
        assert "not restored" in rollback.stdout
        assert mss(client) == CLAMPED
        assert server.dsrctl("drift", str(spec)).returncode == 0

        # A spec without tunnels removes the table dsrctl created; a second apply
        # changes nothing.
        assert has_table(server)
        spec.write_text(spec.read_text().replace(TUNNEL, ""))
        assert "- nft mss:" in applied(server, spec)
        assert not has_table(server) and mss(client) == UNCLAMPED
        assert "No changes." in applied(server, spec)


def test_an_mss_above_the_uplink_and_a_missing_nft_are_refused(
    make_netns: NetnsFactory, tmp_path: Path
) -> None:
    client, server = make_netns("client"), make_netns("server")
    link(client, server)
    spec = write_spec(server, VIPS + TUNNEL + "mss = 1460\n")
    for command in ("validate", "plan"):
        result = server.dsrctl(command, str(spec))
        assert result.returncode == 1, result.stdout + result.stderr
        assert result.stderr.strip() == (
            f"error: {spec}: tunnel[0].mss = 1460: above what the uplink carries "
            "(s0 MTU 1500 - 36 vxlan-gpe - 40 = 1424)"
        )
    spec.write_text(spec.read_text().replace("mss = 1460\n", ""))
    # cron's PATH (no sbin directory): nft is found in /usr/sbin all the same
    assert dsrctl_with(server, tmp_path, ["plan", str(spec)], hide_nft=False).returncode == 0
    # nft hidden (an empty file, not executable, mounted over it in a private mount
    # namespace): refused before anything is read or changed
    for command in ("validate", "plan"):
        result = dsrctl_with(server, tmp_path, [command, str(spec)], hide_nft=True)
        assert result.returncode == 1, result.stdout + result.stderr
        assert result.stderr.strip() == (
            f'error: {spec}: tunnel[0].kind = "vxlan-gpe": tunnel mode clamps the MSS of the '
            "VIPs' SYN-ACKs with nftables, and nft is not installed (not on PATH, nor in "
            "/usr/sbin or /sbin): install nftables"
        )
    assert not has_table(server)


def dsrctl_with(
    ns: Netns, tmp_path: Path, args: list[str], hide_nft: bool
) -> subprocess.CompletedProcess[str]:
    """dsrctl in ``ns`` with cron's PATH, and nft hidden if ``hide_nft``."""
    empty = tmp_path / "no-nft"
    empty.write_text("")
    empty.chmod(0o644)
    places = ("/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft", "/bin/nft")
    found = sorted({os.path.realpath(p) for p in places if os.path.exists(p)}) if hide_nft else []
    hide = [f"mount --bind {shlex.quote(str(empty))} {path}" for path in found]
    command = " && ".join([*hide, 'exec "$0" "$@"'])
    ip = shutil.which("ip")
    assert ip is not None
    private = ["unshare", "--mount", "--propagation", "private", "sh", "-c", command]
    return subprocess.run(
        [ip, "netns", "exec", ns.name, *private, sys.executable, "-m", "dsrctl", *args],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "DSRCTL_STATE_DIR": str(ns.state_dir)},
    )


def test_the_clamp_comes_back_after_a_reboot(make_netns: NetnsFactory, tmp_path: Path) -> None:
    """The nft file and dsrctl-mss.service, enabled; the boot replayed in a fresh namespace
    pair: the sysctl file, then each ExecStart= of dsrctl's enabled units as written
    (paths under /etc as seen from the root)."""
    root = systemd_root(tmp_path / "root")
    client, server = make_netns("client"), make_netns("server")
    link(client, server)
    spec = write_spec(server, VIPS + TUNNEL + f'[linux.persist]\nroot = "{root}"\n')
    applied(server, spec)
    units = root / "etc/systemd/system"
    unit = units / "dsrctl-mss.service"
    verify = sh("systemd-analyze", "verify", str(unit), check=False)
    assert (verify.returncode, verify.stderr) == (0, ""), verify.stderr
    enabled = sh("systemctl", f"--root={root}", "is-enabled", unit.name, check=False)
    assert enabled.stdout.strip() == "enabled", enabled.stdout + enabled.stderr

    client, rebooted = make_netns("client"), make_netns("rebooted")
    link(client, rebooted)  # the network comes up: the uplink and its default route
    assert rebooted.dsrctl("drift", str(spec)).returncode == 2
    # -e: a key of a device that is not there yet is skipped, as systemd-sysctl does
    # (ENOENT is ignored; udev applies the device's keys when it appears).
    rebooted.run("sysctl", "-e", "-q", "-p", str(root / "etc/sysctl.d/90-dsrctl.conf"))
    # Every unit of dsrctl's that the boot starts (the VIPs', the clamp's, the tunnels').
    wanted = sorted((units / "multi-user.target.wants").glob("dsrctl-*.service"))
    assert {unit.name for unit in wanted} >= {
        "dsrctl-mss.service",
        "dsrctl-vips.service",
        "dsrctl-tunnels.service",
    }
    for unit_link in wanted:
        replay_unit(rebooted, units / unit_link.name, root)
    # udev (99-systemd.rules) runs systemd-sysctl for a device's keys when it appears:
    # the decap device's rp_filter key, skipped above, now applies.
    udev_sysctls(rebooted, root)
    assert_in_sync(rebooted, spec)
    with listening(rebooted):
        assert mss(client) == CLAMPED
