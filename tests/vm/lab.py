"""The tunnel-mode DSR lab of issue 11, as shell scripts for one VM boot (tests/vm/vm.py).

Topology (all links MTU 1500, every namespace inside the guest):

    client 198.18.1.2 --- 198.18.1.1 router 198.18.2.1 (br0) ---+--- 198.18.2.2  balA (IPVS)
                                     192.0.2.1 (r2)             +--- 198.18.2.3  balB (gre ECMP)
                                         |                      +--- 198.18.2.11 srv1
                                     192.0.2.12 srv2

The router sends the VIPs to the balancers, which are one-armed (one interface each):

- balA, IPVS in tunnel mode: VIP_IPIP (``-i``, IPIP) and VIP_GUE (``--tun-type gue``);
- balB, kernel GRE tunnels, one device per real server, and an ECMP multipath route with
  L4 hashing for VIP_GRE and the RANGE; for IPv6 (setup6), ip6ip6 and ip6gre tunnels, one
  device per real server each, behind L4-hashed nexthop groups for VIP6 and VIP6_GRE.

The real servers are configured only by ``dsrctl apply`` (this checkout, run in the
server's namespace); they reply straight to the client through the router, so the
balancers never see a VIP-sourced packet (an nft counter on each proves it). The
balancers model an encapsulating balancer that cannot send ICMP "fragmentation needed"
(Katran, GLB: XDP/DPDK): their output drops it (and ICMPv6 "packet too big"), so path-MTU
discovery cannot rescue a client segment that the encapsulation makes too big, and only
the MSS clamp can. (Measured on 6.1 with that drop removed: IPVS and the kernel tunnels do
send it, the client learns a path MTU of 1480/1468/1476/1460 for the ipip/gue/gre/ip6ip6
VIPs, and the 200 KB uploads pass without the clamp.)

Each server runs busybox httpd on port 80 (any address: the range is AnyIP): ``/``
answers the server's name, ``/big`` is 200 KB, ``/cgi-bin/up`` counts what is posted.
"""

from __future__ import annotations

import shlex

from tests import ndp

PREFIX = "lab-"
CLIENT, ROUTER, BAL_A, BAL_B, SRV1, SRV2 = (
    f"{PREFIX}{name}" for name in ("client", "router", "balA", "balB", "srv1", "srv2")
)
SERVERS = {SRV1: "198.18.2.11", SRV2: "192.0.2.12"}
NAMES = {SRV1: "srv1", SRV2: "srv2"}
# The uplinks' MACs: fixed, so that the neighbours' ARP entries hold across the reboot
# (br0's too: a bridge takes its lowest port's MAC unless given one, and srv1's port is
# deleted and made again)
MACS = {SRV1: "02:00:00:00:00:11", SRV2: "02:00:00:00:00:12"}
CLIENT_IP = "198.18.1.2"
BAL_A_IP, BAL_B_IP = "198.18.2.2", "198.18.2.3"
VIP_IPIP, VIP_GUE, VIP_GRE = "198.18.0.10", "198.18.0.20", "198.18.0.30"
RANGE = "198.18.5.0/24"
RANGE_SAMPLE = ("198.18.5.7", "198.18.5.133", "198.18.5.250")  # overridden by the test
GUE_PORT = 19523
GRE_DEVICE = "dsrgre0"  # a collect-metadata device dsrctl creates (deleting it is drift)
WORK = "/tmp/lab"  # in the guest's tmpfs overlay
BIG = 204800  # bytes up and down
KINDS = {VIP_IPIP: "ipip", VIP_GUE: "gue", VIP_GRE: "gre"}
# IPv6: ip6ip6 and ip6gre through balB (one device per real server and kind, an L4-hashed
# nexthop group per VIP); ip6gre carries IPv4 too: VIP_GRE6 goes through the same devices
VIP6, VIP6_GRE = "2001:db8:10::10", "2001:db8:10::20"
VIP_GRE6 = "198.18.0.40"
GRE6_DEVICE = "dsrgre6"  # an ip6gre collect-metadata device dsrctl creates
# An IPv6 range on the servers' lo (never routed to them: only its neighbour discovery
# is checked)
RANGE6 = "2001:db8:50::/64"
RANGE6_SAMPLE = ("2001:db8:50::7", "2001:db8:50::1:2:3")
SERVERS6 = {SRV1: "2001:db8:2::11", SRV2: "2001:db8:3::12"}
GATEWAYS6 = {SRV1: "2001:db8:2::1", SRV2: "2001:db8:3::1"}
CLIENT6, BAL_B6 = "2001:db8:1::2", "2001:db8:2::3"


