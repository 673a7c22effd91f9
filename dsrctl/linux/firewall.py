"""Would the host firewall drop the encapsulated traffic of the spec's tunnels?

dsrctl does not manage the host firewall (docs/tunnel-mode.md), but a server whose
input path drops the balancer's packets never sees a request, and nothing else in the
plan would say why. So `plan`, `drift` and `validate` warn when an nftables base chain on
hook ``input`` would drop them, with the rule to add.

What the input hook sees is the OUTER packet, before decapsulation: IP protocol 4 for
ipip, 47 for gre and ip6gre, 41 for ip6ip6, UDP to the tunnel's port for gue (19523 by
default) and to 4790 for vxlan-gpe; IPv6 for ip6ip6 and ip6gre, IPv4 for the rest. Each
base chain of type filter on hook input of the families that see that packet (ip or
inet; ip6 or inet) is followed rule by rule, through jumps and gotos, the way the kernel
would for that packet, as conntrack sees it: new (the replies go straight to the client,
so the balancer's flow is never established: ``ct state established,related accept``
does not let its packets in), arriving on the uplink. An accept in one base chain does
not skip another: the packet must get through each.

Conservative where it cannot know: a rule counts as accepting only when every condition
surely holds for that packet. An ``iifname`` accept counts only if it names the uplink; a
source address condition counts (the balancer's address is not in the spec: dsrctl takes
it that the rule names it); a destination address, a rate limit, an iptables match nft
cannot express (``xt``) and anything else not understood make the rule not count. A drop
counts only when it surely applies. A chain that ends in a drop (its policy, or a drop
or reject every packet reaches) without a sure accept before gets a warning, with the
exact nft command that adds the accept.

Pure: the ruleset comes from the provider (providers/linux/firewall.py) as plain data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from dsrctl.spec import Spec
    from dsrctl.tunnels import TunnelSpec
    from providers.linux.firewall import Chain, Match, Rule, Ruleset, Term
    from providers.linux.uplinks import Uplink

UDP = 17
# The outer packet of each kind: its IP protocol and what the kind is called in a message.
PROTOCOLS = {"ipip": 4, "gre": 47, "ip6gre": 47, "ip6ip6": 41, "gue": UDP, "vxlan-gpe": UDP}
NAMES = {
    "ipip": "IPIP",
    "gre": "GRE",
    "ip6gre": "GRE",
    "ip6ip6": "IPv6-in-IPv6",
    "gue": "GUE",
    "vxlan-gpe": "VXLAN-GPE",
}
FAMILIES = {4: ("ip", "inet"), 6: ("ip6", "inet")}
VXLAN_GPE_PORT = 4790
MAX_DEPTH = 16  # nft itself refuses jumps nested deeper than this

# Three-valued truth of a condition for the packet: it holds, it does not, can't tell.
TRUE, FALSE, UNSURE = "true", "false", "unsure"
# What a chain does with the packet: accepts it, drops it, or lets it go on (the end
# of a regular chain, a return; in a base chain: its policy decides).
ACCEPTED, DROPPED, GOES_ON = "accepted", "dropped", "goes on"
ACCEPTING = frozenset({"accept", "jump", "goto"})


class FirewallHost(Protocol):
    def uplink(self, version: int, name: str | None) -> Uplink | None: ...

    def input_firewall(self) -> tuple[Ruleset | None, tuple[str, ...]]: ...


@dataclass(frozen=True)
class Packet:
    """The encapsulated packet of a tunnel as the input hook sees it."""

    version: int  # outer IP version
    protocol: int
    port: int | None  # UDP destination port (gue, vxlan-gpe)
    uplink: str | None  # where it arrives; None: not known

    def what(self, kind: str) -> str:
        """``IPIP packets (IP protocol 4)``, ``GUE packets (UDP port 19523)``."""
        carried = f"UDP port {self.port}" if self.port is not None else self._protocol()
        return f"{NAMES[kind]} packets ({carried})"

    def _protocol(self) -> str:
        return (
            f"IP protocol {self.protocol}" if self.version == 4 else f"next header {self.protocol}"
        )

    def accept_rule(self) -> str:
        """The nft rule that lets the packet in (in a chain of family ip, ip6 or inet)."""
        parts = [f'iifname "{self.uplink}"'] if self.uplink else []
        if self.port is not None:
            parts.append(f"udp dport {self.port}")
        elif self.version == 4:
            parts.append(f"ip protocol {self.protocol}")
        else:
            parts.append(f"ip6 nexthdr {self.protocol}")
        return " ".join([*parts, "accept"])


def packet_of(tunnel: TunnelSpec, uplink: str | None) -> Packet:
    port = tunnel.port if tunnel.kind == "gue" else None
    if tunnel.kind == "vxlan-gpe":
        port = VXLAN_GPE_PORT
    return Packet(tunnel.family, PROTOCOLS[tunnel.kind], port, uplink)


@dataclass(frozen=True)
class Blocked:
    """A base chain that drops a tunnel's packets, and why: its policy (``rule`` None), or
    the rule that drops them (in the chain or one it jumps to; handles are unique in a
    table)."""

    chain: Chain
    tunnel: TunnelSpec
    packet: Packet
    rule: Rule | None  # None: the chain's policy

    def message(self) -> str:
        chain, packet = self.chain, self.packet
        where = f" arriving on {packet.uplink}" if packet.uplink else ""
        if self.rule is None:
            cause = "has policy drop and no rule that surely accepts them"
            verb = "add"
        else:
            handle = f" (handle {self.rule.handle})" if self.rule.handle is not None else ""
            cause = f"{self.rule.verdict}s them at a rule{handle} before any rule accepts them"
            verb = "insert"
        return (
            f"the host firewall drops the {packet.what(self.tunnel.kind)} of tunnel "
            f"{self.tunnel.name}{where} before they are decapsulated: nftables chain "
            f"{chain.title} (hook input) {cause}; to let them in: "
            f"nft {verb} rule {chain.title} {packet.accept_rule()}"
        )


def blocked(ruleset: Ruleset, tunnel: TunnelSpec, uplink: str | None) -> list[Blocked]:
    """The base chains on hook input that would drop the tunnel's packets."""
    packet = packet_of(tunnel, uplink)
    found = []
    for chain in ruleset.chains:
        if chain.hook != "input" or chain.type != "filter":
            continue
        if chain.family not in FAMILIES[packet.version]:
            continue
        outcome, rule = run_chain(ruleset, chain, packet, 0)
        if outcome == DROPPED or (outcome == GOES_ON and chain.policy == "drop"):
            found.append(Blocked(chain, tunnel, packet, rule if outcome == DROPPED else None))
    return found


