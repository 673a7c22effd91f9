"""Detection of who configures lo at boot, from trees that look like real hosts' /etc."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsrctl.linux.persistence import auto_choice
from providers.linux.persist import tree as tree_module
from providers.linux.persist.detect import detect, running_daemons
from providers.linux.persist.networkd import matches
from tests.persist_roots import (
    DEBIAN_INTERFACES,
    NM_LO,
    enable,
    ifupdown_root,
    netplan_root,
    networkd_root,
    nm_root,
    systemd_root,
    write,
)


def claims(root: Path) -> list[tuple[str, str, bool]]:
    return [(c.backend, c.path, c.active) for c in detect(str(root), "lo").claims]


def test_a_bare_systemd_root_gets_the_unit_and_no_systemd_gets_nothing(tmp_path: Path) -> None:
    bare = detect(str(tmp_path), "lo")
    assert (bare.live, bare.systemd, bare.claims) == (False, False, ())
    assert auto_choice(bare)[0] == "none"
    systemd_root(tmp_path)
    assert auto_choice(detect(str(tmp_path), "lo")) == (
        "systemd-unit",
        "no tool configures lo at boot",
    )


def test_networkd_claims_lo_only_when_enabled(tmp_path: Path) -> None:
    networkd_root(tmp_path, enabled=False)
    found = detect(str(tmp_path), "lo")
    assert claims(tmp_path) == [("systemd-networkd", "/etc/systemd/network/10-lo.network", False)]
    assert found.notes == (
        "systemd-networkd (/etc/systemd/network/10-lo.network: [Match] Name=lo) is ignored: "
        "systemd-networkd is not enabled",
    )
    assert auto_choice(found)[0] == "systemd-unit"
    enable(tmp_path, "systemd-networkd.service")
    found = detect(str(tmp_path), "lo")
    assert found.networkd_network == "/etc/systemd/network/10-lo.network"
    assert auto_choice(found)[0] == "systemd-networkd"


def test_networkd_uses_the_first_matching_file_by_name_and_etc_masks_usr(tmp_path: Path) -> None:
    networkd_root(tmp_path)
    write(tmp_path, "/usr/lib/systemd/network/05-all.network", "[Match]\nName=*\n")
    write(tmp_path, "/etc/systemd/network/01-eth.network", "[Match]\nName=en* eth*\n")
    assert detect(str(tmp_path), "lo").networkd_network == "/usr/lib/systemd/network/05-all.network"
    write(tmp_path, "/etc/systemd/network/05-all.network", "[Match]\nName=!lo\n")
    assert detect(str(tmp_path), "lo").networkd_network == "/etc/systemd/network/10-lo.network"


@pytest.mark.parametrize(
    ("match", "selects_lo"),
    [
        ("", True),  # no [Match] at all: every link
        ("[Match]\nName=lo eth0\n", True),
        ("[Match]\nName=e*\n", False),
        ("[Match]\nName=!eth* wl*\n", True),
        ("[Match]\nName=!lo\n", False),
        ("[Match]\nType=loopback\n", True),
        ("[Match]\nType=ether\n", False),
        ("[Match]\nName=*\nMACAddress=52:54:00:12:34:56\n", False),
        ("[Match]\nName=*\nVirtualization=no\n", True),  # a host condition: assumed true
        ("[Match]\nName=eth0\nName=\nName=l?\n", True),  # an empty assignment resets the list
    ],
)
def test_networkd_match_rules(match: str, selects_lo: bool) -> None:
    assert matches(match + "[Network]\nDHCP=no\n", "lo") is selects_lo


def test_netplan_is_seen_through_what_it_renders(tmp_path: Path) -> None:
    netplan_root(tmp_path)
    found = detect(str(tmp_path), "lo")
    assert claims(tmp_path) == [("netplan", "/run/systemd/network/10-netplan-lo.network", True)]
    assert (found.netplan_id, found.netplan_renderer) == ("lo", "networkd")
    # The generated file is also the .network a networkd drop-in would extend.
    assert found.networkd_network == "/run/systemd/network/10-netplan-lo.network"


def test_netplan_yaml_that_is_not_rendered_yet_still_claims_lo(tmp_path: Path) -> None:
    netplan_root(tmp_path, generate=False)
    (claim,) = detect(str(tmp_path), "lo").claims
    assert (claim.backend, claim.path, claim.detail) == (
        "netplan",
        "/etc/netplan/50-cloud-init.yaml",
        "declares lo, not rendered yet",
    )


def test_networkmanager_loopback_profile(tmp_path: Path) -> None:
    nm_root(tmp_path)
    found = detect(str(tmp_path), "lo")
    path = "/etc/NetworkManager/system-connections/lo.nmconnection"
    assert claims(tmp_path) == [("networkmanager", path, True)]
    (profile,) = found.nm_profiles
    assert (profile.path, profile.mode, profile.content) == (path, 0o600, NM_LO.encode())
    write(tmp_path, path, NM_LO.replace("[loopback]", "autoconnect=false\n[loopback]"), 0o600)
    assert claims(tmp_path) == [("networkmanager", path, False)]
    assert detect(str(tmp_path), "lo").notes[0].endswith("the profile has autoconnect=false")


def test_an_ethernet_profile_does_not_claim_lo(tmp_path: Path) -> None:
    nm_root(tmp_path, NM_LO.replace("type=loopback", "type=ethernet").replace("=lo\n", "=eth0\n"))
    assert claims(tmp_path) == []


def test_ifupdown_claims_lo_and_must_source_the_dropin_directory(tmp_path: Path) -> None:
    ifupdown_root(tmp_path)
    found = detect(str(tmp_path), "lo")
    assert claims(tmp_path) == [("ifupdown", "/etc/network/interfaces", True)]
    assert found.claims[0].detail == "auto lo, iface lo inet loopback"
    assert found.ifupdown_sources_dropins
    write(tmp_path, "/etc/network/interfaces", DEBIAN_INTERFACES.replace("source", "#source"))
    assert not detect(str(tmp_path), "lo").ifupdown_sources_dropins
    write(tmp_path, "/etc/network/interfaces", "source-directory interfaces.d\n")
    write(tmp_path, "/etc/network/interfaces.d/lo", "auto lo\niface lo inet loopback\n")
    found = detect(str(tmp_path), "lo")
    assert found.ifupdown_sources_dropins  # a relative path, from /etc/network
    assert [c.backend for c in found.claims] == ["ifupdown"]  # lo came from the sourced file


def test_dsrctl_own_files_never_claim_lo(tmp_path: Path) -> None:
    ifupdown_root(tmp_path, "source /etc/network/interfaces.d/*\n")
    write(tmp_path, "/etc/network/interfaces.d/dsrctl", "auto lo\niface lo inet static\n")
    write(tmp_path, "/etc/netplan/90-dsrctl.yaml", "network:\n  ethernets:\n    lo: {}\n")
    assert claims(tmp_path) == []


def test_ifupdown_without_the_networking_service_is_ignored(tmp_path: Path) -> None:
    ifupdown_root(tmp_path)
    (tmp_path / "etc/systemd/system/multi-user.target.wants/networking.service").unlink()
    assert claims(tmp_path) == [("ifupdown", "/etc/network/interfaces", False)]


def test_two_tools_make_auto_refuse_with_both_named(tmp_path: Path) -> None:
    networkd_root(tmp_path)
    ifupdown_root(tmp_path)
    backend, why = auto_choice(detect(str(tmp_path), "lo"))
    assert backend is None
    assert why == (
        "several tools configure lo at boot: "
        "systemd-networkd (/etc/systemd/network/10-lo.network: [Match] Name=lo); "
        "ifupdown (/etc/network/interfaces: auto lo, iface lo inet loopback); "
        "dsrctl cannot tell which one wins: set linux.persist.addresses to one of "
        "'ifupdown', 'systemd-networkd' (or 'none')"
    )


def test_a_file_that_cannot_be_read_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nm_root(tmp_path)
    real_open = open

    def deny(path: str, *args: object, **kwargs: object) -> object:
        if str(path).endswith(".nmconnection"):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(tree_module, "open", deny, raising=False)
    found = detect(str(tmp_path), "lo")
    assert found.claims == ()
    assert found.notes == (
        "cannot read /etc/NetworkManager/system-connections/lo.nmconnection (permission "
        "denied): detection may have missed what it configures; run as root",
    )


def test_running_daemons_come_from_proc_comm(tmp_path: Path) -> None:
    for pid, name in (("1", "systemd"), ("20", "systemd-network"), ("30", "NetworkManager")):
        write(tmp_path, f"/proc/{pid}/comm", name + "\n")
    write(tmp_path, "/proc/self/comm", "python\n")
    (tmp_path / "root/run/systemd/system").mkdir(parents=True)
    found = running_daemons(str(tmp_path / "root"), str(tmp_path / "proc"))
    assert found == {"systemd", "networkd", "networkmanager"}
    assert running_daemons(str(tmp_path / "none"), str(tmp_path / "nowhere")) == frozenset()


def test_a_linked_nm_profile_is_read_inside_the_root_never_from_this_host(
    tmp_path: Path,
) -> None:
    """The profile's text was read with links followed inside the root, but its bytes
    (kept to be rewritten) were read by following the link on this host: a root whose
    profile is `../../../../secret` showed and kept a file outside the root."""
    root = tmp_path / "root"
    nm_root(root)
    path = "/etc/NetworkManager/system-connections/lo.nmconnection"
    (root / path.lstrip("/")).unlink()
    (root / path.lstrip("/")).symlink_to("../../../../secret")
    write(root, "/secret", NM_LO, 0o600)  # what the root itself holds there
    (tmp_path / "secret").write_text("host file outside the root\n")
    (profile,) = detect(str(root), "lo").nm_profiles
    assert profile.content == NM_LO.encode()


def test_a_linked_ifup_is_looked_up_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    ifupdown_root(root)
    for name in ("sbin/ifup", "usr/sbin/ifup"):
        (root / name).unlink(missing_ok=True)
    (root / "sbin").mkdir(exist_ok=True)
    # An absolute target means the root's /usr/bin/ifup, which this root lacks; on this
    # host the path may well exist.
    (root / "sbin/ifup").symlink_to("/usr/bin/env")
    (claim,) = [c for c in detect(str(root), "lo").claims if c.backend == "ifupdown"]
    assert not claim.active
    assert "ifupdown is not installed" in (claim.inactive_reason or "")
