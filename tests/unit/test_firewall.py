"""The host firewall warning of tunnel mode: nft's JSON decoded (recorded from nft 1.0.6
and iptables-nft 1.8.9 in a namespace: tests/golden/firewall/*.nft, iptables-nft.sh) and
the judgement of which input chains drop which tunnel's packets. The real kernel and
real traffic: tests/netns/test_firewall.py."""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from dsrctl.linux.firewall import Blocked, blocked, firewall_warnings
from dsrctl.spec import Spec, parse_spec
from dsrctl.tunnels import TunnelSpec
from providers.errors import PrivilegeError
from providers.linux.firewall import Match, Rule, Ruleset, decode, legacy_tables
from providers.linux.uplinks import Uplink, Uplinks

GOLDEN = Path(__file__).parents[1] / "golden" / "firewall"
KINDS = ("ipip", "gre", "ip6ip6", "ip6gre", "gue", "vxlan-gpe")


def recorded(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GOLDEN / f"{name}.json").read_text())
    return data


def tunnel(kind: str, port: int | None = None) -> TunnelSpec:
    if kind == "gue" and port is None:
        port = 19523
    return TunnelSpec(kind=kind, name=f"{kind}-dev", port=port, mss=None, uplink=None)


def keep_rules(data: dict[str, Any], chain: str, handles: set[int]) -> Ruleset:
    """The recorded ruleset with only the rules ``handles`` left in ``chain`` (the other
    chains keep theirs)."""
    items = [
        item
        for item in copy.deepcopy(data)["nftables"]
        if "rule" not in item or item["rule"]["chain"] != chain or item["rule"]["handle"] in handles
    ]
    return decode({"nftables": items})


def verdicts(ruleset: Ruleset, kind: str, uplink: str | None = "eth0") -> list[tuple[str, str]]:
    """(chain, 'policy' or the rule's handle) of each chain that drops the kind's packets."""
    found = blocked(ruleset, tunnel(kind), uplink)
    return [(item.chain.title, cause(item)) for item in found]


def cause(item: Blocked) -> str:
    return "policy" if item.rule is None else f"rule {item.rule.handle}"


# -- decoding ---------------------------------------------------------------------------
def test_nft_json_decodes_into_matches_with_protocol_numbers_sets_and_ranges() -> None:
    ruleset = decode(recorded("many-rules"))
    chain = ruleset.find("inet", "filter", "input")
    assert chain is not None
    assert (chain.type, chain.hook, chain.priority, chain.policy) == ("filter", "input", 0, "drop")
    rules = {rule.handle: rule for rule in chain.rules}
    # nft prints IP protocol 4 as "ipencap" (/etc/protocols) and "ipip" is 94.
    assert rules[8].matches == (Match("meta l4proto", "==", (4,)),)
    assert rules[19].matches[2] == Match("meta l4proto", "==", (94,))
    assert rules[5].matches == (Match("ct state", "in", ("established", "related")),)
    assert rules[14].matches == (Match("udp dport", "==", (4790, 19523)),)
    assert rules[15].matches == (Match("udp dport", "==", ((4000, 5000),)),)
    # named sets are resolved, intervals included
    assert rules[17].matches == (Match("meta l4proto", "==", (4, 47)),)
    assert rules[18].matches == (Match("udp dport", "==", ((4790, 4800), 19523)),)
    assert rules[19].matches[1] == Match("ip saddr", "==", ("10.0.0.0/8",))
    assert (rules[28].verdict, rules[28].target) == ("jump", "other")
    assert rules[30] == Rule(30, (), "reject", None, ())


def test_iptables_nft_rules_are_nftables_rules_and_xt_matches_are_not_understood() -> None:
    ruleset = decode(recorded("iptables-nft"))
    chain = ruleset.find("ip", "filter", "INPUT")
    assert chain is not None and chain.policy == "drop"
    rules = {rule.handle: rule for rule in chain.rules}
    assert rules[2].unknown == ('{"xt": {"name": "conntrack", "type": "match"}}',)
    assert rules[4].matches == (Match("meta l4proto", "==", (4,)),)  # -p 4 (counter dropped)
    assert rules[4].unknown == ()
    assert rules[8].unknown == ('{"xt": {"name": "multiport", "type": "match"}}',)


def test_a_verdict_map_becomes_one_rule_per_entry() -> None:
    chain = decode(recorded("firewalld")).find("inet", "vmapped", "input")
    assert chain is not None
    assert [(rule.matches[-1].values, rule.verdict, rule.target) for rule in chain.rules] == [
        (("invalid",), "drop", None),
        (("established",), "accept", None),
        (("related",), "accept", None),
        (("lo",), "accept", None),
        (("eth0",), "jump", "from_uplink"),
    ]


