"""[[tunnel]] against this machine's kernel, which has vxlan (built in) and none of ipip,
gre, ip6tnl, fou: vxlan-gpe end to end (apply, no change, drift, repair, rollback), and
validate/plan refusing the kinds this kernel lacks. The other kinds run in the VM tier
(tests/vm/test_tunnel_kinds.py)."""

from __future__ import annotations

import json
import os

from tests.netns.namespaces import Netns, with_uplink, write_spec

GPE = """
version = 1
[[vip]]
address = "192.0.2.100"
[[tunnel]]
kind = "vxlan-gpe"
"""


def _link(netns: Netns, name: str) -> dict[str, object] | None:
    found = netns.run("ip", "-d", "-j", "link", "show", "dev", name, check=False)
    if found.returncode != 0:
        return None
    entry: dict[str, object] = json.loads(found.stdout)[0]
    return entry


def test_vxlan_gpe_decap_device_lifecycle(netns: Netns) -> None:
    with_uplink(netns)
    spec = write_spec(netns, GPE)
    assert _link(netns, "dsrgpe0") is None

    first = netns.dsrctl("apply", "--auto-approve", str(spec))
    assert first.returncode == 0, first.stderr
    assert "+ tunnel dsrgpe0: vxlan-gpe external, up" in first.stdout
    link = _link(netns, "dsrgpe0")
    assert link is not None
    assert "UP" in link["flags"]  # type: ignore[operator]
    info = link["linkinfo"]["info_data"]  # type: ignore[index]
    assert info["external"] is True and info["gpe"] is True and info["port"] == 4790
    # vxlan is built in here: already loaded, so dsrctl neither loads nor records it as its own
    assert "module vxlan" not in first.stdout
    conf = netns.workdir / "etc" / "modules-load.d" / "dsrctl.conf"
    assert conf.read_text().splitlines()[-1] == "vxlan"

    second = netns.dsrctl("apply", "--auto-approve", str(spec))
    assert second.returncode == 0, second.stderr
    assert "No changes" in second.stdout

    netns.run("ip", "link", "del", "dsrgpe0")
    drift = netns.dsrctl("drift", str(spec))
    assert drift.returncode == 2, drift.stdout + drift.stderr
    assert "DRIFT tunnel dsrgpe0: expected vxlan-gpe external, up, actual missing" in drift.stdout

    repair = netns.dsrctl("apply", "--auto-approve", str(spec))
    assert repair.returncode == 0, repair.stderr
    assert _link(netns, "dsrgpe0") is not None
    assert netns.dsrctl("drift", str(spec)).returncode == 0

    netns.run("ip", "link", "set", "dsrgpe0", "down")
    assert netns.dsrctl("drift", str(spec)).returncode == 2

    rollback = netns.dsrctl("rollback", "--auto-approve")
    assert rollback.returncode == 0, rollback.stderr
    rollback = netns.dsrctl("rollback", "--auto-approve")
    assert rollback.returncode == 0, rollback.stderr
    assert _link(netns, "dsrgpe0") is None
    assert not conf.exists()


def test_dropping_the_tunnel_from_the_spec_deletes_the_device(netns: Netns) -> None:
    with_uplink(netns)
    spec = write_spec(netns, GPE)
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    spec.write_text(spec.read_text().replace('[[tunnel]]\nkind = "vxlan-gpe"\n', ""))
    dropped = netns.dsrctl("apply", "--auto-approve", str(spec))
    assert dropped.returncode == 0, dropped.stderr
    assert _link(netns, "dsrgpe0") is None
    assert "No changes" in netns.dsrctl("apply", "--auto-approve", str(spec)).stdout


def test_a_kind_this_kernel_lacks_is_refused_at_validate_and_plan(netns: Netns) -> None:
    release = os.uname().release
    for kind, module in (
        ("ipip", "ipip"),
        ("gre", "ip_gre"),
        ("ip6ip6", "ip6_tunnel"),
        ("gue", "fou"),
    ):
        spec = write_spec(
            netns, f'version = 1\n[[vip]]\naddress = "192.0.2.100"\n[[tunnel]]\nkind = "{kind}"\n'
        )
        for command in ("validate", "plan"):
            result = netns.dsrctl(command, str(spec))
            assert result.returncode == 1, (command, result.stdout, result.stderr)
            assert result.stderr.strip() == (
                f'error: {spec}: tunnel[0].kind = "{kind}": this kernel ({release}) has no '
                f"{module} module"
            )
    assert _link(netns, "tunl0") is None


def test_a_device_of_another_kind_under_the_name_is_refused(netns: Netns) -> None:
    with_uplink(netns)
    netns.run("ip", "link", "add", "dsrgpe0", "type", "vxlan", "id", "7", "dstport", "4789")
    spec = write_spec(netns, GPE)
    result = netns.dsrctl("plan", str(spec))
    assert result.returncode == 1
    assert 'tunnel[0].name = "dsrgpe0": a vxlan device of that name exists' in result.stderr
    assert _link(netns, "dsrgpe0") is not None