def firewall_warnings(spec: Spec, host: FirewallHost) -> list[str]:
    """The plan's warnings about the host firewall; nothing (and no nft run) without
    tunnels."""
    if not spec.tunnels:
        return []
    from providers.errors import HostError, PrivilegeError

    try:
        ruleset, legacy = host.input_firewall()
    except (HostError, PrivilegeError) as exc:
        return [
            f"cannot read the nftables ruleset ({exc}): dsrctl could not check that the "
            "host firewall lets the tunnels' packets in"
        ]
    warnings = []
    for tunnel in spec.tunnels:
        found = host.uplink(tunnel.family, tunnel.uplink)
        uplink = found.name if found is not None else None
        if ruleset is not None:
            warnings += [item.message() for item in blocked(ruleset, tunnel, uplink)]
    families = {f"ip{'6' if t.family == 6 else ''} filter" for t in spec.tunnels}
    legacy_filters = [table for table in legacy if table in families]
    if legacy_filters:
        warnings.append(
            f"iptables-legacy has the table(s) {', '.join(legacy_filters)}: dsrctl reads only "
            "nftables (iptables-nft rules included) and cannot tell whether they drop the "
            "tunnels' packets; check the INPUT chain (iptables-legacy -S INPUT, "
            "ip6tables-legacy -S INPUT)"
        )
    return warnings


