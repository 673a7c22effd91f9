"""The host firewall's chains as nftables shows them, as plain data.

dsrctl does not manage the host firewall, but tunnel mode needs it to let the
encapsulated packets in: a base chain on hook ``input`` with policy drop discards them
before the kernel decapsulates them. dsrctl/linux/firewall.py judges that from what this
module reads: ``nft -j list ruleset`` (no shell), decoded into :class:`Ruleset` --
chains, their rules as matches and a verdict, with named sets resolved. Rules written
with iptables-nft are nftables rules and come along (an iptables match that nft cannot
express is an ``xt`` statement: kept as not understood). iptables-legacy rules are not
in nftables at all: :func:`legacy_tables` only says which legacy tables exist
(/proc/net/ip_tables_names, ip6_tables_names).

The decoding keeps what a judgement needs and no more: the left side of a match as nft
writes it (``meta l4proto``, ``ip protocol``, ``udp dport``, ``ct state``...), its
operator, and its values as numbers, names or ranges; protocol and service names (nft
prints ``ipencap`` for IP protocol 4: /etc/protocols) become numbers. Anything else is
kept as JSON text in ``unknown`` so that the judge can tell it did not understand it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from dataclasses import dataclass
from typing import Any

from providers.errors import HostError

TIMEOUT = 60.0  # seconds for one nft run

# A value of a match: a number, a name (an interface, a ct state, an address/prefix),
# or an inclusive range of numbers.
Term = int | str | tuple[int, int]

# /etc/protocols names nft prints for the protocols that matter here, so that a ruleset
# decodes the same on a host without /etc/protocols (and in the tests). Note "ipip" is
# 94, not 4: nft prints IP protocol 4 as "ipencap".
PROTOCOLS = {
    "ip": 0,
    "icmp": 1,
    "igmp": 2,
    "ipencap": 4,
    "tcp": 6,
    "udp": 17,
    "ipv6": 41,
    "gre": 47,
    "esp": 50,
    "ah": 51,
    "ipv6-icmp": 58,
    "ipip": 94,
    "sctp": 132,
    "udplite": 136,
}
PROTOCOL_FIELDS = frozenset({"meta l4proto", "ip protocol", "ip6 nexthdr"})
PORT_FIELDS = frozenset(
    {f"{proto} {port}" for proto in ("udp", "tcp", "th", "sctp") for port in ("dport", "sport")}
)
# Statements that leave a rule's verdict alone.
NEUTRAL = frozenset({"counter", "log", "mangle", "notrack"})
VERDICTS = frozenset({"accept", "drop", "reject", "jump", "goto", "return", "continue", "queue"})


@dataclass(frozen=True)
class Match:
    """One condition of a rule: ``left`` as nft writes it (``meta l4proto``, ``udp
    dport``, ``ct state``...; JSON text for an expression that is not a plain field),
    the operator (``==``, ``!=``, ``in``, ``<``...) and the values (None: not plain
    values, such as a map, a concatenation or a set that could not be read)."""

    left: str
    op: str
    values: tuple[Term, ...] | None


@dataclass(frozen=True)
class Rule:
    handle: int | None
    matches: tuple[Match, ...]
    verdict: str | None  # accept, drop, reject, jump, goto, return, continue, queue; None
    target: str | None = None  # the chain of a jump or goto
    unknown: tuple[str, ...] = ()  # statements not understood (an iptables xt match...)


@dataclass(frozen=True)
class Chain:
    family: str  # ip, ip6, inet, arp, bridge, netdev
    table: str
    name: str
    type: str | None  # filter, nat, route; None: a regular chain
    hook: str | None
    priority: int | None
    policy: str | None
    rules: tuple[Rule, ...] = ()

    @property
    def title(self) -> str:
        return f"{self.family} {self.table} {self.name}"


@dataclass(frozen=True)
class Ruleset:
    chains: tuple[Chain, ...] = ()

    def find(self, family: str, table: str, name: str) -> Chain | None:
        return next(
            (c for c in self.chains if (c.family, c.table, c.name) == (family, table, name)),
            None,
        )


def read_ruleset(nft: str) -> Ruleset:
    """The whole ruleset; HostError when nft cannot list it (no permission...)."""
    command = [nft, "-j", "list", "ruleset"]
    try:
        result = subprocess.run(command, input="", capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        raise HostError(f"nft -j list ruleset did not finish within {TIMEOUT:.0f} s") from None
    except OSError as exc:
        raise HostError(f"cannot run {nft}: {exc.strerror}") from None
    if result.returncode != 0:
        message = " ".join(result.stderr.split()) or f"exit status {result.returncode}"
        raise HostError(f"nft -j list ruleset failed: {message}")
    try:
        data = json.loads(result.stdout)
    except ValueError as exc:
        raise HostError(f"nft -j list ruleset printed what is not JSON: {exc}") from None
    return decode(data)


def legacy_tables(proc: str = "/proc") -> tuple[str, ...]:
    """The iptables-legacy tables of this network namespace (``ip filter``, ``ip6
    filter``...): their rules are not in nftables."""
    found = []
    for family, name in (("ip", "ip_tables_names"), ("ip6", "ip6_tables_names")):
        try:
            with open(os.path.join(proc, "net", name), encoding="ascii") as handle:
                found += [f"{family} {table}" for table in handle.read().split()]
        except OSError:
            continue
    return tuple(found)


def decode(data: Any) -> Ruleset:
    """``nft -j list ruleset`` -> the chains with their rules, in nft's order."""
    items = data.get("nftables", []) if isinstance(data, dict) else []
    objects = [next(iter(item.items())) for item in items if isinstance(item, dict) and item]
    sets: dict[tuple[str, str, str], Any] = {}
    for kind, body in objects:
        if kind in ("set", "map") and isinstance(body, dict):
            sets[(str(body.get("family")), str(body.get("table")), str(body.get("name")))] = body
    chains: dict[tuple[str, str, str], dict[str, Any]] = {}
    rules: dict[tuple[str, str, str], list[Rule]] = {}
    for kind, body in objects:
        if not isinstance(body, dict):
            continue
        key = (str(body.get("family")), str(body.get("table")), str(body.get("name")))
        if kind == "chain":
            chains[key] = body
            rules.setdefault(key, [])
        elif kind == "rule":
            key = (key[0], key[1], str(body.get("chain")))
            table_sets = {name: found for (f, t, name), found in sets.items() if (f, t) == key[:2]}
            rules.setdefault(key, []).extend(_decode_rule(body, table_sets))
    result = []
    for key, body in chains.items():
        priority = body.get("prio")
        result.append(
            Chain(
                family=key[0],
                table=key[1],
                name=key[2],
                type=body.get("type"),
                hook=body.get("hook"),
                priority=priority if isinstance(priority, int) else None,
                policy=body.get("policy"),
                rules=tuple(rules.get(key, [])),
            )
        )
    return Ruleset(tuple(result))


