"""A reboot, simulated per backend, for VIP ranges (local routes in table local).

The method is test_persist_reboot.py's: apply in one namespace, take a fresh one (ARP
sysctls from the sysctl file, no VIP, no range), replay what the boot runs with the real
tool where Debian ships it, and ``dsrctl drift`` must exit 0 (it exits 2 before):

- systemd-unit: the unit's ExecStart= lines, as written (``ip route replace local ...``);
- systemd-networkd: the real networkd, on a drop-in for the operator's file and on
  dsrctl's own file for lo;
- netplan: the real ``netplan generate``, then the real networkd on what it rendered;
- ifupdown: the real ``ifup -a``;
- NetworkManager: libnm's keyfile parser reads and verifies the profile (the operator's
  and dsrctl's own) and validates every route attribute; its addresses and routes are
  added as NetworkManager adds them (the daemon needs D-Bus);
- ifcfg: the route files, run through the loop of network-scripts' ifup-routes
  (``handle_ip_file``), verbatim, under bash.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.netns.namespaces import Netns, NetnsFactory, sh
from tests.netns.reboot import (
    NM_LOAD,
    VIPS,
    apply_once,
    assert_in_sync,
    networkd_in,
    reboot,
)
from tests.persist_roots import (
    dpkg_installed,
    enable,
    ifcfg_root,
    ifupdown_root,
    netplan_generate,
    netplan_root,
    networkd_root,
    nm_root,
    systemd_root,
)

RANGES = ["198.18.5.0/24", "2001:db8:5::/120"]

# NetworkManager's own keyfile parser (libnm via python3-gi): addresses and routes with
# their attributes, each attribute checked by libnm's validator.
NM_ROUTES = (
    NM_LOAD
    + """
out = {"warnings": warnings, "addresses": [], "routes": []}
for setting in (connection.get_setting_ip4_config(), connection.get_setting_ip6_config()):
    for i in range(setting.get_num_addresses()):
        a = setting.get_address(i)
        out["addresses"].append(f"{a.get_address()}/{a.get_prefix()}")
    for i in range(setting.get_num_routes()):
        r = setting.get_route(i)
        attrs = {}
        for name in r.get_attribute_names():
            value = r.get_attribute(name)
            ok, known = NM.IPRoute.attribute_validate(name, value, r.get_family())
            if not ok:
                out["warnings"].append(f"invalid route attribute {name}")
            attrs[name] = value.unpack()
        out["routes"].append({"dest": f"{r.get_dest()}/{r.get_prefix()}",
                              "version": 4 if r.get_family() == 2 else 6, **attrs})