def run_chain(
    ruleset: Ruleset, chain: Chain, packet: Packet, depth: int
) -> tuple[str, Rule | None]:
    """What ``chain`` does with the packet, and the rule that decided (None: none did)."""
    if depth > MAX_DEPTH:
        return GOES_ON, None
    for rule in chain.rules:
        if rule.verdict is None or rule_holds(rule, packet) != TRUE:
            continue
        if rule.verdict == "accept":
            return ACCEPTED, rule
        if rule.verdict in ("drop", "reject"):
            return DROPPED, rule
        if rule.verdict == "return":
            return GOES_ON, rule
        if rule.verdict in ("jump", "goto") and rule.target is not None:
            called = ruleset.find(chain.family, chain.table, rule.target)
            if called is None:
                continue
            outcome, decided = run_chain(ruleset, called, packet, depth + 1)
            if outcome != GOES_ON or rule.verdict == "goto":
                return outcome, decided
        # continue, queue (userspace decides): on to the next rule
    return GOES_ON, None


def rule_holds(rule: Rule, packet: Packet) -> str:
    """Whether every condition of the rule surely holds for the packet."""
    if rule.unknown:
        return UNSURE
    accepting = rule.verdict in ACCEPTING
    truths = [match_holds(match, packet, accepting) for match in rule.matches]
    if FALSE in truths:
        return FALSE
    return UNSURE if UNSURE in truths else TRUE


def match_holds(match: Match, packet: Packet, accepting: bool) -> str:
    """One condition for the packet. ``accepting``: the rule accepts (or jumps), where a
    source address is taken to be the balancer's."""
    left, values = match.left, match.values
    protocol, _, field = left.partition(" ")
    if protocol in ("ip", "ip6"):
        if (protocol == "ip") != (packet.version == 4):
            return FALSE  # the expression implies its IP version
        if field == "saddr":
            return TRUE if accepting else UNSURE
        if field in ("protocol", "nexthdr"):
            return _compare(match, packet.protocol)
        return UNSURE
    if protocol in ("udp", "th"):
        if packet.protocol != UDP:
            return FALSE if protocol == "udp" else UNSURE
        return _compare(match, packet.port) if field == "dport" else UNSURE
    if protocol in ("tcp", "sctp", "dccp", "udplite", "icmp", "icmpv6", "igmp"):
        return FALSE  # nft adds the dependency on that protocol
    if values is None:
        return UNSURE
    if left == "meta l4proto":
        return _compare(match, packet.protocol)
    if left in ("meta iifname", "meta iif"):
        return UNSURE if packet.uplink is None else _compare(match, packet.uplink)
    if left == "meta nfproto":
        return _compare(match, "ipv4" if packet.version == 4 else "ipv6")
    if left == "meta protocol":
        return _compare(match, "ip" if packet.version == 4 else "ip6")
    if left == "meta pkttype":
        return _compare(match, "host")
    if left == "ct state":
        return _compare(match, "new")
    if left == "fib daddr type":
        return _compare(match, "local")
    return UNSURE


def _compare(match: Match, value: int | str | None) -> str:
    if value is None or match.values is None:
        return UNSURE
    op, values = match.op, match.values
    if op in ("==", "in", "!="):
        found = any(_covers(term, value) for term in values)
        return TRUE if found == (op != "!=") else FALSE
    if len(values) != 1 or not isinstance(values[0], int) or not isinstance(value, int):
        return UNSURE
    bound = values[0]
    held = {"<": value < bound, ">": value > bound, "<=": value <= bound, ">=": value >= bound}
    if op not in held:
        return UNSURE
    return TRUE if held[op] else FALSE


def _covers(term: Term, value: int | str) -> bool:
    if isinstance(term, tuple):
        return isinstance(value, int) and term[0] <= value <= term[1]
    if isinstance(term, str) and isinstance(value, str) and term.endswith("*"):
        return value.startswith(term[:-1])  # nft's interface name wildcard: "eth*"
    return term == value