def _decode_rule(body: dict[str, Any], sets: dict[str, Any]) -> list[Rule]:
    """One rule; a verdict map (``ct state vmap { ... }``) becomes one rule per entry:
    its keys are distinct, so at most one of them matches a packet."""
    handle = body.get("handle") if isinstance(body.get("handle"), int) else None
    matches: list[Match] = []
    unknown: list[str] = []
    for statement in body.get("expr", []) if isinstance(body.get("expr"), list) else []:
        if not isinstance(statement, dict) or len(statement) != 1:
            unknown.append(json.dumps(statement, sort_keys=True))
            continue
        ((kind, value),) = statement.items()
        if kind == "match" and isinstance(value, dict):
            left = _left(value.get("left"))
            matches.append(
                Match(left, str(value.get("op", "==")), _values(value.get("right"), left, sets))
            )
        elif kind in VERDICTS:
            target = value.get("target") if isinstance(value, dict) else None
            # A verdict ends the rule: what follows it is never reached.
            return [Rule(handle, tuple(matches), kind, target, tuple(unknown))]
        elif kind == "vmap" and isinstance(value, dict):
            return _expand_vmap(handle, matches, unknown, value, sets)
        elif kind not in NEUTRAL:
            unknown.append(json.dumps(statement, sort_keys=True))
    return [Rule(handle, tuple(matches), None, None, tuple(unknown))]


