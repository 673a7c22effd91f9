"""What each backend writes for the [[tunnel]] decap side, against golden files
(tests/golden/persist/systemd-unit/dsrctl-tunnels.service, ifupdown/dsrctl.tunnels,
systemd-networkd/10-dsrctl-tunnel-* and systemd-networkd/dsrctl-tunnels.service;
DSRCTL_UPDATE_GOLDEN=1 rewrites them, see test_persist_render.py). The namespace tests
(tests/netns/test_persist_reboot_tunnels.py) and the VM tier (tests/vm/test_tunnel_reboot.py)
replay them.

The spec has one tunnel of each device type: gue (tunl0, the ipip fallback device, and
its fou port), gre and ip6ip6 as collect-metadata devices of dsrctl's, ip6gre as its
fallback device, vxlan-gpe.
"""

from __future__ import annotations

import tomllib

import pytest

from dsrctl.linux.persistence import Persistence, add_decap, build, decap_of, unit_part
from dsrctl.spec import Spec, parse_spec
from providers.linux.persist import Detection, Rendered, networkd
from tests.unit.test_persist_render import golden

SPEC_PATH = "/etc/dsrctl/dsrctl.toml"
TUNNELS = """
[[tunnel]]
kind = "gue"
[[tunnel]]
kind = "gre"
name = "dsrgre0"
[[tunnel]]
kind = "ip6ip6"
name = "dsr6tnl0"
[[tunnel]]
kind = "ip6gre"
[[tunnel]]
kind = "vxlan-gpe"
"""
UNIT = "/etc/systemd/system/dsrctl-tunnels.service"
LINK = "/etc/systemd/system/multi-user.target.wants/dsrctl-tunnels.service"


def spec(addresses: str = "systemd-unit", tunnels: str = TUNNELS) -> Spec:
    text = f'version = 1\n[[vip]]\naddress = "198.18.0.1"\n{tunnels}\n'
    text += f'[linux.persist]\naddresses = "{addresses}"\n'
    return parse_spec(tomllib.loads(text), SPEC_PATH)


def detection(systemd: bool = True, **facts: object) -> Detection:
    return Detection(root="/", interface="lo", live=False, systemd=systemd, **facts)  # type: ignore[arg-type]


def decap_files(backend: str, systemd: bool = True) -> Persistence:
    result = Persistence(backend)
    add_decap(result, spec(), detection(systemd), Rendered())
    return result


def test_the_unit_creates_sets_up_and_adds_the_ports() -> None:
    result = decap_files("systemd-unit")
    assert set(result.files) == {UNIT} and result.symlinks == {LINK: UNIT}
    assert result.dirs == {"/etc/systemd/system/multi-user.target.wants": "directory"}
    content = result.files[UNIT].content
    golden("systemd-unit/dsrctl-tunnels.service", content)
    starts = [line for line in content.decode().splitlines() if line.startswith("ExecStart")]
    assert starts == [
        "ExecStart=/sbin/ip link set tunl0 up",
        "ExecStart=-/sbin/ip link add dsrgre0 type gre external",
        "ExecStart=/sbin/ip link set dsrgre0 up",
        "ExecStart=-/sbin/ip link add dsr6tnl0 type ip6tnl external mode ip6ip6",
        "ExecStart=/sbin/ip link set dsr6tnl0 up",
        "ExecStart=/sbin/ip link set ip6gre0 up",
        "ExecStart=-/sbin/ip link add dsrgpe0 type vxlan gpe external dstport 4790 nolearning",
        "ExecStart=/sbin/ip link set dsrgpe0 up",
        "ExecStart=-/sbin/ip fou add port 19523 gue",
    ]
    assert result.files[UNIT].mode == 0o644


@pytest.mark.parametrize("backend", ["networkmanager", "netplan", "ifcfg", "none"])
def test_backends_without_a_collect_metadata_device_get_the_same_unit(backend: str) -> None:
    """NetworkManager's ip-tunnel, netplan's tunnels: and ifcfg have no external mode and
    no fou: the whole decap side is the unit's, byte for byte the systemd-unit one."""
    assert unit_part(backend, *decap_of(spec())) == decap_of(spec())
    result = decap_files(backend)
    assert result.files == decap_files("systemd-unit").files
    assert result.symlinks == {LINK: UNIT}


def test_without_systemd_nothing_is_written_and_the_plan_says_so() -> None:
    result = decap_files("none", systemd=False)
    assert (result.files, result.symlinks) == ({}, {})
    (note,) = result.notes
    assert note.startswith("the tunnels' decap side (tunl0, dsrgre0, dsr6tnl0, ip6gre0, dsrgpe0,")
    assert (
        "fou port 19523) does not come back after a reboot by itself: systemd does not "
        "boot /, so no dsrctl-tunnels.service brings it back; create the devices" in note
    )
    other = decap_files("networkmanager", systemd=False).notes[0]
    assert "brings it back (networkmanager cannot); create" in other


NETWORK_DIR = "/etc/systemd/network"


def networkd_files(result: Persistence) -> list[str]:
    return sorted(p.rsplit("/", 1)[1] for p in result.files if p.rsplit("/", 1)[0] == NETWORK_DIR)


