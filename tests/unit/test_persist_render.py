"""What each backend writes, against golden files reviewed by hand (tests/golden/persist).

Set DSRCTL_UPDATE_GOLDEN=1 to rewrite the golden files after an intended change, then
read the diff before committing it. The netns tests feed the same files to the real
tools (systemd-analyze, systemd-networkd, ifup, netplan, libnm).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dsrctl.desired import vip_state
from dsrctl.model import AddressState
from providers.linux.persist import (
    Detection,
    NmProfile,
    Rendered,
    RenderRequest,
    ifupdown,
    netplan,
    networkd,
    networkmanager,
    systemd_unit,
)
from tests.persist_roots import NM_LO

GOLDEN = Path(__file__).parents[1] / "golden" / "persist"
SPEC = "/etc/dsrctl/dsrctl.toml"
FULL = [
    vip_state("192.0.2.100", 32, "lo:1", "lo"),
    vip_state("198.18.0.1", 32, None, "lo"),
    vip_state("2001:db8::100", 128, None, "lo"),
]
IPV4 = FULL[:2]


def request(states: list[AddressState], interface: str = "lo", **facts: object) -> RenderRequest:
    detection = Detection(root="/", interface=interface, live=False, systemd=True, **facts)  # type: ignore[arg-type]
    return RenderRequest(tuple(states), interface, SPEC, detection)


def golden(name: str, content: bytes) -> None:
    path = GOLDEN / name
    if os.environ.get("DSRCTL_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    assert content.decode() == path.read_text(), f"{path} differs"


def only_file(rendered: Rendered) -> tuple[str, bytes, int]:
    ((path, state),) = rendered.files.items()
    return path, state.content, state.mode


def test_systemd_unit_and_its_wants_link() -> None:
    rendered = systemd_unit.render(request(FULL))
    path, content, mode = only_file(rendered)
    assert (path, mode) == ("/etc/systemd/system/dsrctl-vips.service", 0o644)
    golden("systemd-unit/dsrctl-vips.service", content)
    link = "/etc/systemd/system/multi-user.target.wants/dsrctl-vips.service"
    assert rendered.symlinks == {link: "/etc/systemd/system/dsrctl-vips.service"}
    assert rendered.dirs == ("/etc/systemd/system/multi-user.target.wants",)


def test_systemd_unit_for_another_interface_follows_its_device() -> None:
    rendered = systemd_unit.render(
        request([vip_state("192.0.2.7", 32, "dsr-0:v", "dsr-0")], "dsr-0")
    )
    golden("systemd-unit/dsrctl-vips.service.dsr-0", only_file(rendered)[1])
    device = "sys-subsystem-net-devices-dsr\\x2d0.device"
    assert rendered.symlinks == {
        f"/etc/systemd/system/{device}.wants/dsrctl-vips.service": (
            "/etc/systemd/system/dsrctl-vips.service"
        )
    }


def test_networkd_dropin_extends_the_file_that_configures_lo() -> None:
    network = "/usr/lib/systemd/network/80-lo.network"
    rendered = networkd.render(request(FULL, networkd_network=network))
    path, content, mode = only_file(rendered)
    assert (path, mode) == ("/etc/systemd/network/80-lo.network.d/90-dsrctl.conf", 0o644)
    assert rendered.dirs == ("/etc/systemd/network/80-lo.network.d",)
    golden("networkd/90-dsrctl.conf", content)


def test_ifupdown_stanzas() -> None:
    path, content, mode = only_file(ifupdown.render(request(FULL)))
    assert (path, mode) == ("/etc/network/interfaces.d/dsrctl", 0o644)
    golden("ifupdown/dsrctl", content)


def test_netplan_yaml_joins_the_rendered_definition() -> None:
    path, content, mode = only_file(netplan.render(request(IPV4, netplan_id="loopback")))
    assert (path, mode) == ("/etc/netplan/90-dsrctl.yaml", 0o600)
    golden("netplan/90-dsrctl.yaml", content)


def test_networkmanager_adds_addresses_to_the_operators_profile() -> None:
    profile = NmProfile(
        "/etc/NetworkManager/system-connections/lo.nmconnection", NM_LO.encode(), 0o600
    )
    path, content, mode = only_file(
        networkmanager.render(request([IPV4[1]], nm_profiles=(profile,)))
    )
    assert (path, mode) == (profile.path, 0o600)
    golden("networkmanager/lo.nmconnection", content)


def test_networkmanager_merge_is_idempotent_and_drops_only_what_dsrctl_added() -> None:
    text = NM_LO.replace("address1=127.0.0.1/8", "address1=127.0.0.1/8\naddress3=198.18.0.9/32")
    once = networkmanager.merge(text, ["192.0.2.1/32", "192.0.2.2/32"], frozenset())
    assert "address4=192.0.2.1/32\naddress5=192.0.2.2/32\nmethod=manual" in once
    assert networkmanager.merge(once, ["192.0.2.1/32", "192.0.2.2/32"], frozenset()) == once
    dropped = networkmanager.merge(once, ["192.0.2.1/32"], frozenset({"192.0.2.2/32"}))
    assert "192.0.2.2" not in dropped
    assert "address3=198.18.0.9/32" in dropped  # the operator's own address stays
    assert dropped.replace("address4=192.0.2.1/32\n", "") == text


def test_networkmanager_merge_adds_an_ipv4_group_when_there_is_none() -> None:
    text = "[connection]\nid=lo\ntype=loopback\n"
    assert networkmanager.merge(text, ["192.0.2.1/32"], frozenset()) == (
        "[connection]\nid=lo\ntype=loopback\n\n[ipv4]\nmethod=manual\naddress1=192.0.2.1/32\n"
    )


@pytest.mark.parametrize(
    ("module", "state", "words"),
    [
        (networkmanager, FULL[2], "cannot keep an address deprecated"),
        (networkmanager, FULL[0], "do not keep address labels"),
        (netplan, FULL[2], "cannot turn off duplicate address detection"),
        (ifupdown, vip_state("192.0.2.1", 32, "lo-web", "lo"), "named lo:<name>"),
    ],
)
def test_backends_refuse_what_they_cannot_keep(
    module: object, state: AddressState, words: str
) -> None:
    problem = module.limits(state, "lo")  # type: ignore[attr-defined]
    assert problem is not None and words in problem


@pytest.mark.parametrize("module", [systemd_unit, networkd])
def test_full_fidelity_backends_keep_every_vip(module: object) -> None:
    assert [module.limits(state, "lo") for state in FULL] == [None, None, None]  # type: ignore[attr-defined]
    assert ifupdown.limits(FULL[0], "lo") is None and netplan.limits(FULL[0], "lo") is None


def test_unit_names_are_escaped_like_systemd_escape() -> None:
    assert systemd_unit.escape("eth0.100") == "eth0.100"
    assert systemd_unit.escape("br-lan") == "br\\x2dlan"
    assert systemd_unit.escape(".x") == "\\x2ex"