def _expand_vmap(
    handle: int | None,
    matches: list[Match],
    unknown: list[str],
    vmap: dict[str, Any],
    sets: dict[str, Any],
) -> list[Rule]:
    left = _left(vmap.get("key"))
    data = vmap.get("data")
    if isinstance(data, str) and data.startswith("@"):
        found = sets.get(data[1:])
        data = {"set": found.get("elem", [])} if isinstance(found, dict) else None
    entries = data.get("set") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return [Rule(handle, tuple(matches), None, None, (*unknown, json.dumps(vmap)))]
    rules = []
    for entry in entries:
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], dict)):
            rules.append(Rule(handle, tuple(matches), None, None, (*unknown, json.dumps(entry))))
            continue
        key, verdict = entry
        kind, value = next(iter(verdict.items())) if len(verdict) == 1 else ("?", None)
        target = value.get("target") if isinstance(value, dict) else None
        condition = Match(left, "==", _values(key, left, sets))
        if kind in VERDICTS:
            rules.append(Rule(handle, (*matches, condition), kind, target, tuple(unknown)))
        else:
            rules.append(Rule(handle, (*matches, condition), None, None, (*unknown, kind)))
    return rules


def _left(expr: Any) -> str:
    """The left side of a match as nft writes it, or its JSON."""
    if isinstance(expr, dict) and len(expr) == 1:
        ((kind, body),) = expr.items()
        if kind == "meta" and isinstance(body, dict) and "key" in body:
            return f"meta {body['key']}"
        if kind == "ct" and isinstance(body, dict) and "key" in body and "dir" not in body:
            return f"ct {body['key']}"
        if kind == "payload" and isinstance(body, dict) and {"protocol", "field"} <= set(body):
            return f"{body['protocol']} {body['field']}"
        if kind == "fib" and isinstance(body, dict):
            flags = body.get("flags", [])
            flags = [flags] if isinstance(flags, str) else flags
            return " ".join(["fib", *map(str, flags), str(body.get("result"))])
    return json.dumps(expr, sort_keys=True)


def _values(right: Any, left: str, sets: dict[str, Any]) -> tuple[Term, ...] | None:
    if isinstance(right, str) and right.startswith("@"):
        found = sets.get(right[1:])
        if not isinstance(found, dict) or found.get("map") is not None:
            return None
        right = {"set": found.get("elem", [])}
    items = right["set"] if isinstance(right, dict) and "set" in right else right
    items = items if isinstance(items, list) else [items]
    terms: list[Term] = []
    for item in items:
        term = _term(item, left)
        if term is None:
            return None
        terms.append(term)
    return tuple(terms)


def _term(item: Any, left: str) -> Term | None:
    if isinstance(item, dict) and "elem" in item and isinstance(item["elem"], dict):
        item = item["elem"].get("val")  # an element with a counter, timeout or comment
    if isinstance(item, bool):
        return None
    if isinstance(item, int):
        return item
    if isinstance(item, str):
        number = _number(item, left)
        return number if number is not None else item
    if isinstance(item, dict) and isinstance(item.get("range"), list) and len(item["range"]) == 2:
        low, high = (_term(end, left) for end in item["range"])
        if isinstance(low, int) and isinstance(high, int):
            return (low, high)
        return None
    if isinstance(item, dict) and isinstance(item.get("prefix"), dict):
        prefix = item["prefix"]
        return f"{prefix.get('addr')}/{prefix.get('len')}"
    return None


def _number(name: str, left: str) -> int | None:
    """A protocol or service name as its number, for the fields that hold one."""
    if left in PROTOCOL_FIELDS:
        if name in PROTOCOLS:
            return PROTOCOLS[name]
        try:
            return socket.getprotobyname(name)
        except OSError:
            return None
    if left in PORT_FIELDS:
        try:
            return socket.getservbyname(name, "tcp" if left.startswith("tcp") else "udp")
        except OSError:
            return None
    return None