def root(server: str) -> str:
    """The server's persist root (a "disk" that survives the simulated reboot)."""
    return f"{WORK}/{NAMES[server]}/root"


def state_dir(server: str) -> str:
    return f"{WORK}/{NAMES[server]}/state"


def spec_path(server: str, stage: int) -> str:
    return f"{root(server)}/etc/dsrctl/stage{stage}.toml"


def spec_text(server: str, stage: int) -> str:
    """Stage 1: ipip (tunl0, the module's fallback device) and gre (a collect-metadata
    device). Stage 2: gue (fou port, IPIP into tunl0) replaces ipip (tunl0 still takes
    plain IPIP too), and ip6ip6 (ip6tnl0, the fallback device) and ip6gre (a
    collect-metadata device) join. Every stage has all the VIPs and the ranges, so that
    what fails before a stage fails for want of the decap side alone."""
    first = 'kind = "ipip"\n' if stage == 1 else f'kind = "gue"\nport = {GUE_PORT}\n'
    vips = (VIP_IPIP, VIP_GUE, VIP_GRE, VIP_GRE6, VIP6, VIP6_GRE)
    return (
        "version = 1\n"
        + "".join(f'[[vip]]\naddress = "{vip}"\n' for vip in vips)
        + "".join(
            f'[[vip]]\naddress = "{cidr.split("/")[0]}"\nprefix = {cidr.split("/")[1]}\n'
            for cidr in (RANGE, RANGE6)
        )
        + f"[[tunnel]]\n{first}"
        + f'[[tunnel]]\nkind = "gre"\nname = "{GRE_DEVICE}"\n'
        + (
            f'[[tunnel]]\nkind = "ip6ip6"\n[[tunnel]]\nkind = "ip6gre"\nname = "{GRE6_DEVICE}"\n'
            if stage == 2
            else ""
        )
        + f'[linux.persist]\nroot = "{root(server)}"\n'
    )


def batched(script: str) -> str:
    """``script`` with each run of ``ip -n NS ...`` lines of one namespace (and of ``ip
    link add`` lines in the initial one) turned into one ``ip -batch`` process: under
    emulation each process start costs 0.15-0.6 s."""
    out: list[str] = []
    run: list[str] = []
    run_ns: str | None = None

    def flush() -> None:
        if len(run) == 1:
            out.append(f"ip {'' if run_ns == '' else f'-n {run_ns} '}{run[0]}")
        elif run:
            target = "" if run_ns == "" else f"-n {run_ns} "
            out.append(f"ip {target}-batch - <<'EOF'\n" + "\n".join(run) + "\nEOF")
        run.clear()

    for line in script.splitlines():
        words = line.split()
        ns: str | None = None
        if any(c in line for c in "<>|&;#\\$"):
            pass  # shell syntax: left as it is
        elif words[:2] == ["ip", "-n"] and len(words) > 3 and not words[3].startswith("-"):
            ns, command = words[2], " ".join(words[3:])
        elif words[:3] == ["ip", "link", "add"]:
            ns, command = "", " ".join(words[1:])
        if ns is None or ns != run_ns:
            flush()
            run_ns = ns
        if ns is None:
            out.append(line)
        else:
            run.append(command)
    flush()
    return "\n".join(out) + "\n"


def in_ns(ns: str, script: str) -> str:
    return f"ip netns exec {ns} bash -c {shlex.quote(script)}"


def dsrctl(server: str, *args: str) -> str:
    """This checkout's dsrctl in the server's namespace, with the server's own state."""
    return in_ns(server, f"dsrctl --state-dir {state_dir(server)} {' '.join(args)}")


def _veth(a: str, a_dev: str, b: str, b_dev: str) -> str:
    return f"ip link add {a_dev} netns {a} type veth peer name {b_dev} netns {b}\n"


