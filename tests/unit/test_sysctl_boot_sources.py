"""Which sysctl.d line sets a key at boot: systemd-sysctl's rules (sysctl.d(5)) and
procps' `sysctl --system`, with plain data."""

from __future__ import annotations

from pathlib import Path

from providers.linux.persist.sysctl_conflicts import (
    Assignment,
    applied,
    boot_sources,
    matches,
)
from tests.persist_roots import write

RP = "net.ipv4.conf.eth0.rp_filter"
VENDOR = (
    "/usr/lib/sysctl.d/50-default.conf",
    "net.ipv4.conf.default.rp_filter = 2\nnet.ipv4.conf.*.rp_filter = 2\n"
    "-net.ipv4.conf.all.rp_filter\n",
)


def where(found: Assignment | None) -> str | None:
    return None if found is None else f"{found.path}:{found.line}={found.value}"


def test_a_glob_matches_one_component_of_the_proc_path() -> None:
    assert matches("net.ipv4.conf.*.rp_filter", RP)
    assert matches("net.ipv4.conf.*.rp_filter", "net.ipv4.conf.eth0/100.rp_filter")
    assert matches("net/ipv4/conf/eth?/rp_filter".replace("/", "."), RP)
    assert not matches("net.ipv4.*.rp_filter", RP)  # * never crosses a component
    assert not matches("net.ipv4.conf.*.arp_ignore", RP)
    assert matches("net.ipv4.conf.eth0.rp_filter", RP)


def test_a_glob_sets_every_interface_but_the_excluded_and_the_explicit_ones() -> None:
    """The example of sysctl.d(5): 2 for every interface except hub0; `all` excluded."""
    files = [VENDOR, ("/etc/sysctl.d/10-hub.conf", "net.ipv4.conf.hub0.rp_filter = 1\n")]
    assert where(applied(files, RP)) == "/usr/lib/sysctl.d/50-default.conf:2=2"
    assert where(applied(files, "net.ipv4.conf.hub0.rp_filter")) == (
        "/etc/sysctl.d/10-hub.conf:1=1"  # explicit, although its file is read first
    )
    assert applied(files, "net.ipv4.conf.all.rp_filter") is None  # "-key" without "="
    assert where(applied(files, "net.ipv4.conf.default.rp_filter")) == (
        "/usr/lib/sysctl.d/50-default.conf:1=2"
    )


def test_procps_applies_the_lines_in_order_globs_included() -> None:
    files = [("/etc/sysctl.d/10-a.conf", f"{RP} = 0\n"), VENDOR]
    assert where(applied(files, RP)) == "/etc/sysctl.d/10-a.conf:1=0"
    assert where(applied(files, RP, systemd=False)) == "/usr/lib/sysctl.d/50-default.conf:2=2"
    # The bare "-key" line is no assignment for procps: the glob sets `all` too.
    assert where(applied(files, "net.ipv4.conf.all.rp_filter", systemd=False)) == (
        "/usr/lib/sysctl.d/50-default.conf:2=2"
    )


def test_a_later_file_wins_for_the_same_key_or_glob_and_dashes_are_dropped() -> None:
    files = [
        ("/etc/sysctl.d/10-a.conf", f"-{RP} = 1\nnet.ipv4.conf.*.arp_ignore = 3\n"),
        ("/etc/sysctl.d/20-b.conf", "net/ipv4/conf/eth0/rp_filter = 2\n"),
        ("/etc/sysctl.d/30-c.conf", "net.ipv4.conf.*.arp_ignore = 1\n"),
    ]
    assert where(applied(files, RP)) == "/etc/sysctl.d/20-b.conf:1=2"
    assert where(applied(files, "net.ipv4.conf.eth0.arp_ignore")) == "/etc/sysctl.d/30-c.conf:1=1"
    # Two globs matching one key: the one changed last is written last.
    files.append(("/etc/sysctl.d/40-d.conf", "net.ipv4.conf.eth*.arp_ignore = 8\n"))
    assert where(applied(files, "net.ipv4.conf.eth0.arp_ignore")) == "/etc/sysctl.d/40-d.conf:1=8"
    # An equal reassignment keeps the first line (systemd keeps the earlier option).
    files.append(("/etc/sysctl.d/50-e.conf", "net.ipv4.conf.eth*.arp_ignore = 8\n"))
    assert where(applied(files, "net.ipv4.conf.eth0.arp_ignore")) == "/etc/sysctl.d/40-d.conf:1=8"


def test_boot_sources_reads_the_directories_in_systemd_order(tmp_path: Path) -> None:
    (tmp_path / "etc/systemd/system").mkdir(parents=True)  # systemd boots this root
    write(tmp_path, *VENDOR)
    write(tmp_path, "/etc/sysctl.d/90-dsrctl.conf", "net.ipv4.conf.all.rp_filter = 0\n")
    found = boot_sources(str(tmp_path), [RP, "net.ipv4.conf.all.rp_filter", "kernel.x"])
    assert where(found[RP]) == "/usr/lib/sysctl.d/50-default.conf:2=2"
    line = found[RP]
    assert line is not None and line.glob
    assert line.where() == (
        "/usr/lib/sysctl.d/50-default.conf line 2 (net.ipv4.conf.*.rp_filter = 2)"
    )
    assert where(found["net.ipv4.conf.all.rp_filter"]) == "/etc/sysctl.d/90-dsrctl.conf:1=0"
    assert found["kernel.x"] is None
    # /etc masks the /usr/lib file of the same name.
    write(tmp_path, "/etc/sysctl.d/50-default.conf", "# masked\n")
    assert boot_sources(str(tmp_path), [RP])[RP] is None