def test_legacy_tables_come_from_proc(tmp_path: Path) -> None:
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "ip_tables_names").write_text("filter\nnat\n")
    assert legacy_tables(str(tmp_path)) == ("ip filter", "ip nat")
    assert legacy_tables(str(tmp_path / "missing")) == ()


# -- the judgement, one recorded rule at a time -------------------------------------------
# rule handle of many-rules.nft -> the kinds whose packets it surely accepts (uplink eth0)
ACCEPTS = {
    5: (),  # ct state established,related: the balancer's packets are all new
    7: (),  # iifname "lo"
    8: ("ipip",),  # meta l4proto 4
    9: ("gre",),  # ip protocol 47: IPv4 only
    10: ("ip6ip6",),  # ip6 nexthdr 41
    11: ("ip6ip6",),  # meta l4proto ipv6 (41)
    12: ("gue",),  # udp dport 19523
    14: ("gue", "vxlan-gpe"),  # udp dport { 4790, 19523 }
    15: ("vxlan-gpe",),  # udp dport 4000-5000
    16: ("vxlan-gpe",),  # th dport 4790
    17: ("ipip", "gre", "ip6gre"),  # meta l4proto @tun (4, 47)
    18: ("gue", "vxlan-gpe"),  # udp dport @ports (interval set)
    19: (),  # iifname eth0 ip saddr 10/8 meta l4proto ipip: "ipip" is 94, not 4
    21: KINDS,  # iifname { "eth0", "eth1" }
    23: ("ipip", "gre", "gue", "vxlan-gpe"),  # meta nfproto ipv4
    25: ("ipip", "gre", "ip6gre"),  # meta l4proto { 4, 47 }
    26: KINDS,  # ct state new
    27: KINDS,  # ct state != established
    28: ("gre", "ip6gre"),  # jump other: meta l4proto gre accept
    29: (),  # tcp dport 22
}


@pytest.mark.parametrize("handle", sorted(ACCEPTS))
def test_which_rule_accepts_which_tunnel(handle: int) -> None:
    ruleset = keep_rules(recorded("many-rules"), "input", {handle})
    for kind in KINDS:
        expected = [] if kind in ACCEPTS[handle] else [("inet filter input", "policy")]
        assert verdicts(ruleset, kind) == expected, (handle, kind)


def test_an_iifname_accept_counts_only_for_the_uplink_it_names() -> None:
    ruleset = keep_rules(recorded("many-rules"), "input", {21})
    assert verdicts(ruleset, "ipip", "eth1") == []
    assert verdicts(ruleset, "ipip", "eth2") == [("inet filter input", "policy")]
    assert verdicts(ruleset, "ipip", None) == [("inet filter input", "policy")]  # not known


def test_a_source_address_is_taken_as_the_balancers_for_an_accept_not_for_a_drop() -> None:
    # iptables -A INPUT -s 10.0.0.0/8 -p ipencap -j ACCEPT (and nothing else)
    only = keep_rules(recorded("iptables-nft"), "INPUT", {7})
    assert verdicts(only, "ipip") == []
    assert verdicts(only, "gre") == [("ip filter INPUT", "policy")]
    saddr = {"payload": {"protocol": "ip", "field": "saddr"}}
    drop = {"match": {"op": "==", "left": saddr, "right": "192.0.2.9"}}
    chain = {
        "family": "ip",
        "table": "t",
        "name": "in",
        "type": "filter",
        "hook": "input",
        "prio": 0,
        "policy": "accept",
    }
    dropping = decode(
        {
            "nftables": [
                {"chain": chain},
                {
                    "rule": {
                        "family": "ip",
                        "table": "t",
                        "chain": "in",
                        "handle": 2,
                        "expr": [drop, {"drop": None}],
                    }
                },
            ]
        }
    )
    assert verdicts(dropping, "ipip") == []  # it may not be the balancer's address


def test_a_drop_or_reject_before_the_accept_drops_and_says_at_which_rule() -> None:
    data = recorded("many-rules")
    # ip protocol != 4 drop, then meta l4proto { 4, 47 } accept
    ruleset = keep_rules(data, "input", {22, 25})
    assert verdicts(ruleset, "ipip") == []
    assert verdicts(ruleset, "gre") == [("inet filter input", "rule 22")]
    assert verdicts(ruleset, "ip6gre") == []  # "ip protocol" is IPv4's: no drop for IPv6
    # reject with icmpx admin-prohibited, then everything else
    rejected = keep_rules(data, "input", {30, 26})
    assert verdicts(rejected, "gue") == []  # ct state new accept comes first (26 < 30)
    assert verdicts(keep_rules(data, "input", {30}), "gue") == [("inet filter input", "rule 30")]