def server_setup(server: str) -> str:
    """A real server as a fresh boot leaves it: uplink (its MAC fixed, as a NIC's),
    default routes, strict rp_filter on all and default (the value the spec must cope
    with), httpd; no VIP, no tunnel."""
    name, address = NAMES[server], SERVERS[server]
    gateway, prefix = ("198.18.2.1", 24) if server == SRV1 else ("192.0.2.1", 24)
    www = f"{WORK}/{name}/www"
    return f"""\
ip -n {server} link set lo up
ip netns exec {server} sysctl -qw net.ipv4.conf.all.rp_filter=1 net.ipv4.conf.default.rp_filter=1
ip -n {server} link set s0 address {MACS[server]}
ip -n {server} address add {address}/{prefix} dev s0
ip -n {server} link set s0 up
ip -n {server} route add default via {gateway}
ip -n {server} address add {SERVERS6[server]}/64 dev s0 nodad
ip -n {server} route add default via {GATEWAYS6[server]}
ip netns exec {server} busybox httpd -p 80 -h {www}
"""


def server_files(server: str) -> str:
    name = NAMES[server]
    www = f"{WORK}/{name}/www"
    return f"""\
mkdir -p {www}/cgi-bin {state_dir(server)} {root(server)}/etc/sysctl.d \
    {root(server)}/etc/systemd/system {root(server)}/etc/dsrctl
echo {name} > {www}/index.html
head -c {BIG} /dev/urandom > {www}/big
cat > {www}/cgi-bin/up <<'EOF'
#!/bin/sh
n=$(head -c "$CONTENT_LENGTH" | wc -c)
printf 'Content-Type: text/plain\\r\\n\\r\\n{name} got %s\\n' "$n"
EOF
chmod +x {www}/cgi-bin/up
"""


def _bridge_port(dev: str, ns: str, peer: str) -> str:
    return _veth(ROUTER, dev, ns, peer) + (
        f"ip -n {ROUTER} link set {dev} master br0\nip -n {ROUTER} link set {dev} up\n"
    )


def _counters(ns: str) -> str:
    """VIP-sourced and VIP-destined packets seen by ``ns``; on a balancer, its outgoing
    ICMP "fragmentation needed" and ICMPv6 "packet too big" dropped (counted)."""
    vips = f"{{ {VIP_IPIP}, {VIP_GUE}, {VIP_GRE}, {VIP_GRE6}, {RANGE} }}"
    vips6 = f"{{ {VIP6}, {VIP6_GRE} }}"
    return f"""\
ip netns exec {ns} nft -f - <<'EOF'
table inet lab {{
    chain pre {{
        type filter hook prerouting priority -300;
        ip saddr {vips} counter comment "from-vip"
        ip daddr {vips} counter comment "to-vip"
        ip6 saddr {vips6} counter comment "from-vip6"
        ip6 daddr {vips6} counter comment "to-vip6"
    }}
    chain out {{
        type filter hook output priority 0;
        icmp type destination-unreachable icmp code frag-needed counter drop comment "no-pmtud"
        icmpv6 type packet-too-big counter drop comment "no-pmtud6"
    }}
}}
EOF
"""


