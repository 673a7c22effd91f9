"""Effective per-interface values against the real kernel: `show` explains them with the
sysctl.d line behind each, drift reports an uplink value that defeats the spec (and the
kernel proves it does), and a vxlan-gpe tunnel gets rp_filter 0 on all and its device
while the uplink keeps its filter."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.netns.namespaces import Netns, NetnsFactory, sh, with_uplink, write_spec
from tests.persist_roots import write

VIP = "198.18.0.100"
SPEC = f"""
version = 1
[[vip]]
address = "{VIP}"
"""
GPE = SPEC + '[[tunnel]]\nkind = "vxlan-gpe"\n'

# One ARP request's sender address, seen on a client's interface (AF_PACKET, no tcpdump).
_CAPTURE = """
import socket, struct, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.bind((sys.argv[1], 0)); s.settimeout(3)
print("ready", flush=True)
try:
    while True:
        data = s.recv(128)
        if struct.unpack("!H", data[20:22])[0] == 1:
            print(socket.inet_ntoa(data[28:32])); break
except socket.timeout:
    print("none")
"""
_SEND = (
    "import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
    "s.bind((sys.argv[1], 0)); s.sendto(b'x', (sys.argv[2], 9))"
)


@pytest.fixture
def pair(make_netns: NetnsFactory) -> Iterator[tuple[Netns, Netns]]:
    """A server whose uplink veth0 (192.0.2.1/24, the default route) faces a client."""
    server, client = make_netns("server"), make_netns("client")
    sh("ip", "-n", server.name, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
       "netns", client.name)  # fmt: skip
    server.run("ip", "addr", "add", "192.0.2.1/24", "dev", "veth0")
    client.run("ip", "addr", "add", "192.0.2.2/24", "dev", "veth1")
    server.run("ip", "link", "set", "veth0", "up")
    client.run("ip", "link", "set", "veth1", "up")
    server.run("ip", "route", "add", "default", "via", "192.0.2.2", "dev", "veth0")
    yield server, client


def arp_replies(client: Netns, target: str) -> int:
    out = client.run(
        "arping", "-c", "2", "-W", "0.2", "-w", "3", "-i", "veth1", target, check=False
    ).stdout
    return sum(1 for line in out.splitlines() if " bytes from " in line)


def arp_sender(server: Netns, client: Netns) -> str:
    """The sender address of the ARP request the server sends for the client when it
    sends a packet from the VIP."""
    import subprocess

    server.run("ip", "neigh", "flush", "dev", "veth0")
    capture = subprocess.Popen(
        ["ip", "netns", "exec", client.name, sys.executable, "-c", _CAPTURE, "veth1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert capture.stdout is not None
    assert capture.stdout.readline().strip() == "ready"
    server.run(sys.executable, "-c", _SEND, VIP, "192.0.2.2")
    out, _ = capture.communicate(timeout=10)
    return out.strip()


def rows(report: dict[str, object]) -> dict[tuple[str, str], dict[str, object]]:
    effective = report["effective"]
    assert isinstance(effective, dict)
    return {
        (entry["name"], leaf): {"role": entry["role"], **value}
        for entry in effective["interfaces"]
        for leaf, value in entry["values"].items()
    }


def test_show_explains_the_effective_values_and_the_lines_behind_them(
    pair: tuple[Netns, Netns], tmp_path: Path
) -> None:
    server, _ = pair
    server.set_sysctl("net.ipv4.conf.all.arp_ignore", "1")
    server.set_sysctl("net.ipv4.conf.veth0.arp_ignore", "3")
    server.set_sysctl("net.ipv4.conf.all.rp_filter", "1")
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)  # systemd-sysctl's rules
    write(root, "/usr/lib/sysctl.d/50-default.conf",
          "net.ipv4.conf.default.rp_filter = 2\nnet.ipv4.conf.*.rp_filter = 2\n"
          "-net.ipv4.conf.all.rp_filter\n")  # fmt: skip
    write(root, "/etc/sysctl.d/60-arp.conf", "net/ipv4/conf/veth0/arp_ignore = 3\n")

    shown = server.dsrctl("show", "--json", "--root", str(root))
    assert shown.returncode == 0, shown.stderr
    found = rows(json.loads(shown.stdout))
    uplink = found[("veth0", "arp_ignore")]
    assert (uplink["role"], uplink["own"], uplink["effective"]) == ("uplink", 3, 3)
    assert uplink["problem"] == "answers ARP for addresses on lo (the VIPs)"
    assert uplink["boot"] == {
        "path": "/etc/sysctl.d/60-arp.conf", "line": 1, "key": "net.ipv4.conf.veth0.arp_ignore",
        "value": "3", "glob": False,
    }  # fmt: skip
    rp = found[("veth0", "rp_filter")]
    assert (rp["own"], rp["effective"]) == (0, 1)  # max(all 1, veth0 0)
    assert rp["boot_where"] == (
        "/usr/lib/sysctl.d/50-default.conf line 2 (net.ipv4.conf.*.rp_filter = 2)"
    )
    assert found[("all", "rp_filter")]["boot"] is None  # excluded from the glob by "-key"
    assert found[("default", "rp_filter")]["boot_where"] == (
        "/usr/lib/sysctl.d/50-default.conf line 1"
    )
    assert found[("lo", "arp_ignore")]["role"] == "loopback"
    assert ("veth1", "arp_ignore") not in found  # not the uplink

    text = server.dsrctl("show", "--root", str(root)).stdout.splitlines()
    assert any(
        line.split()[:5] == ["veth0", "uplink", "arp_ignore", "3", "3"]
        and line.endswith("/etc/sysctl.d/60-arp.conf line 1")
        for line in text
    ), text
    assert "  ! veth0 arp_ignore 3: answers ARP for addresses on lo (the VIPs)" in text


def test_drift_reports_an_uplink_value_that_defeats_the_spec(pair: tuple[Netns, Netns]) -> None:
    server, client = pair
    spec = write_spec(server, SPEC)
    # At boot a vendor line would give the uplink arp_announce 3: plan says so.
    write(server.workdir, "/etc/sysctl.d/60-vendor.conf", "net.ipv4.conf.veth0.arp_announce=3\n")
    assert (
        "! WARNING: /etc/sysctl.d/60-vendor.conf line 1 sets net.ipv4.conf.veth0.arp_announce "
        "= 3 at boot, which defeats linux.arp_announce = 2: the kernel uses max(conf.all, "
        "conf.veth0) = 3, and the kernel treats 3 like 0: the VIP can be the source of ARP "
        "requests; remove that line (after a reboot drift reports it and apply sets the "
        "spec's value)"
    ) in server.dsrctl("plan", str(spec)).stdout.splitlines()
    (server.workdir / "etc/sysctl.d/60-vendor.conf").unlink()
    applied = server.dsrctl("apply", "--auto-approve", str(spec))
    assert applied.returncode == 0, applied.stderr
    assert arp_replies(client, VIP) == 0
    assert arp_sender(server, client) == "192.0.2.1"

    # The kernel: max(all 1, veth0 3) = 3 answers ARP for the VIP on lo.
    server.set_sysctl("net.ipv4.conf.veth0.arp_ignore", "3")
    assert arp_replies(client, VIP) == 2
    drift = server.dsrctl("drift", str(spec))
    assert drift.returncode == 2, drift.stdout + drift.stderr
    assert "DRIFT sysctl net.ipv4.conf.veth0.arp_ignore: expected 1, actual 3" in drift.stdout
    assert (
        "! net.ipv4.conf.veth0.arp_ignore = 3 defeats linux.arp_ignore = 1: the kernel uses "
        "max(conf.all, conf.veth0) = 3, and 3 only skips scope-host addresses, so the host "
        "answers ARP for its VIPs; dsrctl sets net.ipv4.conf.veth0.arp_ignore = 1"
    ) in drift.stdout.splitlines()
    repaired = server.dsrctl("apply", "--auto-approve", str(spec))
    assert repaired.returncode == 0, repaired.stderr
    assert server.sysctl("net.ipv4.conf.veth0.arp_ignore") == "1"
    assert arp_replies(client, VIP) == 0
    assert (
        "net.ipv4.conf.veth0.arp_ignore = 1"
        in (server.workdir / "etc/sysctl.d/90-dsrctl.conf").read_text().splitlines()
    )
    assert server.dsrctl("drift", str(spec)).returncode == 0

    # arp_announce above 2 is the kernel's default case, like 0: the VIP becomes the
    # source of ARP requests.
    server.set_sysctl("net.ipv4.conf.veth0.arp_announce", "3")
    assert arp_sender(server, client) == VIP
    drift = server.dsrctl("drift", "--json", str(spec))
    assert drift.returncode == 2
    items = {item["kind"]: item for item in json.loads(drift.stdout)["drift"]}
    assert set(items) == {"sysctl", "file"}  # the file gets the uplink's line too
    item = items["sysctl"]
    assert (item["name"], item["expected"], item["actual"]) == (
        "net.ipv4.conf.veth0.arp_announce",
        2,
        3,
    )
    assert server.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    assert arp_sender(server, client) == "192.0.2.1"


def test_a_vxlan_gpe_tunnel_gets_rp_filter_0_and_the_uplink_stays_strict(
    pair: tuple[Netns, Netns],
) -> None:
    server, _ = pair
    server.set_sysctl("net.ipv4.conf.all.rp_filter", "1")
    spec = write_spec(server, GPE)
    (server.workdir / "etc/systemd/system").mkdir(parents=True)
    write(server.workdir, "/etc/sysctl.d/99-vendor.conf",
          "net.ipv4.conf.*.rp_filter = 2\nnet.ipv4.conf.dsrgpe0.rp_filter = 1\n")  # fmt: skip

    plan = server.dsrctl("plan", str(spec))
    assert plan.returncode == 0, plan.stderr
    lines = plan.stdout.splitlines()
    reason = "decapsulated packets arrive on dsrgpe0, which has no address: any rp_filter but 0"
    assert any(
        line.strip().startswith("+ sysctl net.ipv4.conf.dsrgpe0.rp_filter: 0") and reason in line
        for line in lines
    ), lines
    assert any(
        line.strip().startswith("~ sysctl net.ipv4.conf.all.rp_filter: 1 -> 0") for line in lines
    )
    assert any(
        line.strip().startswith("~ sysctl net.ipv4.conf.veth0.rp_filter: 0 -> 1")
        and "keeps veth0's reverse-path filter at 1" in line
        for line in lines
    ), lines
    # The explicit later line overrides dsrctl's at boot; the glob line never does.
    warnings = [line for line in lines if line.startswith("! WARNING: ")]
    assert warnings == [
        "! WARNING: /etc/sysctl.d/99-vendor.conf line 2 sets "
        "net.ipv4.conf.dsrgpe0.rp_filter = 1 and is read after 90-dsrctl.conf, so at boot it "
        "overrides dsrctl's 0: decapsulated tunnel packets would be dropped after a reboot; "
        "remove that line or rename one of the files"
    ], warnings

    assert server.sysctl("net.ipv4.conf.all.rp_filter") == "1"
    applied = server.dsrctl("apply", "--auto-approve", str(spec))
    assert applied.returncode == 0, applied.stderr
    assert server.sysctl("net.ipv4.conf.all.rp_filter") == "0"
    assert server.sysctl("net.ipv4.conf.dsrgpe0.rp_filter") == "0"
    assert server.sysctl("net.ipv4.conf.veth0.rp_filter") == "1"  # max(0, 1): still strict
    persisted = (server.workdir / "etc/sysctl.d/90-dsrctl.conf").read_text().splitlines()
    for line in ("net.ipv4.conf.all.rp_filter = 0", "net.ipv4.conf.dsrgpe0.rp_filter = 0",
                 "net.ipv4.conf.veth0.rp_filter = 1"):  # fmt: skip
        assert line in persisted
    assert "No changes" in server.dsrctl("apply", "--auto-approve", str(spec)).stdout

    server.set_sysctl("net.ipv4.conf.dsrgpe0.rp_filter", "1")
    drift = server.dsrctl("drift", str(spec))
    assert drift.returncode == 2, drift.stdout + drift.stderr
    assert "DRIFT sysctl net.ipv4.conf.dsrgpe0.rp_filter: expected 0, actual 1" in drift.stdout
    assert server.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    assert server.dsrctl("drift", str(spec)).returncode == 0

    shown = rows(json.loads(server.dsrctl("show", "--json").stdout))
    assert shown[("dsrgpe0", "rp_filter")]["role"] == "decap"
    assert shown[("dsrgpe0", "rp_filter")]["effective"] == 0

    # Dropping the tunnel puts the filter back as it was.
    spec.write_text(spec.read_text().replace('[[tunnel]]\nkind = "vxlan-gpe"\n', ""))
    dropped = server.dsrctl("apply", "--auto-approve", str(spec))
    assert dropped.returncode == 0, dropped.stderr
    assert server.sysctl("net.ipv4.conf.all.rp_filter") == "1"
    assert server.sysctl("net.ipv4.conf.veth0.rp_filter") == "0"


def test_explicit_rp_filter_keys_of_a_tunnel_are_checked_against_it(netns: Netns) -> None:
    """A key of the decap device passes the "sysctl exists" check before the device does;
    a non-zero rp_filter for it or for all is refused: the tunnel could not work."""
    with_uplink(netns)
    ok = write_spec(netns, GPE + '[linux.sysctl]\n"net.ipv4.conf.dsrgpe0.rp_filter" = 0\n')
    checked = netns.dsrctl("validate", str(ok))
    assert checked.returncode == 0, checked.stderr
    bad = write_spec(netns, GPE + '[linux.sysctl]\n"net.ipv4.conf.all.rp_filter" = 1\n', "bad.toml")
    refused = netns.dsrctl("validate", str(bad))
    assert refused.returncode == 1
    assert refused.stderr == (
        f'error: {bad}: linux.sysctl."net.ipv4.conf.all.rp_filter" = 1: decapsulated packets '
        "arrive on dsrgpe0, which has no address: any rp_filter but 0 drops them; set 0 or "
        "leave the key out (dsrctl sets 0 for [[tunnel]])\n"
    )
