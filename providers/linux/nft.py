"""dsrctl's own nftables table, ``table inet dsrctl``: the MSS clamp of tunnel-mode DSR.

A balancer that encapsulates adds 20-44 bytes to every client packet and neither
fragments nor lets path-MTU discovery work (the replies bypass it), so the client must
never send a full-size segment. The server says so in its SYN-ACK: one rule per IP
version lowers the MSS option of SYN-ACKs whose source is a VIP (a named set, with
intervals for VIP ranges)::

    ip saddr @vips4 tcp flags & (syn | ack) == syn | ack \\
        tcp option maxseg size > 1440 tcp option maxseg size set 1440

The chain hooks ``output`` (a SYN-ACK is generated locally) with type ``filter`` at
priority ``mangle`` (-150): it changes the packet, so it runs before the host
firewall's chains at priority ``filter`` (0), which then see (and may log) the
packet as it leaves; an ``accept`` in another base chain does not skip it.

Reading runs ``nft -j list table inet dsrctl`` (no shell) and decodes the JSON into an
:class:`~providers.model.MssClamp`; anything in the table that dsrctl would not have
written is kept, as JSON, in ``other`` so that the diff sees it. Writing is one
``nft -f -`` transaction that replaces the whole table: ``add table`` (so that the
``delete`` cannot fail), ``delete table``, then the definition. nft applies a script
atomically: if any line fails, the table is left as it was. The persisted file
(/etc/dsrctl/mss.nft) holds the same script, so the boot loads exactly what apply did.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from collections.abc import Iterable
from typing import Any

from providers.errors import HostError, PrivilegeError, ProviderError
from providers.model import ClampRule, MssClamp

FAMILY, TABLE, CHAIN = "inet", "dsrctl", "mss"
SETS = {4: "vips4", 6: "vips6"}
_PROTOCOLS = {4: "ip", 6: "ip6"}
_SET_TYPES = {4: "ipv4_addr", 6: "ipv6_addr"}
SYN_ACK = frozenset({"syn", "ack"})
_CHAIN = {"type": "filter", "hook": "output", "prio": -150, "policy": "accept"}
TIMEOUT = 60.0  # seconds for one nft run (a set of 10,000 VIPs loads in well under one)


# Where distributions install nft, for a PATH without the sbin directories (cron's
# default is /usr/bin:/bin, and drift runs from cron).
SBIN = ("/usr/sbin", "/sbin")


def find_nft() -> str | None:
    """The nft program on PATH or in the sbin directories, or None."""
    return shutil.which("nft") or shutil.which("nft", path=os.pathsep.join(SBIN))


def collapse(networks: Iterable[str], version: int) -> tuple[str, ...]:
    """Canonical sources: networks of one IP version, overlaps and neighbours merged
    (nft refuses overlapping intervals in a set), sorted, compressed."""
    parsed = [ipaddress.ip_network(network, strict=False) for network in networks]
    if version == 4:
        v4 = [network for network in parsed if isinstance(network, ipaddress.IPv4Network)]
        return tuple(network.compressed for network in ipaddress.collapse_addresses(v4))
    v6 = [network for network in parsed if isinstance(network, ipaddress.IPv6Network)]
    return tuple(network.compressed for network in ipaddress.collapse_addresses(v6))


def rule_text(version: int, mss: int) -> str:
    protocol, name = _PROTOCOLS[version], SETS[version]
    return (
        f"{protocol} saddr @{name} tcp flags & (syn | ack) == syn | ack "
        f"tcp option maxseg size > {mss} tcp option maxseg size set {mss}"
    )


def script(clamp: MssClamp | None, header: Iterable[str] = ()) -> str:
    """The nft script that makes the table exactly ``clamp`` (None: no table), whatever
    is there now. ``header``: comment lines (without '#') to start with."""
    lines = [f"# {line}" for line in header]
    lines += [f"add table {FAMILY} {TABLE}", f"delete table {FAMILY} {TABLE}"]
    if clamp is None:
        return "\n".join(lines) + "\n"
    rules = [(4, clamp.ipv4), (6, clamp.ipv6)]
    lines.append(f"table {FAMILY} {TABLE} {{")
    for version, rule in rules:
        if rule is None:
            continue
        lines += [
            f"\tset {SETS[version]} {{",
            f"\t\ttype {_SET_TYPES[version]}",
            "\t\tflags interval",
            f"\t\telements = {{ {', '.join(rule.sources)} }}",
            "\t}",
        ]
    lines += [
        f"\tchain {CHAIN} {{",
        "\t\ttype filter hook output priority mangle; policy accept;",
        *(f"\t\t{rule_text(version, rule.mss)}" for version, rule in rules if rule is not None),
        "\t}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def read_clamp(nft: str | None = None) -> MssClamp | None:
    """The table as it is now; None when there is none."""
    program = nft or _required()
    result = _run([program, "-j", "list", "table", FAMILY, TABLE])
    if result.returncode != 0:
        if "No such file or directory" in result.stderr:
            return None
        raise _failure("read", result.stderr)
    try:
        data = json.loads(result.stdout)
    except ValueError as exc:
        raise HostError(f"nft printed what is not JSON for table {FAMILY} {TABLE}: {exc}") from None
    return decode(data)


def load(text: str, nft: str | None = None) -> None:
    """Run ``text`` as one nft transaction (``nft -f -``)."""
    result = _run([nft or _required(), "-f", "-"], text)
    if result.returncode != 0:
        raise _failure("change", result.stderr)


def decode(data: Any) -> MssClamp | None:
    """nft's JSON of ``table inet dsrctl`` -> the clamp; what does not fit goes to other."""
    items = data.get("nftables", []) if isinstance(data, dict) else []
    found_table = False
    elements: dict[str, tuple[int, tuple[str, ...]]] = {}  # set name -> version, sources
    rules: list[tuple[int, int, str]] = []  # version, mss, set name
    other: list[str] = []
    for item in items:
        if not isinstance(item, dict) or len(item) != 1:
            continue
        (kind, body), *_ = item.items()
        if kind == "metainfo":
            continue
        if kind == "table":
            found_table = True
            continue
        if kind == "set" and isinstance(body, dict):
            decoded = _decode_set(body)
            if decoded is not None:
                elements[body["name"]] = decoded
                continue
        elif kind == "chain" and isinstance(body, dict):
            if body.get("name") == CHAIN and all(body.get(k) == v for k, v in _CHAIN.items()):
                continue
        elif kind == "rule" and isinstance(body, dict):
            decoded_rule = _decode_rule(body)
            if decoded_rule is not None:
                rules.append(decoded_rule)
                continue
        other.append(_canonical(kind, body))
    if not found_table:
        return None
    clamps: dict[int, ClampRule] = {}
    for version, mss, set_name in rules:
        if version in clamps or set_name not in elements:
            other.append(f"rule: {rule_text(version, mss)}")
            continue
        clamps[version] = ClampRule(mss, elements.pop(set_name)[1])
    other += [f"set {name}" for name in sorted(elements)]  # a set no rule uses
    return MssClamp(clamps.get(4), clamps.get(6), tuple(sorted(other)))