def setup() -> str:
    """Modules, namespaces, links, routes, the two balancers, the servers' httpd."""
    modules = "ipip ip_gre fou ip6_tunnel ip6_gre ip_vs ip_vs_rr nf_tables"
    lines = ["set -e", f"modprobe -a {modules}", f"mkdir -p {WORK}"]
    for ns in (CLIENT, ROUTER, BAL_A, BAL_B, SRV1, SRV2):
        lines.append(f"ip netns add {ns}")
    script = "\n".join(lines) + "\n"
    script += server_files(SRV1) + server_files(SRV2)
    head = f"head -c {BIG} /dev/urandom > {WORK}/up.bin\n"
    script += head
    # client <-> router
    script += _veth(CLIENT, "c0", ROUTER, "r0")
    script += f"""\
ip -n {CLIENT} link set lo up
ip -n {CLIENT} address add {CLIENT_IP}/24 dev c0
ip -n {CLIENT} link set c0 up
ip -n {CLIENT} route add default via 198.18.1.1
ip -n {ROUTER} link set lo up
ip -n {ROUTER} address add 198.18.1.1/24 dev r0
ip -n {ROUTER} link set r0 up
ip -n {ROUTER} link add br0 address 02:00:00:00:00:01 type bridge
ip -n {ROUTER} address add 198.18.2.1/24 dev br0
ip -n {ROUTER} link set br0 up
ip netns exec {ROUTER} sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
    net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.r0.rp_filter=0 net.ipv4.conf.br0.rp_filter=0
"""
    script += _bridge_port("pa", BAL_A, "a0") + _bridge_port("pb", BAL_B, "b0")
    script += _bridge_port("p1", SRV1, "s0")
    script += _veth(ROUTER, "r2", SRV2, "s0")
    script += f"""\
ip -n {ROUTER} address add 192.0.2.1/24 dev r2
ip -n {ROUTER} link set r2 up
ip netns exec {ROUTER} sysctl -qw net.ipv4.conf.r2.rp_filter=0
ip -n {ROUTER} route add {VIP_IPIP}/32 via {BAL_A_IP}
ip -n {ROUTER} route add {VIP_GUE}/32 via {BAL_A_IP}
ip -n {ROUTER} route add {VIP_GRE}/32 via {BAL_B_IP}
ip -n {ROUTER} route add {RANGE} via {BAL_B_IP}
ip -n {ROUTER} route add {VIP_GRE6}/32 via {BAL_B_IP}
"""
    # balancer A: IPVS, tunnel mode
    srv1, srv2 = SERVERS[SRV1], SERVERS[SRV2]
    script += f"""\
ip -n {BAL_A} link set lo up
ip -n {BAL_A} address add {BAL_A_IP}/24 dev a0
ip -n {BAL_A} link set a0 up
ip -n {BAL_A} route add default via 198.18.2.1
ip -n {BAL_A} address add {VIP_IPIP}/32 dev lo
ip -n {BAL_A} address add {VIP_GUE}/32 dev lo
ip netns exec {BAL_A} sysctl -qw net.ipv4.conf.all.arp_ignore=1
ip netns exec {BAL_A} sh -e -c '
ipvsadm -A -t {VIP_IPIP}:80 -s rr
ipvsadm -a -t {VIP_IPIP}:80 -r {srv1}:80 -i
ipvsadm -a -t {VIP_IPIP}:80 -r {srv2}:80 -i
ipvsadm -A -t {VIP_GUE}:80 -s rr
ipvsadm -a -t {VIP_GUE}:80 -r {srv1}:80 -i --tun-type gue --tun-port {GUE_PORT}
ipvsadm -a -t {VIP_GUE}:80 -r {srv2}:80 -i --tun-type gue --tun-port {GUE_PORT}
'
"""
    # balancer B: one GRE device per real server, ECMP with L4 hashing
    script += f"""\
ip -n {BAL_B} link set lo up
ip -n {BAL_B} address add {BAL_B_IP}/24 dev b0
ip -n {BAL_B} link set b0 up
ip -n {BAL_B} route add default via 198.18.2.1
ip netns exec {BAL_B} sysctl -qw net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_policy=1
ip -n {BAL_B} link add gre1 type gre local {BAL_B_IP} remote {srv1} ttl 64
ip -n {BAL_B} link add gre2 type gre local {BAL_B_IP} remote {srv2} ttl 64
ip -n {BAL_B} link set gre1 up
ip -n {BAL_B} link set gre2 up
ip -n {BAL_B} route add {VIP_GRE}/32 nexthop dev gre1 nexthop dev gre2
ip -n {BAL_B} route add {RANGE} nexthop dev gre1 nexthop dev gre2
"""
    for ns in (BAL_A, BAL_B, ROUTER):
        script += _counters(ns)
    script += server_setup(SRV1) + server_setup(SRV2)
    for server in SERVERS:
        for stage in (1, 2):
            script += f"cat > {spec_path(server, stage)} <<'EOF'\n{spec_text(server, stage)}EOF\n"
    return batched(script)


def _url(vip: str) -> str:
    return f"http://[{vip}]" if ":" in vip else f"http://{vip}"


def _ip6_tunnels(kind: str, names: tuple[str, str], group: int, vip6: str) -> str:
    """balB's two IPv6-outer tunnels of ``kind`` (one per server, ``encaplimit none``)
    behind nexthop group ``group`` (members group + 1 and + 2) for ``vip6``, which the
    router sends to balB."""
    lines = [f"ip -n {ROUTER} route add {vip6}/128 via {BAL_B6}"]
    remotes = (SERVERS6[SRV1], SERVERS6[SRV2])
    for number, (name, remote) in enumerate(zip(names, remotes, strict=True), group + 1):
        lines += [
            f"ip -n {BAL_B} link add {name} type {kind} local {BAL_B6} remote {remote} "
            "encaplimit none",
            f"ip -n {BAL_B} link set {name} up",
            f"ip -n {BAL_B} -6 nexthop add id {number} dev {name}",
        ]
    lines += [
        f"ip -n {BAL_B} nexthop add id {group} group {group + 1}/{group + 2}",
        f"ip -n {BAL_B} route add {vip6}/128 nhid {group}",
    ]
    return "\n".join(lines) + "\n"


