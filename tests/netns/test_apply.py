"""apply / drift / plan against the real kernel, one server namespace at a time."""

from __future__ import annotations

import json

from tests.netns.namespaces import Netns, write_spec

# Spelled unusually on purpose (upper-case IPv6): the spec is canonicalised.
SPEC = """
version = 1
[[vip]]
address = "192.0.2.100"
label = "lo:1"
[[vip]]
address = "2001:DB8::100"
"""


def test_apply_converges_and_second_apply_changes_nothing(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    first = netns.dsrctl("apply", "--auto-approve", str(spec))
    assert first.returncode == 0, first.stderr
    assert "Apply complete: 5 change(s)" in first.stdout
    assert netns.sysctl("net.ipv4.conf.all.arp_ignore") == "1"
    assert netns.sysctl("net.ipv4.conf.all.arp_announce") == "2"
    lo = netns.addresses()
    assert "inet 192.0.2.100/32 scope global lo:1" in lo
    assert "inet6 2001:db8::100/128 scope global nodad deprecated" in lo
    assert "preferred_lft 0sec" in lo

    second = netns.dsrctl("apply", "--auto-approve", str(spec))
    assert second.returncode == 0, second.stderr
    assert "No changes" in second.stdout
    plan = netns.dsrctl("plan", "--json", "--detailed-exitcode", str(spec))
    assert plan.returncode == 0
    assert json.loads(plan.stdout)["changes"] == []