print(json.dumps(out))
"""
)

# network-scripts' ifup-routes, handle_ip_file(), verbatim but for the file argument.
IFUP_ROUTES = r"""
handle_ip_file() {
    local f t type= file=$1 proto="-4"
    f=${file##*/}
    t=${f%%-*}
    type=${t%%6}
    if [ "$type" != "$t" ]; then
        proto="-6"
    fi
    { cat "$file" ; echo ; } | while read line; do
        if [[ ! "$line" =~ $MATCH ]]; then
            /sbin/ip $proto $type add $line
        fi
    done
}
MATCH='^[[:space:]]*(\#.*)?$'
for file in "$@"; do
    [ -f "$file" ] && handle_ip_file "$file"
done
"""


def local_ranges(ns: Netns) -> set[str]:
    """The local routes of table local that cover more than one address."""
    found = set()
    for version in ("-4", "-6"):
        out = ns.run("ip", "-j", version, "route", "show", "table", "local", "type", "local")
        for route in json.loads(out.stdout or "[]"):
            if "/" in route["dst"]:
                found.add(route["dst"])
    return found - {"127.0.0.0/8"}


def wait_for_ranges(ns: Netns, wanted: list[str], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not set(wanted) <= local_ranges(ns):
        if time.monotonic() > deadline:
            raise AssertionError(f"the ranges {wanted} did not come back: {local_ranges(ns)}")
        time.sleep(0.1)


def test_systemd_unit_brings_the_ranges_back(make_netns: NetnsFactory, tmp_path: Path) -> None:
    root = systemd_root(tmp_path / "root")
    unit = root / "etc/systemd/system/dsrctl-vips.service"
    spec = apply_once(make_netns, root, ["198.18.0.1", *RANGES])
    verify = sh("systemd-analyze", "verify", str(unit), check=False)
    assert (verify.returncode, verify.stderr) == (0, ""), verify.stderr
    rebooted = reboot(make_netns, spec, root)
    assert local_ranges(rebooted) == set()
    for line in unit.read_text().splitlines():
        if line.startswith("ExecStart="):
            rebooted.run(*line.removeprefix("ExecStart=").split())
    assert local_ranges(rebooted) == set(RANGES)
    assert_in_sync(rebooted, spec)


def test_networkd_dropin_brings_the_ranges_back(make_netns: NetnsFactory, tmp_path: Path) -> None:
    root = networkd_root(tmp_path / "root")
    binds = {"/etc/systemd/network": root / "etc/systemd/network"}
    spec = apply_once(make_netns, root, [*VIPS, *RANGES])
    dropin = root / "etc/systemd/network/10-lo.network.d/90-dsrctl.conf"
    assert "[Route]\nDestination=198.18.5.0/24\nType=local\nTable=local\n" in dropin.read_text()
    rebooted = reboot(make_netns, spec, root, lo_up=False)
    with networkd_in(rebooted, binds, [*VIPS, "198.18.0.9/32"]):
        wait_for_ranges(rebooted, RANGES)
        assert_in_sync(rebooted, spec)


def test_networkd_own_file_brings_the_ranges_back(make_netns: NetnsFactory, tmp_path: Path) -> None:
    root = systemd_root(tmp_path / "root")
    enable(root, "systemd-networkd.service")
    spec = apply_once(make_netns, root, ["198.18.0.1", *RANGES], addresses="systemd-networkd")
    rebooted = reboot(make_netns, spec, root, lo_up=False)
    binds = {"/etc/systemd/network": root / "etc/systemd/network"}
    with networkd_in(rebooted, binds, ["198.18.0.1/32", "127.0.0.1/8"]):
        wait_for_ranges(rebooted, RANGES)
        assert_in_sync(rebooted, spec)


def test_netplan_brings_the_ranges_back_through_networkd(
    make_netns: NetnsFactory, tmp_path: Path
) -> None:
    root = netplan_root(tmp_path / "root")
    binds = {
        "/etc/systemd/network": root / "etc/systemd/network",
        "/run/systemd/network": root / "run/systemd/network",
    }
    spec = apply_once(make_netns, root, ["198.18.0.1", *RANGES])
    rebooted = reboot(make_netns, spec, root, lo_up=False)
    netplan_generate(root)  # what netplan's systemd generator does at every boot
    rendered = (root / "run/systemd/network/10-netplan-lo.network").read_text()
    assert "Destination=198.18.5.0/24" in rendered and "Type=local" in rendered
    with networkd_in(rebooted, binds, ["198.18.0.1/32", "198.18.0.9/32"]):
        wait_for_ranges(rebooted, RANGES)
        assert_in_sync(rebooted, spec)


def test_ifupdown_brings_the_ranges_back_with_ifup(
    make_netns: NetnsFactory, tmp_path: Path
) -> None:
    root = ifupdown_root(tmp_path / "root")
    state = tmp_path / "ifstate"
    state.mkdir()
    spec = apply_once(make_netns, root, [*VIPS, *RANGES])
    rebooted = reboot(make_netns, spec, root, lo_up=False)
    script = (
        f"mount --bind {root / 'etc/network'} /etc/network && "
        f"ifup -a --no-scripts --state-dir {state}"
    )
    rebooted.run("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
    assert local_ranges(rebooted) == set(RANGES)
    assert_in_sync(rebooted, spec)


def replay_networkmanager(ns: Netns, profile: Path) -> dict[str, object]:
    """Read the profile with libnm and configure what NetworkManager would."""
    parsed: dict[str, object] = json.loads(
        sh("/usr/bin/python3", "-c", NM_ROUTES, str(profile)).stdout
    )
    assert parsed["warnings"] == []
    for cidr in parsed["addresses"]:  # type: ignore[attr-defined]
        if cidr not in ns.addresses():
            ns.run("ip", "addr", "add", cidr, "dev", "lo")
    for route in parsed["routes"]:  # type: ignore[attr-defined]
        ns.run("ip", f"-{route['version']}", "route", "add", route.get("type", "unicast"),
               route["dest"], "dev", "lo", "table", str(route.get("table", 254)))  # fmt: skip
    return parsed


@pytest.mark.parametrize("own", [False, True], ids=["operators-profile", "own-profile"])
def test_networkmanager_profile_brings_the_ranges_back(
    make_netns: NetnsFactory, tmp_path: Path, own: bool
) -> None:
    if own:
        root = systemd_root(tmp_path / "root")
        (root / "etc/NetworkManager/system-connections").mkdir(parents=True)
        enable(root, "NetworkManager.service")
        dpkg_installed(root, "network-manager", "1.42.4-1")
        name = "dsrctl-lo.nmconnection"
    else:
        root = nm_root(tmp_path / "root")
        name = "lo.nmconnection"
    profile = root / "etc/NetworkManager/system-connections" / name
    spec = apply_once(make_netns, root, ["198.18.0.1", *RANGES], addresses="networkmanager")
    rebooted = reboot(make_netns, spec, root)
    parsed = replay_networkmanager(rebooted, profile)
    assert parsed["routes"] == [
        {"dest": "198.18.5.0/24", "version": 4, "table": 255, "type": "local"},
        {"dest": "2001:db8:5::/120", "version": 6, "table": 255, "type": "local"},
    ]
    assert_in_sync(rebooted, spec)
    assert profile.stat().st_mode & 0o777 == 0o600


def test_ifcfg_route_files_bring_the_ranges_back(make_netns: NetnsFactory, tmp_path: Path) -> None:
    root = ifcfg_root(tmp_path / "root")
    scripts = root / "etc/sysconfig/network-scripts"
    spec = apply_once(make_netns, root, ["198.18.0.1", *RANGES])
    assert (scripts / "route-lo").exists() and (scripts / "route6-lo").exists()
    rebooted = reboot(make_netns, spec, root)
    rebooted.run("ip", "addr", "add", "198.18.0.1/32", "dev", "lo", "label", "lo:0")
    rebooted.run("bash", "-c", IFUP_ROUTES, "ifup-routes",
                 str(scripts / "route-lo"), str(scripts / "route6-lo"))  # fmt: skip
    assert local_ranges(rebooted) == set(RANGES)
    assert_in_sync(rebooted, spec)