def setup6() -> str:
    """IPv6 on the client, router and balB links (the servers have theirs from
    server_setup), and balB's ip6ip6 and ip6gre tunnels, one of each per real server,
    behind a nexthop group per VIP (a multipath IPv6 route needs gateways; a group of
    device nexthops does not) hashed on L4; VIP_GRE6 (IPv4) through the ip6gre devices.
    ``encaplimit none``: the devices' default, 4, adds an 8-byte destination options
    header that no balancer of docs/tunnel-mode.md sends and the servers' clamp does not
    count. A step of its own: if it fails, only the IPv6 checks do."""
    return batched(f"""\
set -e
ip -n {CLIENT} address add {CLIENT6}/64 dev c0 nodad
ip -n {CLIENT} route add default via 2001:db8:1::1
ip -n {ROUTER} address add 2001:db8:1::1/64 dev r0 nodad
ip -n {ROUTER} address add 2001:db8:2::1/64 dev br0 nodad
ip -n {ROUTER} address add 2001:db8:3::1/64 dev r2 nodad
ip netns exec {ROUTER} sysctl -qw net.ipv6.conf.all.forwarding=1
ip -n {BAL_B} address add {BAL_B6}/64 dev b0 nodad
ip -n {BAL_B} route add default via 2001:db8:2::1
ip netns exec {BAL_B} sysctl -qw net.ipv6.conf.all.forwarding=1 \
    net.ipv6.fib_multipath_hash_policy=1
{_ip6_tunnels("ip6tnl mode ip6ip6", ("t6a", "t6b"), 60, VIP6)}\
{_ip6_tunnels("ip6gre", ("g6a", "g6b"), 70, VIP6_GRE)}\
ip -n {BAL_B} route add {VIP_GRE6}/32 nexthop dev g6a nexthop dev g6b
ip -n {BAL_B} -6 route show {VIP6}/128
ip -n {BAL_B} -6 route show {VIP6_GRE}/128
ip -n {BAL_B} -d link show g6a
""")


def requests(vip: str, count: int = 12) -> str:
    """``count`` short requests from the client; one line ``HIT vip answer`` each (the
    answer is the server's name, or ``FAIL``). curl: busybox-static's wget crashes."""
    return (
        f"for i in $(seq {count}); do "
        f"a=$(curl -g -s --max-time 2 {_url(vip)}/) || a=FAIL; "
        f'echo "HIT {vip} $a"; done\n'
    )


def transfers(vip: str, timeout: int = 8) -> str:
    """A 200 KB download and upload, and the MSS the client uses towards ``vip`` (read
    from ``ss`` on a connection held open): lines ``DOWN vip bytes rc``, ``UP vip answer
    rc``, ``MSS vip ss-line``."""
    url, dst = _url(vip), f"[{vip}]" if ":" in vip else vip
    return f"""\
m=$(timeout 20 bash -c 'exec 3<>/dev/tcp/{vip}/80 && ss -tinH dst {dst}' | tr -s ' \\t\\n' ' ')
echo "MSS {vip} $m"
n=$(curl -g -s --max-time {timeout} -o /dev/null -w '%{{size_download}}' {url}/big) \\
    && rc=0 || rc=$?
echo "DOWN {vip} $n $rc"
a=$(curl -g -s --max-time {timeout} --data-binary @{WORK}/up.bin {url}/cgi-bin/up) \\
    && rc=0 || rc=$?
echo "UP {vip} ${{a:-none}} $rc" | tr -s ' '
"""


def parallel(blocks: list[str], tag: str) -> str:
    """Run the shell ``blocks`` at once (each in a subshell), then print their output in
    order (the guest's CPUs are slow; most of the blocks' time is waiting)."""
    script = "".join(
        f"(\n{block}) > {WORK}/{tag}.{index} 2>&1 &\n" for index, block in enumerate(blocks)
    )
    return script + "wait\n" + "".join(f"cat {WORK}/{tag}.{i}\n" for i in range(len(blocks)))


def client(script: str) -> str:
    return in_ns(CLIENT, "set +e\n" + script)


