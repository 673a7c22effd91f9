"""Later sysctl.d files that would undo dsrctl's sysctl file at boot."""

from __future__ import annotations

from pathlib import Path

import pytest

from providers.linux.persist import tree
from providers.linux.persist.sysctl_conflicts import overrides, parse, scan
from tests.persist_roots import write

OURS = "/etc/sysctl.d/90-dsrctl.conf"
WANTED: dict[str, int | str] = {
    "net.ipv4.conf.all.arp_ignore": 1,
    "net.ipv4.conf.all.arp_announce": 2,
    "net.ipv4.tcp_rmem": "4096 87380 6291456",
}


def test_keys_are_read_like_sysctl_does() -> None:
    text = (
        "# comment\n; comment\n-net/ipv4/conf/all/arp_ignore = 0\n"
        "net.ipv4.conf.eth0/100.rp_filter=2\nkernel.x = a   b\nnot an assignment\n"
    )
    assert parse(text) == [
        ("net.ipv4.conf.all.arp_ignore", "0"),
        ("net.ipv4.conf.eth0/100.rp_filter", "2"),
        ("kernel.x", "a b"),
    ]


def test_only_the_last_later_assignment_counts() -> None:
    files = [
        ("/usr/lib/sysctl.d/50-default.conf", "net.ipv4.conf.all.arp_ignore = 0\n"),
        (OURS, ""),
        ("/etc/sysctl.d/95-a.conf", "net.ipv4.conf.all.arp_ignore = 0\n"),
        ("/etc/sysctl.d/99-b.conf", "net.ipv4.conf.all.arp_ignore = 1\n"),
        ("/etc/sysctl.d/99-c.conf", "net.ipv4.tcp_rmem = 4096   87380 6291456\n"),
    ]
    assert overrides(files, OURS, WANTED) == []  # 99-b puts it back; tcp_rmem is the same


def test_a_later_file_is_reported_a_glob_only_where_procps_boots() -> None:
    """sysctl.d(5): a glob writes every key it matches except keys assigned explicitly
    anywhere, so under systemd a glob never overrides dsrctl's keys; procps' `sysctl
    --system` applies lines in order, so there it does."""
    files = [
        (OURS, ""),
        ("/etc/sysctl.d/99-sysctl.conf", "net.ipv4.conf.all.arp_ignore = 0\n"),
        ("/usr/lib/sysctl.d/99-z.conf", "# vendor\nnet.ipv4.conf.*.arp_announce = 0\n"),
    ]
    first = (
        "WARNING: /etc/sysctl.d/99-sysctl.conf line 1 sets net.ipv4.conf.all.arp_ignore = 0 "
        "and is read after 90-dsrctl.conf, so at boot it overrides dsrctl's 1: the host would "
        "answer ARP for its VIPs after a reboot; remove that line or rename one of the files"
    )
    assert overrides(files, OURS, WANTED) == [first]
    assert overrides(files, OURS, WANTED, systemd=False) == [
        first,
        "WARNING: /usr/lib/sysctl.d/99-z.conf line 2 (net.ipv4.conf.*.arp_announce = 0) sets "
        "net.ipv4.conf.all.arp_announce = 0 and is read after 90-dsrctl.conf, so at boot it "
        "overrides dsrctl's 2: the host would answer ARP for its VIPs after a reboot; remove "
        "that line or rename one of the files",
    ]


def test_a_per_interface_rp_filter_line_is_named_with_its_effect() -> None:
    wanted: dict[str, int | str] = {"net.ipv4.conf.tunl0.rp_filter": 0}
    files = [(OURS, ""), ("/etc/sysctl.d/99-tun.conf", "net/ipv4/conf/tunl0/rp_filter=1\n")]
    (warning,) = overrides(files, OURS, wanted)
    assert warning.startswith(
        "WARNING: /etc/sysctl.d/99-tun.conf line 1 sets net.ipv4.conf.tunl0.rp_filter = 1 and "
    )
    assert "decapsulated tunnel packets would be dropped after a reboot" in warning


def test_scan_orders_every_directory_by_name_before_dsrctl_file_exists(tmp_path: Path) -> None:
    write(tmp_path, "/usr/lib/sysctl.d/99-vendor.conf", "net.ipv4.conf.all.arp_ignore = 0\n")
    write(tmp_path, "/etc/sysctl.d/10-early.conf", "net.ipv4.conf.all.arp_announce = 0\n")
    (warning,) = scan(str(tmp_path), OURS, WANTED)
    assert warning.startswith("WARNING: /usr/lib/sysctl.d/99-vendor.conf line 1 sets ")
    # /etc masks a /usr/lib file of the same name, as systemd-sysctl does.
    write(tmp_path, "/etc/sysctl.d/99-vendor.conf", "# emptied by the operator\n")
    assert scan(str(tmp_path), OURS, WANTED) == []


