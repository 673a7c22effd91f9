"""The VM tier works: the distribution kernel boots and has what the tunnel labs need.

One boot for the whole module; every test reads its part of the results. Proves the
tunnel modules load, the collect-metadata decap devices and the GUE port can be created,
IPVS takes tunnel (IPIP, GUE, GRE) and direct-routing real servers, namespaces with veth
pairs work inside the guest, this checkout's dsrctl runs there with the test interpreter,
the guest cannot write into the repository, and the host's network is left alone.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.vm import vm

VIP = "198.18.0.10"
VIP_DR = "198.18.0.11"

STEPS: dict[str, str | vm.Python] = {
    "uname": "uname -r",
    "modules": "modprobe -a ipip fou ip_gre ip6_tunnel ip_vs && lsmod",
    "ipip": "ip link add dsrtun0 type ipip external && ip link set dsrtun0 up"
    " && ip -d link show dsrtun0",
    "fou": "ip fou add port 19523 gue && ip fou show",
    "ip6tnl": "ip link add dsrtun6 type ip6tnl external && ip -d link show dsrtun6",
    "gre": "ip link add dsrgre0 type gre external && ip -d link show dsrgre0",
    "fallback": "ip -br link",
    "ipvs": f"""
ipvsadm -A -t {VIP}:80 -s rr
ipvsadm -a -t {VIP}:80 -r 10.0.0.2:80 -i
ipvsadm -a -t {VIP}:80 -r 10.0.0.3:80 -i --tun-type gue --tun-port 19523
ipvsadm -A -t {VIP_DR}:80 -s rr
ipvsadm -a -t {VIP_DR}:80 -r 10.0.0.4:80 -g
ipvsadm -Ln --tun-info
""",
    "ipvs_gre": f"ipvsadm -a -t {VIP}:80 -r 10.0.0.5:80 -i --tun-type gre"
    " && ipvsadm -Ln --tun-info",
    "netns": """
ip netns add vmsmoke-a
ip netns add vmsmoke-b
ip link add va netns vmsmoke-a type veth peer name vb netns vmsmoke-b
ip -n vmsmoke-a address add 10.9.0.1/24 dev va
ip -n vmsmoke-b address add 10.9.0.2/24 dev vb
ip -n vmsmoke-a link set va up
ip -n vmsmoke-b link set vb up
ip -n vmsmoke-b link add dsrtun0 type ipip external
ip netns exec vmsmoke-a arping -c 1 -w 10 -i va 10.9.0.2
ip netns list
""",
    "python": vm.Python("import sys, dsrctl\nprint(dsrctl.__file__)\nprint(sys.executable)\n"),
    "dsrctl_help": "python3 -m dsrctl --help",
    "repo_readonly": "! touch .vm-write-probe 2>/dev/null && ! test -e .vm-write-probe",
    # Overheads, reported below: ten short commands, and a bare interpreter start.
    "ten_ip_commands": "for i in 1 2 3 4 5 6 7 8 9 10; do ip link show lo >/dev/null; done",
    "python_start": "python3 -c pass",
}


# What the guest creates; none of it may appear on the host (other tests may be creating
# their own namespaces on the host meanwhile, so compare only these names).
GUEST_ONLY = {"dsrtun0", "dsrtun6", "dsrgre0", "va", "vb", "vmsmoke-a", "vmsmoke-b"}


def _host_names() -> set[str]:
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True)
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    names = {line.split(":")[1].strip().split("@")[0] for line in links.stdout.splitlines()}
    return names | {line.split()[0] for line in netns.stdout.splitlines() if line.strip()}


@pytest.fixture(scope="module")
def boot() -> vm.Boot:
    assert not GUEST_ONLY & _host_names(), "leftovers on the host from an earlier run"
    result = vm.run(STEPS)
    assert not GUEST_ONLY & _host_names(), "the VM's links or namespaces reached the host"
    return result


@pytest.mark.parametrize("name", list(STEPS))
def test_step_succeeds(boot: vm.Boot, name: str) -> None:
    boot[name].check()


def test_guest_runs_the_distribution_kernel(boot: vm.Boot) -> None:
    version = boot["uname"].stdout.strip()
    assert boot.kernel.name == f"vmlinuz-{version}"


def test_tunnel_modules_loaded(boot: vm.Boot) -> None:
    loaded = {line.split()[0] for line in boot["modules"].stdout.splitlines()[1:]}
    assert {"ipip", "fou", "ip_gre", "ip6_tunnel", "ip_vs"} <= loaded


def test_decap_devices_are_external(boot: vm.Boot) -> None:
    for step in ("ipip", "ip6tnl", "gre"):
        assert "external" in boot[step].stdout, boot[step].describe()
    assert "port 19523 gue" in boot["fou"].stdout


def test_loading_modules_creates_fallback_devices(boot: vm.Boot) -> None:
    names = {line.split()[0].split("@")[0] for line in boot["fallback"].stdout.splitlines()}
    assert {"tunl0", "gre0", "ip6tnl0", "dsrtun0", "dsrtun6", "dsrgre0"} <= names


def test_ipvs_tunnel_and_direct_routing(boot: vm.Boot) -> None:
    out = boot["ipvs"].stdout
    assert f"TCP  {VIP}:80 rr" in out
    assert "10.0.0.2:80" in out and "10.0.0.3:80" in out and "10.0.0.4:80" in out
    rows = {line.split()[1]: line for line in out.splitlines() if "->" in line and ":80" in line}
    assert "Tunnel" in rows["10.0.0.2:80"] and "ipip" in rows["10.0.0.2:80"]
    assert "Tunnel" in rows["10.0.0.3:80"] and "gue" in rows["10.0.0.3:80"]
    assert "19523" in rows["10.0.0.3:80"]
    assert "Route" in rows["10.0.0.4:80"]
    assert "gre" in boot["ipvs_gre"].stdout


def test_namespaces_with_veth_inside_the_guest(boot: vm.Boot) -> None:
    out = boot["netns"].stdout
    assert "Received 1 response" in out or "1 packets received" in out, out
    assert "vmsmoke-a" in out and "vmsmoke-b" in out


def test_this_checkout_with_the_test_interpreter(boot: vm.Boot) -> None:
    file, executable = boot["python"].stdout.split()
    assert file == str(vm.REPO / "dsrctl" / "__init__.py")
    assert executable == sys.executable
    assert "Usage:" in boot["dsrctl_help"].stdout


def test_guest_cannot_write_into_the_repo(boot: vm.Boot) -> None:
    assert not (vm.REPO / ".vm-write-probe").exists()


def test_report_timings(boot: vm.Boot, capsys: pytest.CaptureFixture[str]) -> None:
    per_command = boot["ten_ip_commands"].seconds / 10
    with capsys.disabled():
        print(
            f"\nVM timings: wall {boot.wall_seconds:.1f} s, boot+power-off overhead"
            f" {boot.overhead_seconds:.1f} s (guest uptime at first step"
            f" {boot.guest_uptime_at_start:.1f} s), one `ip` command {per_command:.2f} s,"
            f" python3 -c pass {boot['python_start'].seconds:.1f} s,"
            f" dsrctl --help {boot['dsrctl_help'].seconds:.1f} s"
        )
