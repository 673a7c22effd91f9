"""Kernel facts about sysctl names: how a name maps to /proc/sys, and the ARP keys.

The spelling follows sysctl(8); what dsrctl accepts and why (ranges, safety reasons) is
dsrctl's and stays in ``dsrctl/sysctls.py``, which re-exports these names.
"""

from __future__ import annotations

ARP_IGNORE_KEY = "net.ipv4.conf.all.arp_ignore"
ARP_ANNOUNCE_KEY = "net.ipv4.conf.all.arp_announce"


def split_key(key: str) -> list[str]:
    """Split a sysctl name into /proc/sys path components, following sysctl(8).

    Dots separate components unless the first separator is a slash, in which case slashes
    separate and dots are literal (``net/ipv4/conf/eth0.100/rp_filter``). In dotted form a
    slash stands for a literal dot (``net.ipv4.conf.eth0/100.rp_filter``).
    """
    first_dot, first_slash = key.find("."), key.find("/")
    if first_slash != -1 and (first_dot == -1 or first_slash < first_dot):
        return key.split("/")
    return [part.replace("/", ".") for part in key.split(".")]


def canonical_key(key: str) -> str:
    """The dotted spelling, with literal dots written as slashes (what sysctl(8) prints)."""
    return ".".join(part.replace(".", "/") for part in split_key(key))
