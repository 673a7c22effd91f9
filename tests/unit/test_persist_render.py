"""What each backend writes, against golden files reviewed by hand (tests/golden/persist).

Set DSRCTL_UPDATE_GOLDEN=1 to rewrite the golden files after an intended change, then
read the diff before committing it. The netns tests feed the same files to the real
tools (systemd-analyze, systemd-networkd, ifup, netplan, libnm).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dsrctl.kinds.route import route_state
from dsrctl.linux.desired import vip_state
from dsrctl.model import AddressState, RouteState
from providers.linux.persist import (
    Detection,
    IfcfgAlias,
    NmProfile,
    Rendered,
    RenderRequest,
    ifcfg,
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
RANGES = [route_state("198.18.5.0/24", "lo"), route_state("2001:db8:5::/120", "lo")]


def request(
    states: list[AddressState],
    interface: str = "lo",
    routes: list[RouteState] | None = None,
    **facts: object,
) -> RenderRequest:
    detection = Detection(root="/", interface=interface, live=False, systemd=True, **facts)  # type: ignore[arg-type]
    return RenderRequest(tuple(states), interface, SPEC, detection, routes=tuple(routes or ()))


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
    golden("systemd-networkd/90-dsrctl.conf", content)
    # The operator's own KeepConfiguration= is left alone: no [Network] section then.
    kept = networkd.render(request(FULL, networkd_network=network, networkd_keep="static"))
    assert only_file(kept)[1] == content.replace(
        b"\n[Network]\n# keep addresses networkd did not configure\nKeepConfiguration=yes\n", b""
    )


def test_networkd_own_file_for_lo_keeps_localhost_and_foreign_addresses() -> None:
    rendered = networkd.render(request(FULL))
    path, content, mode = only_file(rendered)
    assert (path, mode) == ("/etc/systemd/network/10-dsrctl-lo.network", 0o644)
    assert rendered.dirs == ()  # /etc/systemd/network ships with systemd
    golden("systemd-networkd/10-dsrctl-lo.network", content)
    sections = networkd.parse(content.decode())
    assert ("Match", "Name", "lo") in sections
    assert ("Network", "KeepConfiguration", "yes") in sections
    assert ("Network", "Address", "127.0.0.1/8") in sections
    assert ("Network", "Address", "::1/128") in sections


@pytest.mark.parametrize(
    ("texts", "keep"),
    [
        ([], None),
        (["[Network]\nKeepConfiguration=static\n"], "static"),
        (["[Network]\nKeepConfiguration=no\n", "[Network]\nKeepConfiguration=Yes\n"], "yes"),
        (["[Network]\nKeepConfiguration=yes\n", "[Network]\nKeepConfiguration=\n"], None),
        (["[Link]\nKeepConfiguration=yes\n"], None),
    ],
)
def test_keep_configuration_follows_the_file_then_its_dropins(
    texts: list[str], keep: str | None
) -> None:
    assert networkd.keep_configuration(texts) == keep


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


def test_networkmanager_own_profile_when_no_loopback_profile_exists() -> None:
    path, content, mode = only_file(networkmanager.render(request(IPV4[1:])))
    assert (path, mode) == ("/etc/NetworkManager/system-connections/dsrctl-lo.nmconnection", 0o600)
    golden("networkmanager/dsrctl-lo.nmconnection", content)
    again = only_file(
        networkmanager.render(request([*IPV4[1:], vip_state("192.0.2.9", 32, None, "lo")]))
    )
    assert (  # the same uuid at every run
        networkmanager.groups(again[1].decode())["connection"]
        == networkmanager.groups(content.decode())["connection"]
    )


@pytest.mark.parametrize(
    ("version", "old"),
    [("1.42.4-1", False), ("1.40.16-1", True), ("1:1.44.2-1", False), (None, False)],
)
def test_networkmanager_versions(version: str | None, old: bool) -> None:
    detection = Detection("/", "lo", live=False, systemd=True, nm_version=version)
    assert networkmanager.too_old(detection) is old
    assert (networkmanager.requirement(detection) is not None) is old


def test_ifcfg_alias_files() -> None:
    rendered = ifcfg.render(request([FULL[0]]))
    path, content, mode = only_file(rendered)
    assert (path, mode) == ("/etc/sysconfig/network-scripts/ifcfg-lo:1", 0o644)
    golden("ifcfg/ifcfg-lo:1", content)
    assert ifcfg.parse(content.decode()) == {
        "DEVICE": "lo:1",
        "IPADDR": "192.0.2.100",
        "NETMASK": "255.255.255.255",
        "PREFIX": "32",  # not inherited from ifcfg-lo's /8
        "ONBOOT": "yes",
        "IPV6INIT": "no",
    }


def alias(name: str, ipaddr: str | None, ours: bool = False) -> IfcfgAlias:
    return IfcfgAlias(name, f"/etc/sysconfig/network-scripts/ifcfg-lo:{name}", ipaddr, ours)


def test_ifcfg_numbers_unlabelled_vips_stably() -> None:
    states = [
        vip_state("192.0.2.1", 32, "lo:1", "lo"),
        vip_state("192.0.2.2", 32, None, "lo"),
        vip_state("192.0.2.3", 32, None, "lo"),
        vip_state("192.0.2.4", 32, None, "lo"),
        FULL[2],
    ]
    existing = (
        alias("0", "198.18.0.50"),  # the operator's: its name is never given out
        alias("7", "192.0.2.3", ours=True),  # written for this VIP by an earlier run
        alias("2", "192.0.2.99", ours=True),  # dsrctl's, for a VIP the spec dropped
        alias("3", None, ours=True),  # dsrctl's, its IPADDR removed by hand
    )
    assert ifcfg.labels(request(states, ifcfg_aliases=existing)) == {
        "192.0.2.1/32": "lo:1",
        "192.0.2.2/32": "lo:2",
        "192.0.2.3/32": "lo:7",
        "192.0.2.4/32": "lo:3",
    }
    assert ifcfg.labels(request(states)) == {
        "192.0.2.1/32": "lo:1",
        "192.0.2.2/32": "lo:0",
        "192.0.2.3/32": "lo:2",
        "192.0.2.4/32": "lo:3",
    }


def test_ifcfg_never_writes_an_alias_file_of_the_operators() -> None:
    states = [vip_state("192.0.2.1", 32, "lo:1", "lo")]
    assert ifcfg.check(request(states, ifcfg_aliases=(alias("1", "192.0.2.9", True),))) is None
    assert ifcfg.check(request(states, ifcfg_aliases=(alias("1", "198.18.0.5"),))) == (
        "/etc/sysconfig/network-scripts/ifcfg-lo:1 exists and configures 198.18.0.5, not VIP "
        "192.0.2.1/32 (label lo:1): give the VIP another label or remove that file"
    )
    assert ifcfg.check(request(states, ifcfg_aliases=(alias("0", "192.0.2.1"),))) == (
        "/etc/sysconfig/network-scripts/ifcfg-lo:0 already configures VIP 192.0.2.1, and "
        "network-scripts would add it twice at boot: remove that file (dsrctl writes its own "
        "alias for the VIP) or remove the VIP from the spec"
    )
    twice = [*states, vip_state("192.0.2.2", 32, "lo:1", "lo")]
    assert ifcfg.check(request(twice)) == (
        "VIPs 192.0.2.1/32 and 192.0.2.2/32 both have label lo:1: network-scripts keep one "
        "address per alias"
    )


def test_ifcfg_files_are_read_like_the_shell_reads_them() -> None:
    text = (
        "# comment\nDEVICE='lo:1'\nIPADDR=\"192.0.2.1\" # trailing\nNAME=my\\ alias\n"
        "export ONBOOT=yes\necho not an assignment\n1X=bad\n"
    )
    assert ifcfg.parse(text) == {
        "DEVICE": "lo:1",
        "IPADDR": "192.0.2.1",
        "NAME": "my alias",
        "ONBOOT": "yes",
    }
    assert ifcfg.parse("IPADDR='unbalanced\n") == {}


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
        (ifcfg, FULL[2], "no alias files for IPv6 addresses"),
        (ifcfg, vip_state("192.0.2.1", 32, "lo:a-b", "lo"), "lo:<letters, digits, _>"),
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


# -- VIP ranges: a local route per range, next to the addresses --------------------------
def test_systemd_unit_adds_the_ranges_after_the_addresses() -> None:
    content = only_file(systemd_unit.render(request(FULL, routes=RANGES)))[1]
    golden("systemd-unit/dsrctl-vips.service.ranges", content)
    lines = content.decode().splitlines()
    assert lines[-5:-3] == [
        "ExecStart=/sbin/ip -4 route replace local 198.18.5.0/24 dev lo table local",
        "ExecStart=/sbin/ip -6 route replace local 2001:db8:5::/120 dev lo table local",
    ]


def test_networkd_declares_each_range_as_a_local_route() -> None:
    network = "/usr/lib/systemd/network/80-lo.network"
    dropin = only_file(networkd.render(request(FULL, routes=RANGES, networkd_network=network)))
    golden("systemd-networkd/90-dsrctl.conf.ranges", dropin[1])
    own = only_file(networkd.render(request([], routes=RANGES)))[1]
    golden("systemd-networkd/10-dsrctl-lo.network.ranges", own)
    sections = networkd.parse(own.decode())
    assert [entry for entry in sections if entry[0] == "Route"] == [
        ("Route", "Destination", "198.18.5.0/24"),
        ("Route", "Type", "local"),
        ("Route", "Table", "local"),
        ("Route", "Destination", "2001:db8:5::/120"),
        ("Route", "Type", "local"),
        ("Route", "Table", "local"),
    ]


def test_ifupdown_runs_ip_route_for_each_range() -> None:
    content = only_file(ifupdown.render(request(FULL, routes=RANGES)))[1]
    golden("ifupdown/dsrctl.ranges", content)
    assert (
        "iface lo inet manual\n"
        "    up ip -4 route replace local 198.18.5.0/24 dev lo table local\n"
        "    down ip -4 route del local 198.18.5.0/24 dev lo table local || true\n"
    ) in content.decode()


def test_netplan_routes_of_type_local() -> None:
    content = only_file(netplan.render(request(IPV4, routes=RANGES, netplan_id="loopback")))[1]
    golden("netplan/90-dsrctl.yaml.ranges", content)
    alone = only_file(netplan.render(request([], routes=RANGES[:1], netplan_id="lo")))[1]
    assert "addresses" not in alone.decode()  # no empty sequence when there is no VIP


def test_networkmanager_routes_with_table_and_type() -> None:
    profile = NmProfile(
        "/etc/NetworkManager/system-connections/lo.nmconnection", NM_LO.encode(), 0o600
    )
    merged = only_file(
        networkmanager.render(request([IPV4[1]], routes=RANGES, nm_profiles=(profile,)))
    )[1]
    golden("networkmanager/lo.nmconnection.ranges", merged)
    own = only_file(networkmanager.render(request(IPV4[1:], routes=RANGES)))[1]
    golden("networkmanager/dsrctl-lo.nmconnection.ranges", own)
    groups = networkmanager.groups(own.decode())
    assert groups["ipv4"]["route1"] == "198.18.5.0/24"
    assert groups["ipv4"]["route1_options"] == "table=255,type=local"
    assert groups["ipv6"]["route1"] == "2001:db8:5::/120"


def test_networkmanager_route_merge_is_idempotent_and_drops_only_its_own() -> None:
    text = NM_LO.replace("method=manual", "method=manual\nroute1=198.18.9.0/24")
    once = networkmanager.merge_routes(text, "ipv4", RANGES[:1], frozenset())
    assert "route1=198.18.9.0/24\nroute2=198.18.5.0/24\nroute2_options=table=255,type=local" in once
    assert networkmanager.merge_routes(once, "ipv4", RANGES[:1], frozenset()) == once
    back = networkmanager.merge_routes(once, "ipv4", [], frozenset({"198.18.5.0/24"}))
    assert back == text


def test_ifcfg_route_files_per_family() -> None:
    rendered = ifcfg.render(request([FULL[0]], routes=RANGES))
    route4 = rendered.files["/etc/sysconfig/network-scripts/route-lo"]
    route6 = rendered.files["/etc/sysconfig/network-scripts/route6-lo"]
    golden("ifcfg/route-lo", route4.content)
    golden("ifcfg/route6-lo", route6.content)
    assert route4.content.decode().splitlines()[-1] == "local 198.18.5.0/24 dev lo table local"
    assert (route4.mode, route6.mode) == (0o644, 0o644)


def test_ifcfg_never_rewrites_the_operators_route_file() -> None:
    theirs = ("/etc/sysconfig/network-scripts/route-lo",)
    problem = ifcfg.check(request([], routes=RANGES[:1], ifcfg_route_files=theirs))
    assert problem is not None and problem.startswith(
        "/etc/sysconfig/network-scripts/route-lo is not dsrctl's"
    )
    # An IPv6 range only needs route6-lo: the operator's route-lo stays theirs.
    assert ifcfg.check(request([], routes=RANGES[1:], ifcfg_route_files=theirs)) is None