def _decode_set(body: dict[str, Any]) -> tuple[int, tuple[str, ...]] | None:
    version = next((v for v, name in SETS.items() if body.get("name") == name), None)
    if version is None or body.get("type") != _SET_TYPES[version]:
        return None
    # Keys beside these (a comment, the set's size...) do not change what it matches;
    # elements with timeouts are not plain elements and fail below.
    if body.get("flags") != ["interval"]:
        return None
    networks: list[str] = []
    for element in body.get("elem", []):
        if isinstance(element, str):
            networks.append(element)
        elif isinstance(element, dict) and isinstance(element.get("prefix"), dict):
            networks.append(f"{element['prefix']['addr']}/{element['prefix']['len']}")
        elif isinstance(element, dict) and isinstance(element.get("range"), list):
            first, last = (ipaddress.ip_address(a) for a in element["range"])
            networks += [n.compressed for n in ipaddress.summarize_address_range(first, last)]
        else:
            return None
    try:
        return version, collapse(networks, version)
    except ValueError:
        return None


def _decode_rule(body: dict[str, Any]) -> tuple[int, int, str] | None:
    """(version, mss, set) of a rule that does what :func:`rule_text`'s does, however nft
    prints it (0.9 and 1.0 print the flags differently), else None. A comment is no
    change of what it does and is not compared."""
    expr = body.get("expr")
    if body.get("chain") != CHAIN or not isinstance(expr, list) or len(expr) != 4:
        return None
    saddr, flags, above, mangle = expr
    try:
        protocol = saddr["match"]["left"]["payload"]["protocol"]
        version = next(v for v, name in _PROTOCOLS.items() if name == protocol)
        mss = mangle["mangle"]["value"]
        masked, mask = flags["match"]["left"]["&"]
        wanted_flags = {_flags(mask), _flags(flags["match"]["right"])} == {SYN_ACK}
        syn_ack = wanted_flags and flags["match"]["op"] == "=="
    except (KeyError, TypeError, ValueError, StopIteration):
        return None
    option = {"tcp option": {"name": "maxseg", "field": "size"}}
    wanted = [
        {
            "match": {
                "op": "==",
                "left": {"payload": {"protocol": protocol, "field": "saddr"}},
                "right": f"@{SETS[version]}",
            }
        },
        {"match": {"op": ">", "left": option, "right": mss}},
        {"mangle": {"key": option, "value": mss}},
    ]
    tcp_flags = {"payload": {"protocol": "tcp", "field": "flags"}}
    if not syn_ack or masked != tcp_flags or [saddr, above, mangle] != wanted:
        return None
    if isinstance(mss, bool) or not isinstance(mss, int):
        return None
    return version, mss, SETS[version]


