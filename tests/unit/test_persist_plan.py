"""Choosing a backend and planning its files, links and directories: plain data, no host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dsrctl.diff import build_plan
from dsrctl.errors import SpecError
from dsrctl.kinds.directory import DirStep
from dsrctl.kinds.registry import step_from_record
from dsrctl.kinds.symlink import SymlinkStep
from dsrctl.linux.desired import build_desired, dropped_vips, vip_states
from dsrctl.linux.persistence import Persistence, build, choose_backend
from dsrctl.model import DIRECTORY, FileState, HostState
from dsrctl.plan import Plan
from dsrctl.spec import Spec, parse_spec
from dsrctl.steps import Phase
from providers.linux.persist import Claim, Detection, NmProfile
from providers.linux.persist.detect import detect
from state.ownership import Ownership
from tests.persist_roots import ifupdown_root, networkd_root, systemd_root

UNIT = "/etc/systemd/system/dsrctl-vips.service"
WANTS = "/etc/systemd/system/multi-user.target.wants"
LINK = f"{WANTS}/dsrctl-vips.service"
SYSCTL = "/etc/sysctl.d/90-dsrctl.conf"


def make_spec(*vips: str, root: str = "/", **persist: Any) -> Spec:
    return parse_spec(
        {
            "version": 1,
            "vip": [{"address": a} for a in vips],
            "linux": {"persist": {"root": root, **persist}},
        },
        "/etc/dsrctl/dsrctl.toml",
    )


def systemd_host(**facts: Any) -> Detection:
    return Detection(root="/", interface="lo", live=True, systemd=True, **facts)


def profile(content: bytes) -> NmProfile:
    return NmProfile("/etc/NetworkManager/system-connections/p.nmconnection", content, 0o600)


def plan_for(spec: Spec, detection: Detection, host: HostState, ownership: Ownership) -> Plan:
    persistence = build(spec, detection, vip_states(spec), dropped_vips(spec, ownership))
    return build_plan(build_desired(spec, ownership, persistence), host, ownership)


def empty_host(spec: Spec) -> HostState:
    return HostState(sysctls={key: value for key, value in spec.linux.all_sysctls().items()})


def test_systemd_unit_plan_creates_directory_then_unit_then_link(tmp_path: Path) -> None:
    spec = make_spec("192.0.2.1", root=str(tmp_path))
    plan = plan_for(spec, systemd_host(), empty_host(spec), Ownership())
    root = str(tmp_path)
    assert [(s.kind, s.action, s.resource, s.phase) for s in plan.steps] == [
        ("address", "create", "address:lo:192.0.2.1/32", Phase.ADD_ADDRESSES),
        ("dir", "create", f"dir:{root}{WANTS}", Phase.PERSIST),
        ("file", "create", f"file:{root}{SYSCTL}", Phase.PERSIST),
        ("file", "create", f"file:{root}{UNIT}", Phase.PERSIST),
        ("symlink", "create", f"symlink:{root}{LINK}", Phase.PERSIST),
    ]
    link = plan.steps[-1]
    assert (link.before, link.after, link.note) == (None, UNIT, "")


def test_a_converged_host_plans_nothing(tmp_path: Path) -> None:
    spec = make_spec("192.0.2.1", root=str(tmp_path))
    persistence = build(spec, systemd_host(), vip_states(spec))
    desired = build_desired(spec, Ownership(), persistence)
    host = empty_host(spec)
    host.addresses = {"lo": dict(desired.addresses["lo"])}
    host.files = dict(desired.files)
    host.symlinks = dict(desired.symlinks)
    host.dirs = dict(desired.dirs)
    assert build_plan(desired, host, Ownership()).empty


def test_reloads_are_named_only_for_the_live_root() -> None:
    spec = make_spec("192.0.2.1")
    running = systemd_host(running=frozenset({"systemd"}))
    notes = {
        s.resource: s.note for s in plan_for(spec, running, empty_host(spec), Ownership()).steps
    }
    assert notes[f"file:{UNIT}"] == "then systemctl daemon-reload"
    assert notes[f"symlink:{LINK}"] == "then systemctl daemon-reload"
    assert notes[f"file:{SYSCTL}"] == ""  # systemd-sysctl reads it at boot; nothing to reload
    stopped = systemd_host()  # systemd installed under the root but not running it
    assert all(not s.note for s in plan_for(spec, stopped, empty_host(spec), Ownership()).steps)


def test_way_back_removes_files_and_links_then_the_directory_last(tmp_path: Path) -> None:
    root = str(tmp_path)
    ownership = Ownership()
    for resource in (f"dir:{root}{WANTS}", f"file:{root}{UNIT}", f"symlink:{root}{LINK}"):
        ownership.remember(resource, created=True, original=None)
    ownership.remember("dir:/etc/systemd/network", created=False, original=DIRECTORY)
    spec = make_spec("192.0.2.1", root=root, addresses="none")
    host = empty_host(spec)
    host.addresses = {"lo": {}}
    host.files = {f"{root}{UNIT}": FileState(b"[Unit]\n")}
    host.symlinks = {f"{root}{LINK}": UNIT}
    host.dirs = {f"{root}{WANTS}": DIRECTORY}
    persistence = build(spec, systemd_host(), vip_states(spec))
    desired = build_desired(spec, ownership, persistence)
    # A directory that was there before dsrctl is not even read: it stays whatever happens.
    assert "/etc/systemd/network" not in desired.dirs
    plan = build_plan(desired, host, ownership)
    persist = [(s.action, s.resource, s.phase, s.note) for s in plan.steps if s.kind != "address"]
    assert persist == [
        ("create", f"file:{root}{SYSCTL}", Phase.PERSIST, ""),
        ("delete", f"file:{root}{UNIT}", Phase.PERSIST, "created by dsrctl"),
        ("delete", f"symlink:{root}{LINK}", Phase.PERSIST, "created by dsrctl"),
        ("delete", f"dir:{root}{WANTS}", Phase.PRUNE, "created by dsrctl"),
    ]


def test_a_link_that_was_there_before_is_put_back() -> None:
    ownership = Ownership()
    ownership.remember(f"symlink:{LINK}", created=False, original="/lib/old.service")
    spec = make_spec("192.0.2.1", addresses="none")
    host = empty_host(spec)
    host.symlinks = {LINK: UNIT}
    (step,) = [
        s for s in plan_for(spec, systemd_host(), host, ownership).steps if s.kind == "symlink"
    ]
    assert (step.action, step.before, step.after) == ("update", UNIT, "/lib/old.service")
    assert step.note == "restore the link before dsrctl"


def test_symlink_and_dir_steps_survive_the_journal_and_invert() -> None:
    link = SymlinkStep(f"symlink:{LINK}", None, UNIT, Phase.PERSIST)
    folder = DirStep(f"dir:{WANTS}", None, DIRECTORY, Phase.PERSIST)
    for step in (link, folder):
        assert step_from_record(step.to_record()) == step
        back = step.inverse()
        assert (back.before, back.after, back.action) == (step.after, None, "delete")


def test_auto_refuses_two_tools_in_every_command_with_the_key_named() -> None:
    detection = systemd_host(
        claims=(
            Claim(
                "systemd-networkd", "/etc/systemd/network/10-lo.network", "[Match] Name=lo", True
            ),
            Claim("ifupdown", "/etc/network/interfaces", "auto lo, iface lo inet loopback", True),
        )
    )
    with pytest.raises(SpecError) as caught:
        choose_backend(make_spec("192.0.2.1"), detection)
    assert caught.value.key == "linux.persist.addresses"
    assert str(caught.value).startswith(
        '/etc/dsrctl/dsrctl.toml: linux.persist.addresses = "auto": several tools configure lo'
    )
    explicit = make_spec("192.0.2.1", addresses="ifupdown")
    host = systemd_host(
        claims=detection.claims, ifupdown_sources_dropins=True, services=frozenset({"ifupdown"})
    )
    backend, notes = choose_backend(explicit, host)
    assert backend == "ifupdown"
    assert notes == [
        "WARNING: systemd-networkd (/etc/systemd/network/10-lo.network: [Match] Name=lo): "
        "systemd-networkd manages lo and removes the addresses it was not told about whenever "
        "it configures the link (KeepConfiguration=no), so it may remove the VIPs that "
        "ifupdown adds; choose linux.persist.addresses = 'systemd-networkd', or set "
        "KeepConfiguration=yes in that file"
    ]


@pytest.mark.parametrize(
    ("addresses", "vips", "detection", "words"),
    [
        (
            "networkmanager",
            ["192.0.2.1"],
            systemd_host(nm_version="1.40.4-1"),
            "NetworkManager 1.40.4-1 has no loopback profiles (1.42 and later have them), so "
            "it cannot bring the VIPs on lo back after a reboot; use 'systemd-unit'",
        ),
        (
            "ifcfg",
            ["192.0.2.1"],
            systemd_host(),
            "there is no /etc/sysconfig/network-scripts/ifcfg-lo: network-scripts bring up the "
            "aliases of lo only when they bring up lo itself (use 'systemd-unit')",
        ),
        (
            "ifcfg",
            ["2001:db8::1"],
            systemd_host(ifcfg_parent=True),
            "ifcfg cannot keep VIP 2001:db8::1/128 across a reboot: network-scripts have no "
            "alias files for IPv6 addresses",
        ),
        (
            "networkmanager",
            ["2001:db8::1"],
            systemd_host(nm_profiles=(profile(b"[ipv4]\nmethod=manual\n"),)),
            "networkmanager cannot keep VIP 2001:db8::1/128 across a reboot: NetworkManager "
            "profiles cannot keep an address deprecated",
        ),
        (
            "networkmanager",
            ["192.0.2.1"],
            systemd_host(nm_profiles=(profile(b"[ipv4]\nmethod=disabled\n"),)),
            "sets ipv4 method=disabled, which does not configure the addresses it lists",
        ),
        ("ifupdown", ["192.0.2.1"], systemd_host(), "does not source /etc/network/interfaces.d"),
        ("netplan", ["192.0.2.1"], systemd_host(), "netplan renders nothing for lo"),
        (
            "netplan",
            ["192.0.2.1"],
            systemd_host(netplan_id="lo", netplan_renderer="NetworkManager"),
            "cannot activate on a loopback device",
        ),
        (
            "systemd-unit",
            ["192.0.2.1"],
            Detection("/", "lo", live=True, systemd=False),
            "systemd does not run",
        ),
    ],
)
def test_backends_that_cannot_work_here_are_refused(
    addresses: str, vips: list[str], detection: Detection, words: str
) -> None:
    spec = make_spec(*vips, addresses=addresses)
    with pytest.raises(SpecError) as caught:
        build(spec, detection, vip_states(spec))
    assert words in caught.value.reason
    assert caught.value.key == "linux.persist.addresses"


def test_networkd_on_a_netplan_host_extends_netplans_rendered_file() -> None:
    rendered = "/run/systemd/network/10-netplan-lo.network"
    detection = systemd_host(
        services=frozenset({"systemd-networkd"}),
        claims=(Claim("netplan", rendered, "renders id 'lo' for networkd", True),),
        networkd_network=rendered,
        netplan_id="lo",
        netplan_renderer="networkd",
    )
    spec = make_spec("2001:db8::1", addresses="networkd")
    result = build(spec, detection, vip_states(spec))
    assert result.backend == "systemd-networkd"  # the old name still works
    assert list(result.files) == ["/etc/systemd/network/10-netplan-lo.network.d/90-dsrctl.conf"]
    assert result.notes == []  # netplan's file is the one extended: no rival to warn about
    with pytest.raises(SpecError, match="netplan cannot turn off duplicate address detection"):
        build(make_spec("2001:db8::1", addresses="netplan"), detection, vip_states(spec))


def test_auto_without_systemd_persists_nothing_and_says_so(tmp_path: Path) -> None:
    spec = make_spec("192.0.2.1", root=str(tmp_path))
    result = build(spec, detect(str(tmp_path), "lo"), vip_states(spec))
    assert (result.backend, result.files, result.resources()) == ("none", {}, set())
    assert result.notes == [
        f"the VIPs are not persisted: no tool configures lo at boot and systemd does not boot "
        f"{tmp_path}; add them at boot yourself"
    ]


def test_auto_on_real_looking_roots(tmp_path: Path) -> None:
    networkd = networkd_root(tmp_path / "networkd")
    spec = make_spec("192.0.2.1", root=str(networkd))
    result = build(spec, detect(str(networkd), "lo"), vip_states(spec))
    assert result.backend == "systemd-networkd"
    assert list(result.files) == [f"{networkd}/etc/systemd/network/10-lo.network.d/90-dsrctl.conf"]
    assert result.dirs == {f"{networkd}/etc/systemd/network/10-lo.network.d": DIRECTORY}
    debian = ifupdown_root(tmp_path / "debian")
    spec = make_spec("192.0.2.1", root=str(debian))
    assert build(spec, detect(str(debian), "lo"), vip_states(spec)).backend == "ifupdown"
    plain = systemd_root(tmp_path / "plain")
    spec = make_spec("192.0.2.1", root=str(plain))
    assert build(spec, detect(str(plain), "lo"), vip_states(spec)).backend == "systemd-unit"


def test_dropped_vips_are_the_ones_dsrctl_added() -> None:
    ownership = Ownership()
    ownership.remember("address:lo:192.0.2.9/32", created=True, original=None)
    ownership.remember("address:lo:192.0.2.8/32", created=False, original={"address": "x"})
    ownership.remember("address:eth0:192.0.2.7/32", created=True, original=None)
    ownership.remember("address:lo:192.0.2.1/32", created=True, original=None)
    assert dropped_vips(make_spec("192.0.2.1"), ownership) == {"192.0.2.9/32"}


def test_persistence_reports_its_resources() -> None:
    result = Persistence(
        "x", files={"/a": FileState(b"")}, symlinks={"/b": "/a"}, dirs={"/c": DIRECTORY}
    )
    assert result.resources() == {"file:/a", "symlink:/b", "dir:/c"}