def test_iptables_nft_rules() -> None:
    ruleset = decode(recorded("iptables-nft"))
    assert verdicts(ruleset, "ipip") == []  # -p 4 -j ACCEPT
    assert verdicts(ruleset, "gre") == []  # -p gre -j ACCEPT
    assert verdicts(ruleset, "gue") == []  # -i eth0 -p udp --dport 19523
    assert verdicts(ruleset, "gue", "eth1") == [("ip filter INPUT", "policy")]
    # -m multiport is an xt match nft cannot show: not counted, so a warning
    assert verdicts(ruleset, "vxlan-gpe") == [("ip filter INPUT", "policy")]
    assert verdicts(ruleset, "ip6ip6") == []  # ip6tables -p 41 -j ACCEPT
    assert verdicts(ruleset, "ip6gre") == [("ip6 filter INPUT", "policy")]


def test_jumps_gotos_verdict_maps_and_every_base_chain() -> None:
    """firewalld's shape: policy accept, jumps to the zone's chains, a final reject; and
    a second input chain of another table that must let the packet through as well."""
    ruleset = decode(recorded("firewalld"))
    # udp dport 19523 accepted in filter_IN_public_allow (jump, goto, jump); vmapped's
    # policy drop: iifname eth0 jumps to from_uplink, which does not accept UDP
    assert verdicts(ruleset, "gue") == [("inet vmapped input", "policy")]
    # IPIP: firewalld rejects it at its last rule; vmapped accepts it from eth0
    assert verdicts(ruleset, "ipip") == [("inet firewalld filter_INPUT", "rule 13")]
    assert verdicts(ruleset, "ip6ip6") == [("inet firewalld filter_INPUT", "rule 13")]
    assert verdicts(ruleset, "ipip", "eth1") == [
        ("inet firewalld filter_INPUT", "rule 13"),
        ("inet vmapped input", "policy"),
    ]


def test_chains_of_other_hooks_families_and_types_do_not_count() -> None:
    # simple.nft: input and forward chains with policy drop
    ruleset = decode(recorded("simple"))
    assert verdicts(ruleset, "ipip") == [("inet filter input", "policy")]
    ip_only = decode(
        {
            "nftables": [
                {
                    "chain": {
                        "family": "ip",
                        "table": "t",
                        "name": "in",
                        "type": "filter",
                        "hook": "input",
                        "prio": 0,
                        "policy": "drop",
                    }
                },
                {
                    "chain": {
                        "family": "ip6",
                        "table": "t",
                        "name": "nat",
                        "type": "nat",
                        "hook": "input",
                        "prio": 100,
                        "policy": "drop",
                    }
                },
            ]
        }
    )
    assert verdicts(ip_only, "ip6ip6") == []  # an ip chain sees no IPv6; nat does not filter
    assert verdicts(ip_only, "gre") == [("ip t in", "policy")]


# -- the warnings -----------------------------------------------------------------------
# The host's uplinks: eth0 is the device of both default routes.
UPLINKS = Uplinks({4: (Uplink("eth0", 1500),), 6: (Uplink("eth0", 1500),)}, {"eth0": 1500})


class FakeHost:
    def __init__(
        self,
        ruleset: Ruleset | None = None,
        legacy: tuple[str, ...] = (),
        error: Exception | None = None,
    ) -> None:
        self.ruleset, self.legacy, self.error = ruleset, legacy, error
        self.asked = 0

    def input_firewall(self) -> tuple[Ruleset | None, tuple[str, ...]]:
        self.asked += 1
        if self.error is not None:
            raise self.error
        return self.ruleset, self.legacy


def spec(tunnels: str = "") -> Spec:
    text = f'version = 1\n[[vip]]\naddress = "192.0.2.10"\n{tunnels}'
    return parse_spec(tomllib.loads(text), "/etc/dsrctl/dsrctl.toml")


def test_the_warning_says_what_drops_and_the_exact_rule_to_add() -> None:
    host = FakeHost(decode(recorded("simple")))
    warnings = firewall_warnings(
        spec(
            '[[tunnel]]\nkind = "gre"\n[[tunnel]]\nkind = "gue"\nname = "gue0"\nport = 5555\n'
            '[[tunnel]]\nkind = "ip6ip6"\nuplink = "eth1"\n'
        ),
        host,
        UPLINKS,
    )
    assert warnings == [
        "the host firewall drops the GRE packets (IP protocol 47) of tunnel gre0 arriving on "
        "eth0 before they are decapsulated: nftables chain inet filter input (hook input) has "
        "policy drop and no rule that surely accepts them; to let them in: "
        'nft add rule inet filter input iifname "eth0" ip protocol 47 accept',
        "the host firewall drops the GUE packets (UDP port 5555) of tunnel gue0 arriving on "
        "eth0 before they are decapsulated: nftables chain inet filter input (hook input) has "
        "policy drop and no rule that surely accepts them; to let them in: "
        'nft add rule inet filter input iifname "eth0" udp dport 5555 accept',
        "the host firewall drops the IPv6-in-IPv6 packets (next header 41) of tunnel ip6tnl0 "
        "arriving on eth1 before they are decapsulated: nftables chain inet filter input "
        "(hook input) has policy drop and no rule that surely accepts them; to let them in: "
        'nft add rule inet filter input iifname "eth1" ip6 nexthdr 41 accept',
    ]


