"""[[tunnel]] on the distribution kernel (one VM boot for the module): every kind that
this machine's kernel lacks (ipip, gue, gre, ip6ip6, ip6gre), through the real CLI in a
namespace of the guest.

Two specs, applied one after the other (one collect-metadata device per kind and
namespace, so the kinds share a spec and the two ways of naming a device get one each):
- "a": collect-metadata devices: gue into dsrgue0 (ipip external) with fou port 19523,
  gre dsrgre0, ip6ip6 dsrtun6, ip6gre dsrgre6;
- "b": the modules' fallback devices: ipip tunl0, gre gre0, ip6ip6 ip6tnl0, ip6gre ip6gre0.
For each: apply loads the modules, creates (or sets up) the devices and the port; a second
apply changes nothing; deleting devices and the port (or, for the fallback devices, which
cannot be deleted, setting them down) is drift, exit 2; apply repairs it; rolling back
both applies removes the devices and the port and unloads the modules dsrctl loaded.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.vm import vm

SPECS = {
    "a": """
[[tunnel]]
kind = "gue"
name = "dsrgue0"
[[tunnel]]
kind = "gre"
name = "dsrgre0"
[[tunnel]]
kind = "ip6ip6"
name = "dsrtun6"
[[tunnel]]
kind = "ip6gre"
name = "dsrgre6"
""",
    "b": """