def test_a_file_of_the_same_name_in_etc_hides_dsrctl_file(tmp_path: Path) -> None:
    write(tmp_path, OURS, "kernel.x = 1\n")
    (warning,) = scan(str(tmp_path), "/usr/local/lib/sysctl.d/90-dsrctl.conf", WANTED)
    assert warning.startswith(f"WARNING: {OURS} has the same name as ")


def test_a_file_outside_sysctl_d_is_not_compared(tmp_path: Path) -> None:
    write(tmp_path, "/etc/sysctl.d/99-x.conf", "net.ipv4.conf.all.arp_ignore = 0\n")
    assert scan(str(tmp_path), "/srv/dsrctl/90-dsrctl.conf", WANTED) == []


def test_an_unreadable_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "/etc/sysctl.d/99-secret.conf", "net.ipv4.conf.all.arp_ignore = 0\n")
    real_open = open

    def deny(path: str, *args: object, **kwargs: object) -> object:
        if str(path).endswith("99-secret.conf"):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(tree, "open", deny, raising=False)
    assert scan(str(tmp_path), OURS, WANTED) == [
        "cannot read /etc/sysctl.d/99-secret.conf (permission denied): whether it overrides "
        "dsrctl's sysctls at boot is unknown; run as root"
    ]


def test_etc_sysctl_conf_through_the_99_sysctl_link_is_named(tmp_path: Path) -> None:
    """Debian before 13, Ubuntu and RHEL: systemd-sysctl reads /etc/sysctl.conf through
    /etc/sysctl.d/99-sysctl.conf -> ../sysctl.conf, at that link's place in the order."""
    (tmp_path / "etc/systemd/system").mkdir(parents=True)  # systemd boots this root
    write(tmp_path, "/etc/sysctl.conf", "net.ipv4.conf.all.arp_announce = 0\n")
    (tmp_path / "etc/sysctl.d").mkdir(exist_ok=True)
    (tmp_path / "etc/sysctl.d/99-sysctl.conf").symlink_to("../sysctl.conf")
    assert scan(str(tmp_path), OURS, WANTED) == [
        "WARNING: /etc/sysctl.d/99-sysctl.conf (a link to /etc/sysctl.conf) line 1 sets "
        "net.ipv4.conf.all.arp_announce = 0 and is read after 90-dsrctl.conf, so at boot it "
        "overrides dsrctl's 2: the host would answer ARP for its VIPs after a reboot; remove "
        "that line or rename one of the files"
    ]
    # An absolute link is followed inside the root, never to this host's /etc/sysctl.conf.
    (tmp_path / "etc/sysctl.d/99-sysctl.conf").unlink()
    (tmp_path / "etc/sysctl.d/99-sysctl.conf").symlink_to("/etc/sysctl.conf")
    (warning,) = scan(str(tmp_path), OURS, WANTED)
    assert "sets net.ipv4.conf.all.arp_announce = 0" in warning
    # Debian 13 dropped the link: systemd-sysctl no longer reads /etc/sysctl.conf at all.
    (tmp_path / "etc/sysctl.d/99-sysctl.conf").unlink()
    assert scan(str(tmp_path), OURS, WANTED) == []


def test_etc_sysctl_conf_is_read_last_where_systemd_does_not_boot(tmp_path: Path) -> None:
    """procps' `sysctl --system` (the boot script of a host without systemd) reads
    /etc/sysctl.conf after every sysctl.d file."""
    write(tmp_path, "/etc/sysctl.conf", "net.ipv4.conf.all.arp_ignore=0\n")
    write(tmp_path, "/etc/sysctl.d/99-zz.conf", "net.ipv4.conf.all.arp_ignore = 1\n")
    assert scan(str(tmp_path), OURS, WANTED) == [
        "WARNING: /etc/sysctl.conf (read last by 'sysctl --system') line 1 sets "
        "net.ipv4.conf.all.arp_ignore = 0 and is read after 90-dsrctl.conf, so at boot it "
        "overrides dsrctl's 1: the host would answer ARP for its VIPs after a reboot; remove "
        "that line"
    ]
    (tmp_path / "etc/systemd/system").mkdir(parents=True)
    assert scan(str(tmp_path), OURS, WANTED) == []


def test_per_device_keys_where_systemd_does_not_boot_are_noted(tmp_path: Path) -> None:
    """Without systemd no udev rule applies a device's keys when it appears later."""
    wanted: dict[str, int | str] = {**WANTED, "net.ipv4.conf.dsrgpe0.rp_filter": 0}
    (note,) = scan(str(tmp_path), OURS, wanted)
    assert note.startswith(
        "systemd does not boot this host: procps' 'sysctl --system' applies "
        "net.ipv4.conf.dsrgpe0.rp_filter once, early at boot, and only to devices that exist"
    )
    (tmp_path / "etc/systemd/system").mkdir(parents=True)
    assert scan(str(tmp_path), OURS, wanted) == []