def test_networkd_netdevs_and_networks_and_the_unit_for_vxlan_gpe_and_the_port() -> None:
    """networkd's own files for the ipip, gre, ip6tnl and ip6gre devices (a .netdev for a
    collect-metadata device, a .network for each); the unit for what systemd 252 cannot
    do: the vxlan-gpe device (no VXLAN External=) and the GUE port (networkd sends
    FOU_ATTR_IPPROTO=0, refused by current kernels)."""
    network = "/usr/lib/systemd/network/80-lo.network"
    result = build(spec("systemd-networkd"), detection(networkd_network=network), [])
    assert networkd_files(result) == [
        "10-dsrctl-tunnel-dsr6tnl0.netdev",
        "10-dsrctl-tunnel-dsr6tnl0.network",
        "10-dsrctl-tunnel-dsrgre0.netdev",
        "10-dsrctl-tunnel-dsrgre0.network",
        "10-dsrctl-tunnel-ip6gre0.network",
        "10-dsrctl-tunnel-tunl0.network",
    ]
    assert set(result.files) - {UNIT} == {
        f"{NETWORK_DIR}/{name}" for name in networkd_files(result)
    } | {"/etc/systemd/network/80-lo.network.d/90-dsrctl.conf"}
    for name in networkd_files(result):
        state = result.files[f"{NETWORK_DIR}/{name}"]
        golden(f"systemd-networkd/{name}", state.content)
        assert state.mode == 0o644
    golden("systemd-networkd/dsrctl-tunnels.service", result.files[UNIT].content)
    text = result.files[UNIT].content.decode()
    starts = [line for line in text.splitlines() if line.startswith("ExecStart")]
    assert starts == [
        "ExecStart=-/sbin/ip link add dsrgpe0 type vxlan gpe external dstport 4790 nolearning",
        "ExecStart=/sbin/ip link set dsrgpe0 up",
        "ExecStart=-/sbin/ip fou add port 19523 gue",
    ]
    assert result.symlinks == {LINK: UNIT}
    gre = result.files[f"{NETWORK_DIR}/10-dsrctl-tunnel-dsrgre0.netdev"].content.decode()
    netdev = networkd.parse(gre)
    assert ("Tunnel", "External", "yes") in netdev and ("NetDev", "Kind", "gre") in netdev
    assert text.startswith("# Managed by dsrctl from /etc/dsrctl/dsrctl.toml;")
    assert gre.startswith("# Managed by dsrctl from /etc/dsrctl/dsrctl.toml;")


def test_networkd_own_lo_file_gets_the_tunnel_files_too() -> None:
    """Without an operator's .network for lo, dsrctl's own 10-dsrctl-lo.network: the
    decap files are the same."""
    result = build(spec("systemd-networkd"), detection(), [])
    names = networkd_files(result)
    assert "10-dsrctl-lo.network" in names and "10-dsrctl-tunnel-tunl0.network" in names
    with_dropin = build(
        spec("systemd-networkd"), detection(networkd_network="/etc/systemd/network/1.network"), []
    )
    assert {p: s for p, s in result.files.items() if "tunnel" in p} == {
        p: s for p, s in with_dropin.files.items() if "tunnel" in p
    }


def test_networkd_without_vxlan_gpe_or_gue_needs_no_unit() -> None:
    for kind in ("ipip", "gre", "ip6ip6", "ip6gre"):
        result = build(spec("systemd-networkd", f'[[tunnel]]\nkind = "{kind}"\n'), detection(), [])
        assert UNIT not in result.files and result.symlinks == {}, kind
        assert len([p for p in result.files if "10-dsrctl-tunnel-" in p]) == 1, kind  # .network


def test_networkd_gue_brings_tunl0_up_and_leaves_the_port_to_the_unit() -> None:
    result = build(spec("systemd-networkd", '[[tunnel]]\nkind = "gue"\n'), detection(), [])
    assert [p for p in result.files if "10-dsrctl-tunnel-" in p] == [
        f"{NETWORK_DIR}/10-dsrctl-tunnel-tunl0.network"
    ]
    text = result.files[UNIT].content.decode()
    starts = [line for line in text.splitlines() if line.startswith("ExecStart")]
    assert starts == ["ExecStart=-/sbin/ip fou add port 19523 gue"]
    assert unit_part("systemd-networkd", *decap_of(spec())) == (
        (("dsrgpe0", decap_of(spec())[0][4][1]),),
        (19523,),
    )


def test_no_tunnel_no_file() -> None:
    result = Persistence("systemd-unit")
    add_decap(result, spec(tunnels=""), detection(), Rendered())
    assert (result.files, result.symlinks, result.dirs) == ({}, {}, {})


def test_ifupdown_stanzas_create_and_bring_up_every_device() -> None:
    result = build(spec("ifupdown"), detection(ifupdown_sources_dropins=True), [])
    assert set(result.files) == {"/etc/network/interfaces.d/dsrctl"}  # no unit
    content = result.files["/etc/network/interfaces.d/dsrctl"].content
    golden("ifupdown/dsrctl.tunnels", content)
    text = content.decode()
    assert (
        "auto dsrgpe0\niface dsrgpe0 inet manual\n"
        "    pre-up ip link show dev dsrgpe0 >/dev/null 2>&1 || ip link add dsrgpe0 type "
        "vxlan gpe external dstport 4790 nolearning\n"
        "    post-down ip link del dev dsrgpe0 || true\n"
    ) in text
    assert (
        "auto tunl0\niface tunl0 inet manual\n"
        "    pre-up ip fou add port 19523 gue 2>/dev/null || true\n"
    ) in text