[[tunnel]]
kind = "ipip"
[[tunnel]]
kind = "gre"
[[tunnel]]
kind = "ip6ip6"
[[tunnel]]
kind = "ip6gre"
""",
}
DEVICES = {
    "a": {
        "dsrgue0": ("ipip", True),
        "dsrgre0": ("gre", True),
        "dsrtun6": ("ip6tnl", True),
        "dsrgre6": ("ip6gre", True),
    },
    "b": {
        "tunl0": ("ipip", False),
        "gre0": ("gre", False),
        "ip6tnl0": ("ip6tnl", False),
        "ip6gre0": ("ip6gre", False),
    },
}
MODULES = {
    "a": {"fou", "ipip", "ip_gre", "ip6_tunnel", "ip6_gre"},
    "b": {"ipip", "ip_gre", "ip6_tunnel", "ip6_gre"},
}
BREAK = {
    "a": "ip -n srv link del dsrgue0; ip -n srv link del dsrgre0; ip -n srv link set dsrtun6 down;"
    " ip -n srv link del dsrgre6; ip -n srv fou del port 19523",
    "b": "for d in tunl0 gre0 ip6tnl0 ip6gre0; do ip -n srv link set $d down; done",
}
SEPARATOR = "@@@"
STATE = (
    f"ip -n srv -d -j link show; echo {SEPARATOR};"
    f" ip -n srv fou show 2>/dev/null || true; echo {SEPARATOR};"
    " awk '{print $1}' /proc/modules | sort"
)


def _dsrctl(scenario: str, *args: str) -> str:
    return (
        f"ip netns exec srv env DSRCTL_STATE_DIR=/tmp/{scenario}/state python3 -m dsrctl "
        + " ".join(args)
    )


def _steps() -> dict[str, str | vm.Python]:
    # An uplink with default routes of both families: the MSS clamp of a tunnel starts
    # from the MTU of the device the encapsulated packets arrive on.
    steps: dict[str, str | vm.Python] = {
        "netns": "ip netns add srv && ip -n srv link set lo up"
        " && ip -n srv link add u0 type veth peer name u1"
        " && ip -n srv link set u0 up && ip -n srv link set u1 up"
        " && ip -n srv address add 198.18.1.2/24 dev u0"
        " && ip -n srv address add 2001:db8:1::2/64 dev u0 nodad"
        " && ip -n srv route add default via 198.18.1.1"
        " && ip -n srv -6 route add default via 2001:db8:1::1"
    }
    for scenario, tunnels in SPECS.items():
        spec = f"/tmp/{scenario}/spec.toml"
        body = (
            f'version = 1\n[[vip]]\naddress = "198.18.0.10"\n{tunnels}\n'
            f'[linux.persist]\nroot = "/tmp/{scenario}"\n'
        )
        steps[f"{scenario}_spec"] = (
            f"mkdir -p /tmp/{scenario}/etc/sysctl.d && cat > {spec} <<'EOF'\n{body}EOF"
        )
        steps[f"{scenario}_apply"] = _dsrctl(scenario, "apply", "--auto-approve", spec)
        steps[f"{scenario}_applied"] = (
            STATE + f"; echo {SEPARATOR}; cat /tmp/{scenario}/etc/modules-load.d/dsrctl.conf"
        )
        steps[f"{scenario}_again"] = _dsrctl(scenario, "apply", "--auto-approve", spec)
        steps[f"{scenario}_break"] = BREAK[scenario]
        steps[f"{scenario}_drift"] = _dsrctl(scenario, "drift", spec)
        steps[f"{scenario}_repair"] = _dsrctl(scenario, "apply", "--auto-approve", spec)
        steps[f"{scenario}_repaired"] = STATE
        steps[f"{scenario}_rollback"] = (
            _dsrctl(scenario, "rollback", "--auto-approve")
            + " && "
            + _dsrctl(scenario, "rollback", "--auto-approve")
        )
        steps[f"{scenario}_rolled_back"] = (
            STATE + f"; ! test -e /tmp/{scenario}/etc/modules-load.d/dsrctl.conf"
        )
    return steps


STEPS = _steps()


@pytest.fixture(scope="module")
def boot() -> vm.Boot:
    return vm.run(STEPS)


def _state(result: vm.Result) -> tuple[dict[str, dict[str, Any]], str, set[str]]:
    result.check()
    links, fou, modules = result.stdout.split(SEPARATOR)[:3]
    by_name = {link["ifname"]: link for link in json.loads(links)}
    return by_name, fou, set(modules.split())


def _device_ok(link: dict[str, Any], kind: str, external: bool) -> bool:
    info = link.get("linkinfo", {})
    data = info.get("info_data", {})
    return (
        info.get("info_kind") == kind
        and bool(data.get("external", False)) == external
        and "UP" in link.get("flags", [])
    )


@pytest.mark.parametrize("scenario", list(SPECS))
def test_apply_creates_the_devices_port_and_modules(boot: vm.Boot, scenario: str) -> None:
    apply = boot[f"{scenario}_apply"].check()
    assert "Apply complete" in apply.stdout, apply.describe()
    links, fou, modules = _state(boot[f"{scenario}_applied"])
    for name, (kind, external) in DEVICES[scenario].items():
        assert name in links and _device_ok(links[name], kind, external), json.dumps(
            links.get(name)
        )
    assert MODULES[scenario] <= modules, modules
    if scenario == "a":
        assert "port 19523 gue" in fou
    conf = boot[f"{scenario}_applied"].stdout.split(SEPARATOR)[3].split()
    assert [word for word in conf if word in MODULES["a"]] == sorted(MODULES[scenario])


@pytest.mark.parametrize("scenario", list(SPECS))
def test_second_apply_changes_nothing(boot: vm.Boot, scenario: str) -> None:
    assert "No changes" in boot[f"{scenario}_again"].check().stdout


@pytest.mark.parametrize("scenario", list(SPECS))
def test_deleted_or_down_devices_are_drift_and_apply_repairs(boot: vm.Boot, scenario: str) -> None:
    boot[f"{scenario}_break"].check()
    drift = boot[f"{scenario}_drift"]
    assert drift.returncode == 2, drift.describe()
    for name in DEVICES[scenario]:
        assert f"DRIFT tunnel {name}:" in drift.stdout, drift.describe()
    if scenario == "a":
        assert "DRIFT fou 19523:" in drift.stdout
    boot[f"{scenario}_repair"].check()
    links, fou, _ = _state(boot[f"{scenario}_repaired"])
    for name, (kind, external) in DEVICES[scenario].items():
        assert name in links and _device_ok(links[name], kind, external), json.dumps(
            links.get(name)
        )
    if scenario == "a":
        assert "port 19523 gue" in fou


@pytest.mark.parametrize("scenario", list(SPECS))
def test_rollback_removes_what_dsrctl_created(boot: vm.Boot, scenario: str) -> None:
    boot[f"{scenario}_rollback"].check()
    links, fou, modules = _state(boot[f"{scenario}_rolled_back"])
    assert not set(DEVICES[scenario]) & set(links), sorted(links)
    assert "19523" not in fou
    assert not MODULES[scenario] & modules, modules