def _flags(value: Any) -> frozenset[str]:
    """TCP flag names however nft prints a set of them: ``["syn", "ack"]`` (1.0), or
    ``{"|": ["syn", "ack"]}`` (0.9), or one name."""
    if isinstance(value, str):
        return frozenset({value})
    if isinstance(value, dict) and set(value) == {"|"}:
        value = value["|"]
    if isinstance(value, list):
        return frozenset().union(*(_flags(item) for item in value))
    raise ValueError(f"not TCP flags: {value!r}")


def _canonical(kind: str, body: Any) -> str:
    if isinstance(body, dict):
        body = {key: value for key, value in body.items() if key != "handle"}
    return f"{kind}: {json.dumps(body, sort_keys=True)}"


def _required() -> str:
    program = find_nft()
    if program is None:
        raise HostError(
            f"nft (nftables) is not installed (not on PATH, nor in {' or '.join(SBIN)}): "
            f"dsrctl cannot read or change its table "
            f"{FAMILY} {TABLE}; install nftables"
        )
    return program


def _run(command: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            command,
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        raise HostError(f"{' '.join(command[:3])} did not finish within {TIMEOUT:.0f} s") from None
    except OSError as exc:
        raise HostError(f"cannot run {command[0]}: {exc.strerror}") from None


def _failure(what: str, stderr: str) -> ProviderError:
    message = " ".join(stderr.split()) or "no message"
    if "Operation not permitted" in stderr:
        return PrivilegeError(
            f"cannot {what} the nftables table {FAMILY} {TABLE}: run dsrctl as root "
            "(it needs CAP_NET_ADMIN)"
        )
    return HostError(f"nft could not {what} the table {FAMILY} {TABLE}: {message}")
