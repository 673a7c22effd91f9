"""The standard-library rtnetlink reader against the kernel, pyroute2 and ip(8)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.netns.namespaces import Netns

READ_BOTH = r"""
import json, socket
from pyroute2 import IPRoute
from providers.linux import rtnl
from providers.linux.addresses import read_interfaces

ours = sorted(
    [r.index, r.family, r.address, r.prefix, r.flags, r.label, r.preferred]
    for r in rtnl.dump_addresses()
)
theirs = []
with IPRoute() as ipr:
    for m in ipr.addr("dump"):
        family = m["family"]
        address = m.get("address")
        if family == socket.AF_INET:
            address = m.get("local") or address
        flags = m.get("IFA_FLAGS")
        flags = m["flags"] if flags is None else flags
        preferred = (m.get("cacheinfo") or {}).get("ifa_preferred", 0xFFFFFFFF)
        label = m.get("label")
        theirs.append([m["index"], family, address, m["prefixlen"], flags, label, preferred])
    links_theirs = sorted([l["index"], l.get("ifname")] for l in ipr.get_links())
links_ours = sorted([l.index, l.name] for l in rtnl.dump_links())
_, found = read_interfaces(["lo", "dsr0"])
print(json.dumps({
    "ours": ours, "theirs": sorted(theirs),
    "links_ours": links_ours, "links_theirs": links_theirs,
    "found": {n: sorted(found[n]) for n in found},
}))
"""


def test_reader_matches_pyroute2_and_ip(netns: Netns) -> None:
    netns.run("ip", "link", "add", "dsr0", "type", "veth", "peer", "name", "dsr0p")
    netns.run("ip", "addr", "add", "192.0.2.1", "peer", "192.0.2.2", "dev", "dsr0")
    netns.run("ip", "addr", "add", "2001:db8::5/128", "dev", "lo", "preferred_lft", "0", "nodad")
    netns.run("ip", "addr", "add", "2001:db8::6/128", "dev", "lo")
    batch = "".join(
        f"addr add 198.18.{i // 250}.{i % 250 + 1}/32 dev lo label lo:b\n" for i in range(600)
    )
    subprocess.run(["ip", "-n", netns.name, "-batch", "-"], input=batch, text=True, check=True)
    result = netns.run(sys.executable, "-c", READ_BOTH)
    data = json.loads(result.stdout)
    assert data["ours"] == data["theirs"]
    assert data["links_ours"] == data["links_theirs"]
    assert len(data["ours"]) >= 600
    # The point-to-point address is reported by its local side, not its peer.
    assert "192.0.2.1/32" in data["found"]["dsr0"]
    assert "192.0.2.2/32" not in data["found"]["dsr0"]
    ip = json.loads(netns.run("ip", "-j", "addr", "show", "dev", "lo").stdout)[0]["addr_info"]
    from_ip = sorted(f"{a['local']}/{a['prefixlen']}" for a in ip)
    assert data["found"]["lo"] == from_ip


READ_ROUTES = r"""
import json, socket
from pyroute2 import IPRoute
from providers.linux import routes

ours = sorted(
    [r.family, r.destination, r.prefix, r.table, r.type, r.oif, r.priority]
    for r in routes.dump_ranges()
)
theirs = []
with IPRoute() as ipr:
    for family in (socket.AF_INET, socket.AF_INET6):
        for m in ipr.route("dump", family=family):
            table = m.get("RTA_TABLE") or m["table"]
            full = 32 if family == socket.AF_INET else 128
            if table != 255 or m["type"] != 2 or m["dst_len"] >= full:
                continue
            theirs.append([
                family, m.get("RTA_DST"), m["dst_len"], table, m["type"],
                m.get("RTA_OIF"), m.get("RTA_PRIORITY"),
            ])
keys = ["local:local:198.18.5.0/24", "local:local:2001:db8:5::/120",
        "local:local:198.18.9.0/24", "local:local:198.18.6.0/24"]
found = {k: [v.device, v.priority] for k, v in routes.read_routes(keys).items()}
print(json.dumps({"ours": ours, "theirs": sorted(theirs), "found": found}))
"""


def test_route_reader_matches_pyroute2(netns: Netns) -> None:
    netns.run("ip", "link", "add", "dsr0", "type", "veth", "peer", "name", "dsr0p")
    netns.run("ip", "link", "set", "dsr0", "up")
    netns.run("ip", "route", "add", "local", "198.18.5.0/24", "dev", "lo", "table", "local")
    netns.run("ip", "route", "add", "local", "198.18.6.0/24", "dev", "dsr0", "table", "local")
    netns.run("ip", "route", "add", "local", "198.18.7.0/24", "dev", "lo", "table", "main")
    netns.run("ip", "route", "add", "198.18.9.0/24", "dev", "lo", "table", "local")  # unicast
    netns.run(
        "ip", "-6", "route", "add", "local", "2001:db8:5::/120", "dev", "lo", "table", "local"
    )
    # Host routes of the same table and type (one per address) are not ranges.
    batch = "".join(f"addr add 198.18.8.{i}/32 dev lo\n" for i in range(1, 200))
    subprocess.run(["ip", "-n", netns.name, "-batch", "-"], input=batch, text=True, check=True)
    data = json.loads(netns.run(sys.executable, "-c", READ_ROUTES).stdout)
    assert data["ours"] == data["theirs"]
    assert [row[1:3] for row in data["ours"]] == [
        ["127.0.0.0", 8],
        ["198.18.5.0", 24],
        ["198.18.6.0", 24],
        ["2001:db8:5::", 120],
    ]
    assert data["found"] == {
        "local:local:198.18.5.0/24": ["lo", None],
        "local:local:198.18.6.0/24": ["dsr0", None],
        "local:local:2001:db8:5::/120": ["lo", 1024],
    }
