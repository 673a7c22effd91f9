"""What dsrctl knows about the sysctls it manages: key syntax, value ranges, safety reasons.

Pure data and functions, no host access. Facts from the kernel's ip-sysctl documentation
(see docs/how-dsr-works.md): the kernel uses max(conf.all, conf.IFACE) for arp_ignore,
arp_announce and rp_filter, and it does not range-check writes, so dsrctl must.
"""

from __future__ import annotations

import re
import unicodedata

# The kernel's spelling of sysctl names is the provider's; re-exported for dsrctl code.
from providers.linux.sysctl_keys import ARP_ANNOUNCE_KEY, ARP_IGNORE_KEY, canonical_key, split_key

__all__ = [
    "ARP_ANNOUNCE_KEY",
    "ARP_ANNOUNCE_REASONS",
    "ARP_IGNORE_KEY",
    "ARP_IGNORE_REASONS",
    "canonical_key",
    "key_problem",
    "leaf",
    "managed_elsewhere",
    "no_effect_note",
    "split_key",
    "value_problem",
]

ARP_IGNORE_REASONS: dict[int, str] = {
    0: "arp_ignore 0 answers ARP for any local address, the VIP included (ARP flux)",
    3: "arp_ignore 3 only skips scope-host addresses; a VIP on lo is scope global, "
    "so the host still answers ARP for it",
    8: "arp_ignore 8 stops the host answering ARP for every address, its own included; "
    "it drops off the network",
}
ARP_ANNOUNCE_REASONS: dict[int, str] = {
    0: "arp_announce 0 may use any local address, the VIP included, as the source of ARP "
    "requests; 2 is the only safe value",
    1: "arp_announce 1 can still use the VIP as the source of ARP requests when the VIP and "
    "the target lie inside the uplink's subnet; 2 is the only safe value",
}

# Values the kernel gives a meaning to. Anything else is refused as out of range.
_KNOWN_RANGES: dict[str, frozenset[int]] = {
    "arp_ignore": frozenset({0, 1, 2, 3, 8}),
    "arp_announce": frozenset(range(0, 3)),
    "rp_filter": frozenset(range(0, 3)),
    "arp_filter": frozenset(range(0, 2)),
    "arp_accept": frozenset(range(0, 3)),
    "arp_notify": frozenset(range(0, 2)),
    "accept_local": frozenset(range(0, 2)),
    "proxy_arp": frozenset(range(0, 2)),
    "src_valid_mark": frozenset(range(0, 2)),
    "promote_secondaries": frozenset(range(0, 2)),
    "forwarding": frozenset(range(0, 2)),
    "disable_ipv6": frozenset(range(0, 2)),
    "accept_dad": frozenset(range(0, 3)),
    "ip_forward": frozenset(range(0, 2)),
    "ip_nonlocal_bind": frozenset(range(0, 2)),
}

_COMPONENT = re.compile(r"^[A-Za-z0-9_.:@+-]+$")
# systemd-sysctl ends a line at \n, \r and NUL; any other control character (and the
# Unicode line separators) would at best hide part of the value from whoever reads the
# file. A tab is fine inside a value: the kernel prints tcp_rmem with tabs.
_VALUE_CONTROLS = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot be a sysctl name, or None if its syntax is fine."""
    parts = split_key(key)
    if len(parts) < 2:
        return "not a sysctl name (expected dotted form such as net.ipv4.conf.eth0.rp_filter)"
    if key.startswith("-"):
        # In a sysctl.d line a leading '-' is not part of the name: it means "ignore
        # errors", so the file would set another key than the spec names.
        return "a sysctl name cannot begin with '-'"
    for part in parts:
        if part in ("", ".", "..") or not _COMPONENT.match(part):
            return f"not a sysctl name (bad component {part!r})"
    return None


def leaf(key: str) -> str:
    return split_key(key)[-1]


def value_problem(key: str, value: int | str) -> str | None:
    """Why ``value`` is not acceptable for ``key``, or None."""
    parts = split_key(key)
    name = parts[-1]
    known = _KNOWN_RANGES.get(name)
    if isinstance(value, str):
        if "\n" in value or "\r" in value:
            return "a sysctl value cannot contain a line break"
        controls = sorted(
            {repr(c) for c in value if c != "\t" and unicodedata.category(c) in _VALUE_CONTROLS}
        )
        if controls:
            return f"a sysctl value cannot contain control characters ({', '.join(controls)})"
        if not value.strip():
            return "a sysctl value cannot be empty"
        if value != value.strip():
            # systemd-sysctl strips them, so the value set at boot would differ from the
            # value dsrctl writes and compares at runtime.
            return "a sysctl value cannot begin or end with whitespace (sysctl.d files drop it)"
        if known is not None:
            return f"{name} takes an integer"
        return None
    if known is not None and value not in known:
        if name == "arp_ignore" and 4 <= value <= 7:
            return "arp_ignore 4-7 are reserved (the kernel silently treats them like 0)"
        shown = ", ".join(str(v) for v in sorted(known))
        return f"out of range for {name} (the kernel knows {shown})"
    is_conf = len(parts) == 5 and parts[:2] in (["net", "ipv4"], ["net", "ipv6"])
    # The kernel takes max(all, iface): a larger per-interface value wins over `all`, and
    # conf.default seeds every interface created later.
    per_interface = is_conf and parts[2] == "conf" and parts[3] != "all"
    if per_interface and name == "arp_ignore" and value in (3, 8):
        return ARP_IGNORE_REASONS[value] + " (the kernel uses max(all, interface))"
    return None


def managed_elsewhere(key: str) -> str | None:
    """Keys that dsrctl sets from dedicated spec keys must not be set twice."""
    canon = canonical_key(key)
    if canon == ARP_IGNORE_KEY:
        return "set linux.arp_ignore instead"
    if canon == ARP_ANNOUNCE_KEY:
        return "set linux.arp_announce instead"
    return None


def no_effect_note(key: str, value: int | str, all_values: dict[str, int | str]) -> str | None:
    """A warning when a per-interface value cannot take effect because `all` is larger."""
    parts = split_key(key)
    if len(parts) != 5 or parts[:3] != ["net", "ipv4", "conf"] or parts[3] in ("all", "default"):
        return None
    name = parts[4]
    if name not in ("arp_ignore", "arp_announce", "rp_filter"):
        return None
    other = all_values.get(f"net.ipv4.conf.all.{name}")
    if isinstance(value, int) and isinstance(other, int) and value < other:
        return (
            f"{canonical_key(key)} = {value} has no effect: the kernel uses "
            f"max(conf.all, conf.{parts[3]}) and conf.all.{name} is {other}"
        )
    if parts[3] == "lo" and name in ("arp_ignore", "arp_announce"):
        return f"{canonical_key(key)} does nothing: lo never receives or sends ARP"
    return None
