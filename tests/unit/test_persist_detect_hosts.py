"""Detection, continued: networkd's KeepConfiguration=, dsrctl's own files, the
NetworkManager version, the legacy network-scripts, and the uplink."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsrctl.linux.persistence import auto_choice
from providers.linux.persist.detect import detect
from providers.linux.persist.networkd import matches
from tests.persist_roots import (
    DEBIAN_INTERFACES,
    dpkg_installed,
    enable,
    ifcfg_root,
    networkd_root,
    nm_root,
    write,
)


def claims(root: Path) -> list[tuple[str, str, bool]]:
    return [(c.backend, c.path, c.active) for c in detect(str(root), "lo").claims]


def test_networkd_keep_configuration_comes_from_the_file_and_its_dropins(tmp_path: Path) -> None:
    networkd_root(tmp_path)
    assert detect(str(tmp_path), "lo").networkd_keep is None
    write(
        tmp_path,
        "/usr/lib/systemd/network/10-lo.network.d/50-keep.conf",
        "[Network]\nKeepConfiguration=static\n",
    )
    assert detect(str(tmp_path), "lo").networkd_keep == "static"
    # dsrctl's own drop-in is not the operator's configuration
    write(
        tmp_path,
        "/etc/systemd/network/10-lo.network.d/90-dsrctl.conf",
        "[Network]\nKeepConfiguration=yes\n",
    )
    assert detect(str(tmp_path), "lo").networkd_keep == "static"


def test_dsrctl_own_network_file_is_not_a_claim(tmp_path: Path) -> None:
    networkd_root(tmp_path)
    write(tmp_path, "/etc/systemd/network/10-lo.network", "[Match]\nName=eth0\n")
    write(tmp_path, "/etc/systemd/network/10-dsrctl-lo.network", "[Match]\nName=lo\n")
    found = detect(str(tmp_path), "lo")
    assert (found.claims, found.networkd_network) == ((), None)
    assert "systemd-networkd" in found.services
    # An operator's file that selects lo takes over, even one sorted after dsrctl's.
    write(tmp_path, "/etc/systemd/network/80-lo.network", "[Match]\nName=lo\n")
    assert detect(str(tmp_path), "lo").networkd_network == "/etc/systemd/network/80-lo.network"


def test_dsrctl_own_loopback_profile_is_not_a_claim(tmp_path: Path) -> None:
    nm_root(tmp_path)
    (tmp_path / "etc/NetworkManager/system-connections/lo.nmconnection").rename(
        tmp_path / "etc/NetworkManager/system-connections/dsrctl-lo.nmconnection"
    )
    found = detect(str(tmp_path), "lo")
    assert (found.claims, found.nm_profiles) == ((), ())


@pytest.mark.parametrize(
    ("version", "active"), [("1.42.4-1", True), ("1.40.16-1", False), (None, True)]
)
def test_a_networkmanager_older_than_1_42_does_not_claim_lo(
    tmp_path: Path, version: str | None, active: bool
) -> None:
    nm_root(tmp_path)
    if version is not None:
        dpkg_installed(tmp_path, "network-manager", version)
    found = detect(str(tmp_path), "lo")
    assert found.nm_version == version
    assert [c.active for c in found.claims] == [active]
    if not active:
        assert found.notes == (
            "networkmanager (/etc/NetworkManager/system-connections/lo.nmconnection: "
            "type=loopback) is ignored: NetworkManager 1.40.16-1 has no loopback profiles "
            "(1.42 and later have them)",
        )
        assert auto_choice(found)[0] == "systemd-unit"


def test_a_profile_of_a_disabled_networkmanager_is_still_the_one_to_extend(
    tmp_path: Path,
) -> None:
    nm_root(tmp_path, enabled=False)
    found = detect(str(tmp_path), "lo")
    assert [c.active for c in found.claims] == [False]
    assert [p.path for p in found.nm_profiles] == [
        "/etc/NetworkManager/system-connections/lo.nmconnection"
    ]


def test_network_scripts_claim_lo_when_the_network_service_is_enabled(tmp_path: Path) -> None:
    ifcfg_root(tmp_path)
    write(tmp_path, "/etc/sysconfig/network-scripts/ifcfg-lo:0", "DEVICE=lo:0\nIPADDR=198.18.0.5\n")
    write(
        tmp_path,
        "/etc/sysconfig/network-scripts/ifcfg-lo:1",
        "# Managed by dsrctl from /x.toml; edits here are reverted by 'dsrctl apply'.\n"
        "DEVICE=lo:1\nIPADDR=192.0.2.1\n",
    )
    write(tmp_path, "/etc/sysconfig/network-scripts/ifcfg-lo:2.bak", "IPADDR=192.0.2.2\n")
    found = detect(str(tmp_path), "lo")
    assert claims(tmp_path) == [("ifcfg", "/etc/sysconfig/network-scripts/ifcfg-lo", True)]
    assert found.claims[0].detail == "DEVICE=lo"
    assert found.ifcfg_parent and "ifcfg" in found.services
    assert [(a.name, a.ipaddr, a.ours) for a in found.ifcfg_aliases] == [
        ("0", "198.18.0.5", False),
        ("1", "192.0.2.1", True),
    ]
    assert auto_choice(found)[0] == "ifcfg"


def test_network_scripts_without_the_network_service_are_ignored(tmp_path: Path) -> None:
    ifcfg_root(tmp_path, enabled=False)
    found = detect(str(tmp_path), "lo")
    assert found.notes == (
        "ifcfg (/etc/sysconfig/network-scripts/ifcfg-lo: DEVICE=lo) is ignored: the "
        "network-scripts 'network' service is not enabled",
    )
    assert auto_choice(found)[0] == "systemd-unit"
    enable(tmp_path, "network.service")  # systemd's own enablement counts too
    assert auto_choice(detect(str(tmp_path), "lo"))[0] == "ifcfg"


def test_the_uplink_is_detected_and_ifupdown_on_it_serves_lo_without_systemd(
    tmp_path: Path,
) -> None:
    write(
        tmp_path,
        "/etc/network/interfaces",
        DEBIAN_INTERFACES.replace("auto lo\n", "") + "\nauto eth0\niface eth0 inet dhcp\n",
    )
    write(tmp_path, "/usr/sbin/ifup", "#!/bin/sh\n", 0o755)
    (tmp_path / "etc/network/interfaces.d").mkdir(exist_ok=True)
    found = detect(str(tmp_path), "lo", uplink="eth0")
    assert found.claims == ()  # 'iface lo' without 'auto lo': ifupdown does not bring lo up
    assert [(c.backend, c.detail, c.active) for c in found.uplink_claims] == [
        ("ifupdown", "auto eth0, iface eth0 inet dhcp", True)
    ]
    backend, why = auto_choice(found)
    assert backend == "ifupdown"
    assert why.startswith(
        f"no tool configures lo at boot and systemd does not boot {tmp_path}; ifupdown "
        "brings up the uplink eth0 at boot"
    )
    assert found.to_json()["uplink"]["interface"] == "eth0"


def test_the_uplink_comes_from_the_default_route(tmp_path: Path) -> None:
    from providers.linux.persist.probe import uplink

    write(
        tmp_path,
        "/net/route",
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n"
        "eth1\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\n"
        "eth0\t00000000\t0102000A\t0003\t0\t0\t0\t00000000\n",
    )
    assert uplink(str(tmp_path)) == "eth0"
    write(tmp_path, "/net/route", "Iface\tDestination\n")
    write(
        tmp_path,
        "/net/ipv6_route",
        "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
        "fe800000000000000000000000000001 00000400 00000001 00000000 00000003 ens3\n",
    )
    assert uplink(str(tmp_path)) == "ens3"
    assert uplink(str(tmp_path / "nowhere")) is None


@pytest.mark.parametrize(
    ("match", "link_type", "selects"),
    [
        ("[Match]\nType=wlan\nWLANInterfaceType=ad-hoc\n", "ether", False),
        ("[Match]\nType=wlan\nWLANInterfaceType=ad-hoc\n", None, True),  # a doubt is a claim
        ("[Match]\nName=eth*\nSSID=corp\n", "ether", False),
        ("[Match]\nType=ether\n", "ether", True),
        ("[Match]\nName=en* eth*\nMACAddress=52:54:00:12:34:56\n", "ether", True),
    ],
)
def test_networkd_match_rules_for_the_uplink(
    match: str, link_type: str | None, selects: bool
) -> None:
    assert matches(match, "eth0", link_type) is selects


def test_the_link_type_comes_from_sysfs(tmp_path: Path) -> None:
    from providers.linux.persist.probe import link_type

    write(tmp_path, "/eth0/uevent", "INTERFACE=eth0\nIFINDEX=2\n")
    write(tmp_path, "/eth0/type", "1\n")
    write(tmp_path, "/wlp2s0/uevent", "DEVTYPE=wlan\nINTERFACE=wlp2s0\n")
    assert link_type("eth0", str(tmp_path)) == "ether"
    assert link_type("wlp2s0", str(tmp_path)) == "wlan"
    assert link_type("gone0", str(tmp_path)) is None
