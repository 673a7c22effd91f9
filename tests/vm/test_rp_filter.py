"""Reverse-path filtering for an ipip tunnel on the distribution kernel (one VM boot).

A balancer namespace sends a UDP request for the VIP encapsulated in IPIP to a server
namespace whose `all` and `default` rp_filter are 1 (strict); the server decapsulates on
tunl0 (no address) and answers straight from the VIP. Before apply nothing comes back;
after `dsrctl apply` of a spec with `[[tunnel]] kind = "ipip"`, rp_filter is 0 on all and
tunl0, the uplink keeps 1, and the answer comes back. Then, with everything else in place,
rp_filter alone decides: tunl0 set back to loose (2) by hand drops the packets again
(loose is not enough on a device without an address), and so does `all` set back to 1
with tunl0 at 0 (the kernel uses max(all, tunl0)); each is drift (exit 2), and apply
repairs it.

ip6gre's outer header is IPv6 but it carries IPv4 too: a second VIP reaches the server as
IPv4 in IPv6 GRE on ip6gre0 (its fallback device, which also has no IPv4 address), and
answers only once apply set ip6gre0's rp_filter to 0 as well.
"""

from __future__ import annotations

import pytest

from tests.vm import vm

VIP = "198.18.0.10"
VIP2 = "198.18.0.11"  # through ip6gre
SPEC = f"""version = 1
[[vip]]
address = "{VIP}"
[[vip]]
address = "{VIP2}"
[[tunnel]]
kind = "ipip"
[[tunnel]]
kind = "ip6gre"
[linux.persist]
root = "/tmp/rpf"
"""


def ask(vip: str) -> str:
    """One UDP request to ``vip`` from the balancer's address; prints "answered" or
    "silent"."""
    return (
        'ip netns exec lb python3 -c "import socket; s = socket.socket(socket.AF_INET, '
        "socket.SOCK_DGRAM); s.bind(('192.0.2.1', 0)); s.settimeout(3); "
        f"s.sendto(b'ping', ('{vip}', 7000))\n"
        "try:\n    s.recvfrom(100); print('answered')\n"
        "except OSError:\n    print('silent')\""
    )


def serve(vip: str) -> str:
    return (
        'ip netns exec srv python3 -c "import socket; s = socket.socket(socket.AF_INET, '
        f"socket.SOCK_DGRAM); s.setsockopt(socket.SOL_IP, 15, 1); s.bind(('{vip}', 7000))\n"
        'while True:\n    data, peer = s.recvfrom(100); s.sendto(data, peer)" '
        ">/dev/null 2>&1 &"
    )


ASK = ask(VIP)
ASK2 = ask(VIP2)
DSRCTL = "ip netns exec srv env DSRCTL_STATE_DIR=/tmp/rpf/state python3 -m dsrctl"
SYSCTLS = (
    "for k in all tunl0 ip6gre0 vb; do echo $k=$(ip netns exec srv sysctl -n "
    "net.ipv4.conf.$k.rp_filter); done"
)