def arp_probe(addresses: list[str]) -> str:
    """ARP requests for ``addresses`` from the router on both server segments, after one
    for the segment's server's own address (which must be answered: the probe works);
    one line ``ARP device address received`` each."""
    lines = []
    for device, own in (("br0", SERVERS[SRV1]), ("r2", SERVERS[SRV2])):
        for address in [own, *addresses]:
            lines.append(
                f"(n=$(arping -c 2 -w 2 -i {device} {address} 2>&1 | "
                f"sed -n 's/.* \\([0-9]*\\) packets received.*/\\1/p'); "
                f'echo "ARP {device} {address} ${{n:-?}}" > {WORK}/arp.{device}.{address}) &\n'
            )
    lines.append(f"wait\ncat {WORK}/arp.*\n")
    return in_ns(ROUTER, "set +e\n" + "".join(lines))


def neighbour_probe(addresses: list[str]) -> str:
    """Neighbour solicitations (tests/ndp.py) from the router on both server segments,
    for ``addresses`` and for the segment's server's own uplink address (which must be
    answered: the probe works); lines ``NS device target sent`` and ``NA device target
    lladdr source hop-limit`` for every advertisement that came back."""
    probes = [
        (device, GATEWAYS6[server], [SERVERS6[server], *addresses])
        for device, server in (("br0", SRV1), ("r2", SRV2))
    ]
    return in_ns(ROUTER, shlex.join(ndp.argv(probes)))


def counters() -> str:
    """``COUNT ns comment packets`` for every counter of the lab tables."""
    return "".join(
        f"ip netns exec {ns} nft list table inet lab | "
        f'sed -n \'s/.*counter packets \\([0-9]*\\) bytes [0-9]* .*comment "\\(.*\\)".*/'
        f"COUNT {ns} \\2 \\1/p'\n"
        for ns in (BAL_A, BAL_B, ROUTER)
    )


def parse(text: str, tag: str) -> list[list[str]]:
    """The fields after ``tag`` of every line that starts with it."""
    return [line.split()[1:] for line in text.splitlines() if line.split()[:1] == [tag]]


def reboot(server: str) -> str:
    """The server's namespace is deleted and made again as a boot makes it (uplink,
    default route, strict rp_filter, httpd; no VIP, no tunnel, modules still loaded: they
    are global), then what the persisted files under its root do at boot is replayed:
    systemd-modules-load (modules-load.d), systemd-sysctl (sysctl.d, again after the
    units as udev does for devices that appear later) and every unit enabled in
    multi-user.target.wants (its ExecStart lines, /etc paths taken under the root)."""
    r = root(server)
    port = "p1" if server == SRV1 else "r2"
    relink = (
        _bridge_port("p1", SRV1, "s0")
        if server == SRV1
        else _veth(ROUTER, "r2", SRV2, "s0")
        + f"ip -n {ROUTER} address add 192.0.2.1/24 dev r2\nip -n {ROUTER} link set r2 up\n"
        + f"ip netns exec {ROUTER} sysctl -qw net.ipv4.conf.r2.rp_filter=0\n"
    )
    return f"""\
ip netns pids {server} | xargs -r kill 2>/dev/null || true  # httpd children come and go
for i in $(seq 50); do [ -z "$(ip netns pids {server})" ] && break; sleep 0.1; done
ip -n {ROUTER} link del {port}  # the cable: at once (a namespace is destroyed later)
ip netns del {server}
ip netns add {server}
{relink}{server_setup(server)}\
echo "BOOT files: $(cd {r} && find . -type f -o -type l | sort | tr '\\n' ' ')"
for f in {r}/etc/modules-load.d/*.conf; do
    [ -e "$f" ] || continue
    modules=$(grep -v '^[#;]' "$f" | tr '\\n' ' ')
    echo "BOOT modprobe $modules"
    modprobe -a $modules
done
sysctls() {{
    for f in {r}/etc/sysctl.d/*.conf; do
        [ -e "$f" ] || continue
        ip netns exec {server} sysctl -q -e -p "$f" || echo "BOOT sysctl $f failed"
    done
}}
sysctls
for link in {r}/etc/systemd/system/multi-user.target.wants/*.service; do
    unit={r}/etc/systemd/system/$(basename "$link")  # the link's target, under the root
    [ -e "$unit" ] || continue
    sed -n 's/^ExecStart=//p' "$unit" | sed "s# /etc/# {r}/etc/#g" | while read -r line; do
        echo "BOOT $(basename $unit): $line"
        case "$line" in  # systemd's prefix '-': a failure is ignored
            -*) ip netns exec {server} ${{line#-}} || true ;;
            *) ip netns exec {server} $line || echo "BOOT failed: $line" ;;
        esac
    done
done
sysctls
"""
