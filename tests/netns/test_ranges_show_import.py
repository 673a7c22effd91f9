"""VIP ranges in `show`, `import` and `validate`, through the real CLI against the real
kernel: the local routes someone added are ranges; the kernel's own local routes of
addresses (127.0.0.0/8 of lo's 127.0.0.1/8, 198.18.7.0/24 of an address 198.18.7.1/24 on
lo) are not."""

from __future__ import annotations

import json
import tomllib

from tests.netns.namespaces import Netns, write_spec

SPEC = """
version = 1
[[vip]]
address = "192.0.2.100"
[[vip]]
address = "198.18.5.0"
prefix = 24
[[vip]]
address = "2001:db8:5::"
prefix = 64
"""


def local_routes(netns: Netns) -> str:
    return netns.run("ip", "route", "show", "table", "local", "type", "local").stdout


def ranges_section(text: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index("VIP ranges (local routes: every address of a range is this host's own):")
    section = []
    for line in lines[start + 1 :]:
        if not line.startswith("    "):
            break
        section.append(line)
    return section


def test_show_lists_the_ranges_on_the_host_and_those_dsrctl_manages(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    applied = netns.dsrctl("apply", "--auto-approve", str(spec))
    assert applied.returncode == 0, applied.stderr
    netns.run("ip", "route", "add", "local", "198.18.6.0/24", "dev", "lo", "table", "local")
    netns.run("ip", "address", "add", "198.18.7.1/24", "dev", "lo")  # the kernel's own /24
    assert "198.18.7.0/24 dev lo proto kernel" in local_routes(netns)

    shown = netns.dsrctl("show")
    assert shown.returncode == 0, shown.stderr
    assert ranges_section(shown.stdout) == [
        "    198.18.5.0/24 on lo  proto static, managed by dsrctl, created by dsrctl: yes",
        "    198.18.6.0/24 on lo  proto boot, not managed by dsrctl",
        "    2001:db8:5::/64 on lo  proto static, managed by dsrctl, created by dsrctl: yes",
    ]
    data = json.loads(netns.dsrctl("show", "--json").stdout)
    assert data["ranges"][0] == {
        "range": "198.18.5.0/24",
        "device": "lo",
        "table": "local",
        "type": "local",
        "protocol": "static",
        "metric": None,
        "on_host": True,
        "managed": True,
        "created_by_dsrctl": True,
    }
    assert [(r["range"], r["managed"]) for r in data["ranges"]] == [
        ("198.18.5.0/24", True),
        ("198.18.6.0/24", False),
        ("2001:db8:5::/64", True),
    ]
    # The records of the ranges are listed as what dsrctl created, as addresses are.
    assert "  range 198.18.5.0/24: created by dsrctl: yes (apply removes it when the spec " in (
        shown.stdout
    )

    # A managed range someone deleted: shown as missing.
    netns.run("ip", "route", "del", "local", "198.18.5.0/24", "dev", "lo", "table", "local")
    missing = netns.dsrctl("show")
    assert ranges_section(missing.stdout)[0] == (
        "    198.18.5.0/24  missing from the host, managed by dsrctl, created by dsrctl: yes"
    )
    gone = json.loads(netns.dsrctl("show", "--json").stdout)["ranges"][0]
    assert (gone["range"], gone["on_host"], gone["protocol"]) == ("198.18.5.0/24", False, None)


def test_show_without_ranges_prints_no_section(netns: Netns) -> None:
    shown = netns.dsrctl("show")
    assert shown.returncode == 0, shown.stderr
    assert "VIP ranges" not in shown.stdout  # lo's 127.0.0.0/8 is the kernel's own
    assert json.loads(netns.dsrctl("show", "--json").stdout)["ranges"] == []


def test_import_turns_added_local_routes_into_ranges_and_adopt_takes_them_over(
    netns: Netns,
) -> None:
    netns.set_sysctl("net.ipv4.conf.all.arp_ignore", "1")
    netns.set_sysctl("net.ipv4.conf.all.arp_announce", "2")
    netns.run("ip", "address", "add", "192.0.2.100/32", "dev", "lo")
    netns.run("ip", "route", "add", "local", "198.18.6.0/24", "dev", "lo", "table", "local")
    netns.run("ip", "-6", "route", "add", "local", "2001:db8:6::/64", "dev", "lo", "table", "local")
    netns.run("ip", "address", "add", "198.18.7.1/24", "dev", "lo")  # its /24 is the kernel's
    netns.run("ip", "link", "add", "u0", "type", "veth", "peer", "name", "u1")
    netns.run("ip", "route", "add", "local", "198.18.8.0/24", "dev", "u0", "table", "local")

    out = netns.workdir / "imported.toml"
    imported = netns.dsrctl("import", "--adopt", "--out", str(out))
    assert imported.returncode == 0, imported.stderr
    spec = tomllib.loads(out.read_text())
    assert spec["vip"] == [
        {"address": "192.0.2.100"},
        {"address": "198.18.6.0", "prefix": 24},
        {"address": "2001:db8:6::", "prefix": 64},
    ]
    assert "! left out the range 198.18.8.0/24: it is on u0, not on lo" in imported.stderr
    assert "Adopted 5 resource(s)" in imported.stderr  # 1 address, 2 ranges, 2 sysctls

    plan = netns.dsrctl("plan", "--detailed-exitcode", str(out))
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "No changes. The host matches the spec." in plan.stdout
    validate = netns.dsrctl("validate", str(out))
    assert validate.stdout.splitlines()[-1] == f"{out}: valid (1 VIP(s), 2 range(s))"
    shown = netns.dsrctl("show")
    assert ranges_section(shown.stdout) == [
        "    198.18.6.0/24 on lo  proto boot, managed by dsrctl, created by dsrctl: no "
        "(there before dsrctl)",
        "    198.18.8.0/24 on u0  proto boot, not managed by dsrctl",
        "    2001:db8:6::/64 on lo  proto boot, managed by dsrctl, created by dsrctl: no "
        "(there before dsrctl)",
    ]

    # Adopted, not created: a range the spec drops stays on the host.
    text = out.read_text().replace('[[vip]]\naddress = "198.18.6.0"\nprefix = 24\n', "")
    out.write_text(text)
    dropped = netns.dsrctl("apply", "--auto-approve", str(out))
    assert dropped.returncode == 0, dropped.stderr
    assert "the local route 198.18.6.0/24 is no longer in the spec but was there before" in (
        dropped.stdout
    )
    assert "198.18.6.0/24 dev lo" in local_routes(netns)


def test_validate_counts_ranges_apart_from_single_vips(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    checked = netns.dsrctl("validate", str(spec))
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.splitlines()[-1] == f"{spec}: valid (1 VIP(s), 2 range(s))"
    single = write_spec(netns, 'version = 1\n[[vip]]\naddress = "192.0.2.100"\n', "one.toml")
    assert netns.dsrctl("validate", str(single)).stdout.splitlines()[-1] == (
        f"{single}: valid (1 VIP(s))"
    )