STEPS: dict[str, str | vm.Python] = {
    "setup": f"""
ip netns add lb
ip netns add srv
ip -n lb link set lo up
ip -n srv link set lo up
ip netns exec srv sysctl -qw net.ipv4.conf.all.rp_filter=1 net.ipv4.conf.default.rp_filter=1
ip link add va netns lb type veth peer name vb netns srv
ip -n lb address add 192.0.2.1/24 dev va
ip -n srv address add 192.0.2.2/24 dev vb
ip -n lb link set va up
ip -n srv link set vb up
ip -n srv route add default via 192.0.2.1 dev vb
# The balancer: IPIP to the server for the VIP (this loads ipip: tunl0 appears, down,
# in every namespace, with conf.default's rp_filter).
ip -n lb link add lbtun type ipip local 192.0.2.1 remote 192.0.2.2
ip -n lb link set lbtun up
ip -n lb route add {VIP}/32 dev lbtun
# ... and IPv4 in IPv6 GRE for VIP2 (this loads ip6_gre: ip6gre0 appears the same way);
# the server needs an IPv6 default route for the clamp's uplink of the ip6gre tunnel
ip -n lb address add 2001:db8::1/64 dev va nodad
ip -n srv address add 2001:db8::2/64 dev vb nodad
ip -n srv route add default via 2001:db8::1 dev vb
ip -n lb link add lbtun6 type ip6gre local 2001:db8::1 remote 2001:db8::2
ip -n lb link set lbtun6 up
ip -n lb route add {VIP2}/32 dev lbtun6
mkdir -p /tmp/rpf/etc/sysctl.d
cat > /tmp/rpf/spec.toml <<'EOF'
{SPEC}EOF
{serve(VIP)}
{serve(VIP2)}
sleep 1
""",
    "before": ASK,
    "before2": ASK2,
    "apply": f"{DSRCTL} apply --auto-approve /tmp/rpf/spec.toml",
    "applied": SYSCTLS,
    "after": ASK,
    "after2": ASK2,
    "again": f"{DSRCTL} apply --auto-approve /tmp/rpf/spec.toml",
    "loose": "ip netns exec srv sysctl -qw net.ipv4.conf.tunl0.rp_filter=2",
    "loose_ask": ASK,
    "drift": f"{DSRCTL} drift /tmp/rpf/spec.toml || echo exit=$?",
    "repair": f"{DSRCTL} apply --auto-approve /tmp/rpf/spec.toml",
    "repaired": ASK,
    "all_strict": "ip netns exec srv sysctl -qw net.ipv4.conf.all.rp_filter=1",
    "all_strict_ask": ASK,
    "all_drift": f"{DSRCTL} drift /tmp/rpf/spec.toml || echo exit=$?",
    "all_repair": f"{DSRCTL} apply --auto-approve /tmp/rpf/spec.toml",
    "all_repaired": ASK,
}


@pytest.fixture(scope="module")
def boot() -> vm.Boot:
    return vm.run(STEPS)


def test_before_apply_the_vip_does_not_answer(boot: vm.Boot) -> None:
    boot["setup"].check()
    assert boot["before"].check().stdout.strip() == "silent"
    assert boot["before2"].check().stdout.strip() == "silent"


def test_apply_sets_rp_filter_0_on_all_and_decap_devices_uplink_stays_strict(boot: vm.Boot) -> None:
    apply = boot["apply"].check()
    assert "decapsulated packets arrive on tunl0, which has no address" in apply.stdout
    assert "decapsulated packets arrive on ip6gre0, which has no address" in apply.stdout
    applied = boot["applied"].check().stdout.split()
    assert applied == ["all=0", "tunl0=0", "ip6gre0=0", "vb=1"]
    assert boot["after"].check().stdout.strip() == "answered"
    assert boot["after2"].check().stdout.strip() == "answered"
    assert "No changes" in boot["again"].check().stdout


def test_loose_on_tunl0_drops_again_and_is_drift(boot: vm.Boot) -> None:
    boot["loose"].check()
    assert boot["loose_ask"].check().stdout.strip() == "silent"
    drift = boot["drift"].check().stdout
    assert "DRIFT sysctl net.ipv4.conf.tunl0.rp_filter: expected 0, actual 2" in drift
    assert "exit=2" in drift
    boot["repair"].check()
    assert boot["repaired"].check().stdout.strip() == "answered"


def test_all_strict_with_tunl0_at_0_drops_too_max_of_both(boot: vm.Boot) -> None:
    boot["all_strict"].check()
    assert boot["all_strict_ask"].check().stdout.strip() == "silent"
    drift = boot["all_drift"].check().stdout
    assert "DRIFT sysctl net.ipv4.conf.all.rp_filter: expected 0, actual 1" in drift
    assert "exit=2" in drift
    boot["all_repair"].check()
    assert boot["all_repaired"].check().stdout.strip() == "answered"
