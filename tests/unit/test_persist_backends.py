"""Planning the backends that create files of their own where the operator has none
(systemd-networkd, NetworkManager), network-scripts (ifcfg), and the warnings about
another tool that configures lo at boot. Plain data and throwaway roots, no host."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dsrctl.errors import SpecError
from dsrctl.linux.desired import build_desired, vip_states
from dsrctl.linux.persistence import build, choose_backend
from dsrctl.model import AddressState, HostState
from dsrctl.spec import Spec, parse_spec
from providers.linux.persist import Claim, Detection
from providers.linux.persist.detect import detect
from state.ownership import Ownership
from tests.persist_roots import (
    dpkg_installed,
    ifcfg_root,
    ifupdown_root,
    networkd_root,
    nm_root,
    systemd_root,
    write,
)

SCRIPTS = "/etc/sysconfig/network-scripts"


def make_spec(*vips: dict[str, str], root: str = "/", **persist: Any) -> Spec:
    return parse_spec(
        {"version": 1, "vip": list(vips), "linux": {"persist": {"root": root, **persist}}},
        "/etc/dsrctl/dsrctl.toml",
    )


def host(**facts: Any) -> Detection:
    return Detection(root="/", interface="lo", live=True, systemd=True, **facts)


def test_ifcfg_writes_one_alias_per_vip_and_labels_the_unlabelled(tmp_path: Path) -> None:
    root = ifcfg_root(tmp_path)
    spec = make_spec(
        {"address": "192.0.2.100", "label": "lo:1"}, {"address": "198.18.0.1"}, root=str(root)
    )
    persistence = build(spec, detect(str(root), "lo"), vip_states(spec))
    assert persistence.backend == "ifcfg"
    assert sorted(persistence.files) == [
        f"{root}{SCRIPTS}/ifcfg-lo:0",
        f"{root}{SCRIPTS}/ifcfg-lo:1",
    ]
    assert persistence.labels == {"198.18.0.1/32": "lo:0"}
    assert persistence.notes == []
    # The runtime label follows the alias, so that drift is clean after a reboot.
    desired = build_desired(spec, Ownership(), persistence)
    assert desired.addresses["lo"]["198.18.0.1/32"] == AddressState("198.18.0.1", 32, "lo:0")
    assert desired.addresses["lo"]["192.0.2.100/32"].label == "lo:1"


def test_ifcfg_leaves_the_operators_alias_files_alone(tmp_path: Path) -> None:
    root = ifcfg_root(tmp_path)
    write(root, f"{SCRIPTS}/ifcfg-lo:0", "DEVICE=lo:0\nIPADDR=198.18.0.50\nPREFIX=32\n")
    spec = make_spec({"address": "198.18.0.1"}, root=str(root))
    persistence = build(spec, detect(str(root), "lo"), vip_states(spec))
    assert list(persistence.files) == [f"{root}{SCRIPTS}/ifcfg-lo:1"]
    same = make_spec({"address": "198.18.0.50"}, root=str(root))
    with pytest.raises(SpecError) as caught:
        build(same, detect(str(root), "lo"), vip_states(same))
    assert caught.value.reason == (
        f"ifcfg cannot keep the VIPs across a reboot: {SCRIPTS}/ifcfg-lo:0 already configures "
        "VIP 198.18.0.50, and network-scripts would add it twice at boot: remove that file "
        "(dsrctl writes its own alias for the VIP) or remove the VIP from the spec"
    )


def test_systemd_unit_on_a_network_scripts_host_warns_about_labelled_vips() -> None:
    claim = Claim("ifcfg", f"{SCRIPTS}/ifcfg-lo", "DEVICE=lo", True)
    detection = host(claims=(claim,), ifcfg_parent=True)
    plain = make_spec({"address": "198.18.0.1"}, addresses="systemd-unit")
    assert choose_backend(plain, detection) == ("systemd-unit", [])
    labelled = make_spec({"address": "192.0.2.1", "label": "lo:1"}, addresses="systemd-unit")
    assert choose_backend(labelled, detection)[1] == [
        f"WARNING: ifcfg ({SCRIPTS}/ifcfg-lo: DEVICE=lo): at boot the network-scripts' "
        "ifup-aliases removes every lo:* alias that has no ifcfg-lo:<name> file, so the "
        "labelled VIPs (lo:1) that systemd-unit adds would go; choose "
        "linux.persist.addresses = 'ifcfg', or drop the labels"
    ]


def test_networkmanager_without_a_loopback_profile_gets_dsrctls_own(tmp_path: Path) -> None:
    root = nm_root(tmp_path)
    (root / "etc/NetworkManager/system-connections/lo.nmconnection").unlink()
    spec = make_spec({"address": "198.18.0.1"}, root=str(root), addresses="networkmanager")
    persistence = build(spec, detect(str(root), "lo"), vip_states(spec))
    path = f"{root}/etc/NetworkManager/system-connections/dsrctl-lo.nmconnection"
    assert list(persistence.files) == [path]
    assert persistence.files[path].mode == 0o600
    assert persistence.notes == [
        f"the NetworkManager version on {root} is unknown: loopback profiles need "
        "NetworkManager 1.42 or later, and an older one would not bring the VIPs back after "
        "a reboot (check with 'NetworkManager --version')"
    ]
    dpkg_installed(root, "network-manager", "1.42.4-1")
    assert build(spec, detect(str(root), "lo"), vip_states(spec)).notes == []
    dpkg_installed(root, "network-manager", "1.30.6-1")
    with pytest.raises(SpecError, match=r"NetworkManager 1\.30\.6-1 has no loopback profiles"):
        build(spec, detect(str(root), "lo"), vip_states(spec))


def test_networkmanager_not_enabled_is_a_warning(tmp_path: Path) -> None:
    root = systemd_root(tmp_path)
    dpkg_installed(root, "network-manager", "1.42.4-1")
    (root / "etc/NetworkManager").mkdir()
    spec = make_spec({"address": "198.18.0.1"}, root=str(root), addresses="networkmanager")
    assert build(spec, detect(str(root), "lo"), vip_states(spec)).notes == [
        f"WARNING: NetworkManager is not enabled on {root}: nothing activates "
        "/etc/NetworkManager/system-connections/dsrctl-lo.nmconnection at boot; enable it "
        "(systemctl enable NetworkManager) or choose another backend"
    ]


def test_an_active_loopback_profile_is_a_warning_for_another_backend() -> None:
    claim = Claim(
        "networkmanager",
        "/etc/NetworkManager/system-connections/lo.nmconnection",
        "type=loopback",
        True,
    )
    spec = make_spec({"address": "198.18.0.1"}, addresses="systemd-unit")
    assert choose_backend(spec, host(claims=(claim,)))[1] == [
        "WARNING: networkmanager (/etc/NetworkManager/system-connections/lo.nmconnection: "
        "type=loopback): NetworkManager gives lo the addresses of this active loopback "
        "profile whenever it activates or reapplies it, and may remove the VIPs that "
        "systemd-unit adds; choose linux.persist.addresses = 'networkmanager', or remove "
        "the profile"
    ]


@pytest.mark.parametrize(
    ("keep", "vip", "warned"),
    [
        (None, "198.18.0.1", True),
        ("no", "198.18.0.1", True),
        ("static", "198.18.0.1", False),
        ("static", "2001:db8::1", True),  # preferred_lft 0: "dynamic" to networkd
        ("yes", "2001:db8::1", False),
    ],
)
def test_networkd_that_keeps_foreign_addresses_is_no_threat(
    keep: str | None, vip: str, warned: bool
) -> None:
    claim = Claim("systemd-networkd", "/etc/systemd/network/10-lo.network", "[Match] Name=lo", True)
    spec = make_spec({"address": vip}, addresses="systemd-unit")
    (note,) = choose_backend(spec, host(claims=(claim,), networkd_keep=keep))[1]
    assert note.startswith("WARNING: ") is warned


def test_networkd_own_file_for_lo_when_no_file_selects_it(tmp_path: Path) -> None:
    root = systemd_root(tmp_path)
    spec = make_spec({"address": "198.18.0.1"}, root=str(root), addresses="systemd-networkd")
    persistence = build(spec, detect(str(root), "lo"), vip_states(spec))
    assert list(persistence.files) == [f"{root}/etc/systemd/network/10-dsrctl-lo.network"]
    assert persistence.dirs == {}
    assert persistence.notes == [
        f"WARNING: systemd-networkd is not enabled on {root}: nothing applies "
        "/etc/systemd/network/10-dsrctl-lo.network at boot; enable it (systemctl enable "
        "systemd-networkd) or choose another backend"
    ]
    other = parse_spec(
        {
            "version": 1,
            "vip": [{"address": "198.18.0.1"}],
            "linux": {"interface": "dummy0", "persist": {"addresses": "networkd"}},
        },
        "/etc/dsrctl/dsrctl.toml",
    )
    with pytest.raises(SpecError, match=r"no \.network file selects dummy0"):
        build(other, Detection("/", "dummy0", live=False, systemd=True), vip_states(other))


def test_labels_reach_the_plan_as_an_address_change(tmp_path: Path) -> None:
    from dsrctl.diff import build_plan

    root = ifcfg_root(tmp_path)
    spec = make_spec({"address": "198.18.0.1"}, root=str(root))
    persistence = build(spec, detect(str(root), "lo"), vip_states(spec))
    desired = build_desired(spec, Ownership(), persistence)
    current = HostState(
        sysctls=dict(spec.linux.all_sysctls()),
        addresses={"lo": {"198.18.0.1/32": AddressState("198.18.0.1", 32, "lo")}},
    )
    steps = [s for s in build_plan(desired, current, Ownership()).steps if s.kind == "address"]
    assert [(s.action, s.before.label, s.after.label) for s in steps] == [("update", "lo", "lo:0")]


@pytest.mark.parametrize(
    ("make_root", "backend"),
    [
        (systemd_root, "systemd-unit"),
        (lambda root: root, "none"),  # no systemd: nothing persisted, and the plan says so
        (networkd_root, "systemd-networkd"),
        (ifupdown_root, "ifupdown"),
    ],
)
def test_the_example_spec_plans_on_common_hosts(
    tmp_path: Path, make_root: Callable[[Path], Path], backend: str
) -> None:
    from dsrctl.spec import load_spec

    example = load_spec(str(Path(__file__).parents[2] / "examples" / "dsrctl.toml"))
    assert example.linux.persist.addresses == "auto"
    root = make_root(tmp_path)
    assert build(example, detect(str(root), "lo"), vip_states(example)).backend == backend


def test_a_kubernetes_node_is_named_by_interface_or_kubelet_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dsrctl.model import ReadScope
    from providers.linux import addresses, host, rtnl

    def fake_links(names: Any) -> Any:
        links = {"lo": rtnl.Link(1, "lo", True)}
        if "kube-ipvs0" in names and with_ipvs:
            links["kube-ipvs0"] = rtnl.Link(5, "kube-ipvs0", False)
        return links, {name: {} for name in links}

    monkeypatch.setattr(addresses, "read_interfaces", fake_links)
    kubelet = write(tmp_path, "/var/lib/kubelet/config.yaml", "kind: KubeletConfiguration\n")
    monkeypatch.setattr(host, "KUBERNETES_HINT_FILES", (str(kubelet), str(tmp_path / "none")))
    scope = ReadScope(interface="lo", sysctl_keys=(), files=())
    linux = host.LinuxHost()
    with_ipvs = True
    (warning,) = linux.read(scope).facts["warnings"]
    assert warning.startswith(
        f"this host looks like a Kubernetes node (kube-ipvs0, {kubelet} exists): kube-proxy "
        "in IPVS mode with strictARP sets net.ipv4.conf.all.arp_ignore=1 as well"
    )
    with_ipvs = False
    (warning,) = linux.read(scope).facts["warnings"]
    assert f"Kubernetes node ({kubelet} exists)" in warning
    kubelet.unlink()
    assert linux.read(scope).facts["warnings"] == []
