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

- "unit" (``linux.persist.addresses = "systemd-unit"``; every backend but ifupdown and
  systemd-networkd writes the same unit): dsrctl-tunnels.service creates the devices,
  sets them and tunl0 up and adds the port. A second run of its lines (a restart:
  everything exists, the '-' lines fail and are ignored) succeeds and changes nothing.
- "networkd" (``systemd-networkd``, the operator's 10-lo.network): the unit adds only the
  fou port (networkd 252 sends FOU_ATTR_IPPROTO=0, which this kernel refuses: see
  providers/linux/persist/networkd.py); then the real systemd-networkd, started in the
  namespace on the root's /etc/systemd/network (tests/netns/reboot.py's way), creates
  dsrgre0 and dsr6tnl0 from dsrctl's .netdev files, brings them and tunl0 up from its
  .network files and puts the VIP on lo from the drop-in; its log has no warning about
  dsrctl's files.

``dsrctl drift`` exits 2 before and 0 after, in both.
"""

from __future__ import annotations

import shlex

import pytest

from tests.persist_roots import NETWORKD_LO
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
BACKENDS = {"unit": "systemd-unit", "networkd": "systemd-networkd"}
NETWORKD = "/lib/systemd/systemd-networkd"
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
# systemd-networkd in the namespace on the root's /etc/systemd/network (tests/netns/reboot.py),
# waited for by the clock (an 'ip' round costs about 0.5 s in the guest), its log printed
NETWORKD_RUN = (
    "ip netns exec {ns} unshare --mount --propagation private sh -c '"
    "set -e; mount -o remount,bind,ro /sys; mkdir -p /run/systemd; "
    "mount -t tmpfs tmpfs /run/systemd; mkdir -p /run/systemd/netif /run/systemd/network; "
    "chown systemd-network:systemd-network /run/systemd/netif; "
    "mount --bind /tmp/{scenario}/root/etc/systemd/network /etc/systemd/network; "
    f"SYSTEMD_LOG_TARGET=console exec {NETWORKD}' > /tmp/networkd.log 2>&1 &\n"
    "end=$(( $(date +%s) + 90 ))\n"
    "until ip -n {ns} -br link show up | grep -c -E '^(tunl0|dsrgre0|dsr6tnl0)@' "
    "| grep -qx 3 && ip -n {ns} -br addr show dev lo | grep -q 192.0.2.100; do\n"
    "  [ $(date +%s) -lt $end ] || {{ echo 'networkd: not up in 90 s'; break; }}\n"
    "  sleep 0.2\n"
    "done\n"
    "echo '--- networkd log'; cat /tmp/networkd.log; echo '--- end of networkd log'"
)
STATE = "ip -n {ns} -d link show; ip -n {ns} fou show; ip -n {ns} addr show dev lo"


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
        if scenario == "networkd":  # the operator's lo file, networkd enabled
            wants = f"{root}/etc/systemd/system/multi-user.target.wants"
            setup += [
                f"printf %s {shlex.quote(NETWORKD_LO)} > {root}/etc/systemd/network/10-lo.network",
                f"mkdir -p {wants}",
                f"ln -s /lib/systemd/system/systemd-networkd.service {wants}/",
            ]
        for ns in (server, rebooted):  # systemd brings lo up first thing at boot
            setup += [f"ip netns add {ns}", f"ip -n {ns} link set lo up", UPLINK.format(ns=ns)]
        steps[f"{scenario}_setup"] = "\n".join(setup)
        steps[f"{scenario}_apply"] = _dsrctl(scenario, server, "apply", "--auto-approve", spec)
        steps[f"{scenario}_files"] = (
            f"cd {root} && find . -type f -o -type l | sort && "
            "cat etc/systemd/system/dsrctl-tunnels.service"
        )
        steps[f"{scenario}_before"] = _dsrctl(scenario, rebooted, "drift", spec) + " || echo $?"
        boot = [
            f"ip netns exec {rebooted} sysctl -q -w net.ipv4.conf.default.rp_filter=2",
            SYSCTL.format(ns=rebooted, scenario=scenario),
            REPLAY.format(ns=rebooted, scenario=scenario),
        ]
        if scenario == "networkd":
            boot.append(NETWORKD_RUN.format(ns=rebooted, scenario=scenario))
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
    starts = [line for line in files.splitlines() if line.startswith("ExecStart=")]
    network = "./etc/systemd/network/10-dsrctl-tunnel-"
    if scenario == "unit":
        assert len(starts) == 6 and network not in files
    else:  # networkd: its own files for the devices, the unit for the port only
        assert starts == ["ExecStart=-/sbin/ip fou add port 19523 gue"], files
        for name in ("dsrgre0.netdev", "dsrgre0.network", "dsr6tnl0.netdev",
                     "dsr6tnl0.network", "tunl0.network"):  # fmt: skip
            assert network + name in files
        assert network + "tunl0.netdev" not in files  # the module makes tunl0
    before = boot[f"{scenario}_before"]
    assert before.stdout.rstrip().endswith("2"), before.describe()
    for resource in ("tunnel dsrgre0", "tunnel dsr6tnl0", "tunnel tunl0", "fou 19523"):
        assert f"DRIFT {resource}:" in before.stdout, before.describe()
    state = boot[f"{scenario}_boot"].check()
    assert "port 19523 gue" in state.stdout, state.describe()
    if scenario == "networkd":
        log = state.stdout.split("--- networkd log")[1].split("--- end of networkd log")[0]
        assert "not up in 90 s" not in state.stdout, state.describe()
        for line in ("dsrgre0: netdev ready", "dsr6tnl0: netdev ready", "tunl0: Link UP"):
            assert line in log, state.describe()
        # a key networkd rejects in dsrctl's files names the file; a device it cannot make
        # says so ("dsrfou19523: netdev could not be created: ..." was the GUE port's)
        words = ("Unknown", "ignoring", "Invalid", "Failed to parse")
        bad = [line for line in log.splitlines() if "could not be created" in line
               or ("10-dsrctl" in line and any(word in line for word in words))]  # fmt: skip
        assert bad == [], log
    after = boot[f"{scenario}_after"]
    assert after.returncode == 0, after.describe() + state.describe()
    assert "in sync" in after.stdout


def test_a_restart_of_the_unit_changes_nothing(boot: vm.Boot) -> None:
    restart = boot["unit_restart"]
    assert restart.returncode == 0, restart.describe()
    assert "ignored: /sbin/ip link add dsrgre0 type gre external" in restart.stdout
    assert "ignored: /sbin/ip fou add port 19523 gue" in restart.stdout
    assert "in sync" in restart.stdout