def test_vxlan_gpe_over_ipv6_is_followed_as_an_ipv6_packet_on_the_ipv6_uplink() -> None:
    host = FakeHost(decode(recorded("simple")))
    uplinks = Uplinks(
        {4: (Uplink("eth0", 1500),), 6: (Uplink("eth1", 1500),)}, {"eth0": 1500, "eth1": 1500}
    )
    (warning,) = firewall_warnings(
        spec('[[tunnel]]\nkind = "vxlan-gpe"\nouter = 6\n'), host, uplinks
    )
    assert "VXLAN-GPE packets (UDP port 4790) of tunnel dsrgpe0 arriving on eth1" in warning
    assert warning.endswith('nft add rule inet filter input iifname "eth1" udp dport 4790 accept')


def test_a_dropping_rule_gets_an_insert_so_that_the_accept_comes_first() -> None:
    host = FakeHost(keep_rules(recorded("firewalld"), "input", set()))  # vmapped: no rules
    (firewalld, vmapped) = firewall_warnings(spec('[[tunnel]]\nkind = "gre"\n'), host, UPLINKS)
    assert "GRE packets (IP protocol 47) of tunnel gre0" in firewalld
    assert "chain inet firewalld filter_INPUT (hook input) rejects them at a rule (handle 13)" in (
        firewalld
    )
    assert firewalld.endswith(
        'nft insert rule inet firewalld filter_INPUT iifname "eth0" ip protocol 47 accept'
    )
    assert vmapped.endswith('nft add rule inet vmapped input iifname "eth0" ip protocol 47 accept')


def test_no_tunnels_no_question_to_the_host() -> None:
    host = FakeHost(error=AssertionError("nft must not run for a spec without tunnels"))
    assert firewall_warnings(spec(), host, UPLINKS) == []
    assert host.asked == 0


def test_an_accepting_firewall_no_nft_or_an_unreadable_ruleset() -> None:
    tunnels = spec('[[tunnel]]\nkind = "vxlan-gpe"\n')
    accepting = keep_rules(recorded("many-rules"), "input", {14})
    assert firewall_warnings(tunnels, FakeHost(accepting), UPLINKS) == []
    assert firewall_warnings(tunnels, FakeHost(None), UPLINKS) == []  # nft not installed
    refused = FakeHost(error=PrivilegeError("nft: Operation not permitted"))
    assert firewall_warnings(tunnels, refused, UPLINKS) == [
        "cannot read the nftables ruleset (nft: Operation not permitted): dsrctl could not "
        "check that the host firewall lets the tunnels' packets in"
    ]


def test_iptables_legacy_tables_get_a_note_for_the_tunnels_families() -> None:
    legacy = ("ip filter", "ip nat", "ip6 filter")
    (note,) = firewall_warnings(
        spec('[[tunnel]]\nkind = "ipip"\n'), FakeHost(Ruleset(), legacy), UPLINKS
    )
    assert note == (
        "iptables-legacy has the table(s) ip filter: dsrctl reads only nftables (iptables-nft "
        "rules included) and cannot tell whether they drop the tunnels' packets; check the "
        "INPUT chain (iptables-legacy -S INPUT, ip6tables-legacy -S INPUT)"
    )
    assert (
        firewall_warnings(spec('[[tunnel]]\nkind = "ipip"\n'), FakeHost(Ruleset(), ()), UPLINKS)
        == []
    )


def test_each_next_hop_of_an_ecmp_default_route_must_let_the_packets_in() -> None:
    ecmp = Uplinks({4: (Uplink("eth0", 1500), Uplink("eth1", 1400))}, {"eth0": 1500, "eth1": 1400})
    host = FakeHost(decode(recorded("simple")))
    warnings = firewall_warnings(spec('[[tunnel]]\nkind = "gre"\n'), host, ecmp)
    assert [warning.rsplit(" ", 5)[1:] for warning in warnings] == [
        ['"eth0"', "ip", "protocol", "47", "accept"],
        ['"eth1"', "ip", "protocol", "47", "accept"],
    ]
    named = firewall_warnings(spec('[[tunnel]]\nkind = "gre"\nuplink = "eth1"\n'), host, ecmp)
    assert len(named) == 1 and "arriving on eth1" in named[0]
    # No default route of the outer version: the warning names no device.
    (anywhere,) = firewall_warnings(spec('[[tunnel]]\nkind = "ip6ip6"\n'), host, ecmp)
    assert "arriving on" not in anywhere and "iifname" not in anywhere
