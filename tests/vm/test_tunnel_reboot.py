"""The decap side of [[tunnel]] after a reboot, on the distribution kernel (one VM boot):
the kinds this machine's kernel lacks, brought back by what dsrctl persisted.

The spec: gue (tunl0, the ipip fallback device, and fou port 19523), gre as dsrgre0 and
ip6ip6 as dsr6tnl0 (collect-metadata devices of dsrctl's), one VIP, an uplink (the MSS
clamp starts from its MTU; ip6ip6 names it: there is no IPv6 default route). Applied in a
namespace of the guest, the files under a root of their own; a "reboot" is a fresh
namespace with its uplink (the modules stay loaded, so it has tunl0, down, as a boot that
loaded ipip from modules-load.d has; no fou port, no dsrgre0, no dsr6tnl0), in which the
boot is replayed in its order:
systemd-sysctl (``sysctl -e``: the devices' keys are skipped, they do not exist yet),
dsrctl's units that multi-user.target wants, each ExecStart= as systemd runs it ('-' may
fail), then udev's run of systemd-sysctl for the new devices (``sysctl -e`` again).

dsrctl-tunnels.service (``linux.persist.addresses = "systemd-unit"``; every backend but
ifupdown writes the same unit) creates the devices, sets them and tunl0 up and adds the
port: ``dsrctl drift`` exits 2 before and 0 after. A second run of its lines (a restart:
everything exists, the '-' lines fail and are ignored) succeeds and changes nothing.

(A second scenario, the real systemd-networkd creating the same devices from ``.netdev``
files, timed out in the guest without a diagnosis; networkd gets the unit too.)
"""

from __future__ import annotations

import pytest

from tests.vm import vm

SPEC = """version = 1
[[vip]]
address = "192.0.2.100"
[[tunnel]]
kind = "gue"
[[tunnel]]
kind = "gre"
name = "dsrgre0"
[[tunnel]]
kind = "ip6ip6"
name = "dsr6tnl0"
uplink = "u0"
[linux.persist]
root = "/tmp/{scenario}/root"
addresses = "{backend}"
"""
BACKENDS = {"unit": "systemd-unit"}
UPLINK = (
    "ip -n {ns} link add u0 type veth peer name u1 && ip -n {ns} link set u0 up && "
    "ip -n {ns} link set u1 up && ip -n {ns} address add 198.18.0.2/24 dev u0 && "
    "ip -n {ns} route add default via 198.18.0.1 dev u0"
)
# Each ExecStart= of dsrctl's wanted units, as systemd runs it: '-' may fail.
REPLAY = r"""
units=/tmp/{scenario}/root/etc/systemd/system
for unit in $units/multi-user.target.wants/dsrctl-*.service; do
  grep '^ExecStart=' "$units/$(basename $unit)" | sed 's/^ExecStart=//' | while read -r line; do
    line=${{line//\/etc\//\/tmp\/{scenario}\/root\/etc\/}}
    case "$line" in
      -*) ip netns exec {ns} ${{line#-}} </dev/null || echo "ignored: ${{line#-}}" ;;
      *) ip netns exec {ns} $line </dev/null ;;
    esac
  done
done
"""
SYSCTL = "ip netns exec {ns} sysctl -e -q -p /tmp/{scenario}/root/etc/sysctl.d/90-dsrctl.conf"
STATE = "ip -n {ns} -d link show; ip -n {ns} fou show"


def _dsrctl(scenario: str, ns: str, *args: str) -> str:
    return (
        f"ip netns exec {ns} env DSRCTL_STATE_DIR=/tmp/{scenario}/state python3 -m dsrctl "
        + " ".join(args)
    )


def _steps() -> dict[str, str | vm.Python]:
    steps: dict[str, str | vm.Python] = {}
    for scenario, backend in BACKENDS.items():
        root = f"/tmp/{scenario}/root"
        spec = f"/tmp/{scenario}/spec.toml"
        server, rebooted = f"{scenario}srv", f"{scenario}rb"
        setup = [
            f"mkdir -p {root}/etc/sysctl.d {root}/etc/systemd/system {root}/etc/systemd/network",
            f"cat > {spec} <<'EOF'\n{SPEC.format(scenario=scenario, backend=backend)}EOF",
        ]
        for ns in (server, rebooted):  # systemd brings lo up first thing at boot
            setup += [f"ip netns add {ns}", f"ip -n {ns} link set lo up", UPLINK.format(ns=ns)]
        steps[f"{scenario}_setup"] = "\n".join(setup)
        steps[f"{scenario}_apply"] = _dsrctl(scenario, server, "apply", "--auto-approve", spec)
        steps[f"{scenario}_files"] = f"cd {root} && find . -type f -o -type l | sort"
        steps[f"{scenario}_before"] = _dsrctl(scenario, rebooted, "drift", spec) + " || echo $?"
        boot = [
            f"ip netns exec {rebooted} sysctl -q -w net.ipv4.conf.default.rp_filter=2",
            SYSCTL.format(ns=rebooted, scenario=scenario),
            REPLAY.format(ns=rebooted, scenario=scenario),
        ]
        boot += [SYSCTL.format(ns=rebooted, scenario=scenario), STATE.format(ns=rebooted)]
        steps[f"{scenario}_boot"] = "\n".join(boot)
        steps[f"{scenario}_after"] = _dsrctl(scenario, rebooted, "drift", spec)
        if scenario == "unit":  # a restart of the unit: everything exists already
            again = REPLAY.format(ns=rebooted, scenario=scenario)
            steps["unit_restart"] = again + "\n" + _dsrctl(scenario, rebooted, "drift", spec)
    return steps


STEPS = _steps()


@pytest.fixture(scope="module")
def boot() -> vm.Boot:
    return vm.run(STEPS)


@pytest.mark.parametrize("scenario", list(BACKENDS))
def test_the_decap_side_comes_back_after_a_reboot(boot: vm.Boot, scenario: str) -> None:
    boot[f"{scenario}_setup"].check()
    assert "Apply complete" in boot[f"{scenario}_apply"].check().stdout
    files = boot[f"{scenario}_files"].check().stdout
    assert "./etc/systemd/system/multi-user.target.wants/dsrctl-tunnels.service" in files
    before = boot[f"{scenario}_before"]
    assert before.stdout.rstrip().endswith("2"), before.describe()
    for resource in ("tunnel dsrgre0", "tunnel dsr6tnl0", "tunnel tunl0", "fou 19523"):
        assert f"DRIFT {resource}:" in before.stdout, before.describe()
    state = boot[f"{scenario}_boot"].check()
    assert "port 19523 gue" in state.stdout, state.describe()
    after = boot[f"{scenario}_after"]
    assert after.returncode == 0, after.describe() + state.describe()
    assert "in sync" in after.stdout


def test_a_restart_of_the_unit_changes_nothing(boot: vm.Boot) -> None:
    restart = boot["unit_restart"]
    assert restart.returncode == 0, restart.describe()
    assert "ignored: /sbin/ip link add dsrgre0 type gre external" in restart.stdout
    assert "ignored: /sbin/ip fou add port 19523 gue" in restart.stdout
    assert "in sync" in restart.stdout
