"""What an operator sees and relies on, through the real CLI, against the real kernel."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time

from state.journal import read_journal
from tests.netns.namespaces import SPEC, Netns, NetnsFactory, snapshot, sysctl_file, write_spec


def test_plan_is_read_only_and_shows_markers(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    before = snapshot(netns)
    result = netns.dsrctl("plan", "--detailed-exitcode", str(spec))
    assert result.returncode == 2, result.stderr
    out = result.stdout
    assert "~ sysctl net.ipv4.conf.all.arp_ignore: 0 -> 1" in out
    assert "~ sysctl net.ipv4.conf.all.arp_announce: 0 -> 2" in out
    assert "+ address 192.0.2.100/32 on lo: label lo:1" in out
    assert "+ address 2001:db8::100/128 on lo: deprecated, nodad" in out
    assert f"+ file {sysctl_file(netns)}" in out
    assert out.rstrip().endswith("Plan: 3 to add, 2 to change, 0 to remove.")
    # ARP hardening is listed (and runs) before the first VIP.
    assert out.index("arp_announce") < out.index("+ address")
    assert "\x1b[" not in out  # piped output has no colour codes
    assert netns.dsrctl("plan", str(spec)).returncode == 0
    assert snapshot(netns) == before
    assert not netns.state_dir.exists()


def test_plan_json_is_versioned(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    result = netns.dsrctl("plan", "--json", str(spec))
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert data["format_version"] == 1
    assert data["summary"] == {"create": 3, "update": 2, "delete": 0}
    assert {c["action"] for c in data["changes"]} == {"create", "update"}
    assert all({"action", "resource", "before", "after"} <= set(c) for c in data["changes"])


def test_unknown_sysctl_is_refused_before_anything_changes(netns: Netns) -> None:
    spec = write_spec(netns, SPEC + '[linux.sysctl]\n"net.ipv4.conf.eth9.rp_filter" = 2\n')
    before = snapshot(netns)
    for command in (["apply", "--auto-approve"], ["plan"], ["drift"], ["validate"]):
        result = netns.dsrctl(*command, str(spec))
        assert result.returncode == 1, command
        assert result.stdout == ""
        assert result.stderr == (
            f'error: {spec}: linux.sysctl."net.ipv4.conf.eth9.rp_filter" = 2: '
            "no such sysctl on this host (is there an interface named 'eth9'?)\n"
        )
    assert snapshot(netns) == before
    assert not netns.state_dir.exists()


def test_spec_errors_are_one_line_and_traceback_only_with_debug(netns: Netns) -> None:
    # (A prefix of 8-31 is a range since issue 11: 33 is what no IPv4 VIP can have.)
    spec = write_spec(netns, SPEC.replace('"lo:1"', '"lo:1"\nprefix = 33'))
    result = netns.dsrctl("apply", "--auto-approve", str(spec))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "vip[0].prefix = 33: an IPv4 prefix must be 32 (one VIP) or 8-31" in result.stderr
    assert "Traceback" not in result.stderr
    debug = netns.dsrctl("--debug", "apply", "--auto-approve", str(spec))
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.rstrip().endswith(
        "an IPv4 prefix must be 32 (one VIP) or 8-31 (a range of VIPs, served by a local "
        "route on the interface)"
    )


def test_unattended_apply_needs_auto_approve(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    before = snapshot(netns)
    result = netns.dsrctl("apply", str(spec))
    assert result.returncode == 1
    assert "refusing to apply unattended without --auto-approve" in result.stderr
    assert "Plan: 3 to add" in result.stdout  # the plan was shown first
    assert snapshot(netns) == before


def test_apply_without_privileges_changes_nothing_but_plan_works(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    before = snapshot(netns)
    drop = ["setpriv", "--inh-caps=-all", "--bounding-set=-all"]
    env = {**os.environ, "DSRCTL_STATE_DIR": str(netns.state_dir)}
    env.pop("DSRCTL_REQUIRE_NETNS", None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", netns.name, *drop, sys.executable, "-m", "dsrctl", *args],
            capture_output=True,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
        )

    applied = run("apply", "--auto-approve", str(spec))
    assert applied.returncode == 1
    assert applied.stderr == (
        "error: apply changes addresses and sysctls: run it as root (it needs "
        "CAP_NET_ADMIN and write access to /proc/sys); nothing was changed\n"
    )
    planned = run("plan", "--detailed-exitcode", str(spec))
    assert planned.returncode == 2, planned.stderr
    assert "Plan: 3 to add, 2 to change, 0 to remove." in planned.stdout
    assert run("drift", str(spec)).returncode == 2
    assert run("show").returncode == 0
    assert snapshot(netns) == before
    assert not netns.state_dir.exists()


def test_second_apply_fails_at_once_naming_the_holder(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    before = snapshot(netns)
    env = {**os.environ, "DSRCTL_STATE_DIR": str(netns.state_dir)}
    env.pop("DSRCTL_REQUIRE_NETNS", None)
    master, slave = pty.openpty()
    first = subprocess.Popen(
        ["ip", "netns", "exec", netns.name, sys.executable, "-m", "dsrctl", "apply", str(spec)],
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    os.close(slave)
    try:
        lock = netns.state_dir / "lock"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if lock.exists() and lock.read_text().strip():
                break
            time.sleep(0.05)
        holder = json.loads(lock.read_text())
        start = time.monotonic()
        second = netns.dsrctl("apply", "--auto-approve", str(spec))
        assert time.monotonic() - start < 10
        assert second.returncode == 1
        assert f"another dsrctl run holds the lock {lock}: pid {holder['pid']}" in second.stderr
        assert f"running 'dsrctl apply {spec}'" in second.stderr
        os.write(master, b"no\n")
        _, err = first.communicate(timeout=20)
        assert first.returncode == 1
        assert b"apply cancelled; nothing was changed" in err
    finally:
        first.kill()
        os.close(master)
    assert snapshot(netns) == before


def test_dropped_vip_is_removed_only_if_dsrctl_added_it(netns: Netns) -> None:
    netns.run("ip", "addr", "add", "198.18.0.5/32", "dev", "lo")
    spec = write_spec(
        netns, SPEC + '[[vip]]\naddress = "198.18.0.5"\n[[vip]]\naddress = "198.18.0.6"\n'
    )
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    assert "198.18.0.6/32" in netns.addresses()
    records = json.loads((netns.state_dir / "ownership.json").read_text())["resources"]
    assert records["address:lo:198.18.0.5/32"]["created"] is False
    assert records["address:lo:198.18.0.6/32"]["created"] is True

    smaller = write_spec(netns, 'version = 1\n[[vip]]\naddress = "192.0.2.100"\nlabel = "lo:1"\n')
    plan = netns.dsrctl("plan", str(smaller))
    assert "- address 198.18.0.6/32 on lo" in plan.stdout
    assert "- address 2001:db8::100/128 on lo" in plan.stdout
    assert "198.18.0.5/32 on lo is no longer in the spec but was there before dsrctl" in plan.stdout
    assert "- address 198.18.0.5" not in plan.stdout
    applied = netns.dsrctl("apply", "--auto-approve", str(smaller))
    assert applied.returncode == 0, applied.stderr
    lo = netns.addresses()
    assert "198.18.0.5/32" in lo
    assert "198.18.0.6/32" not in lo
    assert "2001:db8::100" not in lo
    assert "127.0.0.1/8" in lo
    assert "192.0.2.100/32" in lo
    assert netns.dsrctl("drift", str(smaller)).returncode == 0


def test_dropped_extra_sysctl_is_restored_after_vips_are_removed(netns: Netns) -> None:
    netns.set_sysctl("net.ipv4.conf.all.rp_filter", "1")
    spec = write_spec(
        netns,
        SPEC + '[[vip]]\naddress = "198.18.0.7"\n'
        '[linux.sysctl]\n"net.ipv4.conf.all.rp_filter" = 2\n',
    )
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    assert netns.sysctl("net.ipv4.conf.all.rp_filter") == "2"
    assert "net.ipv4.conf.all.rp_filter = 2" in sysctl_file(netns).read_text()
    smaller = write_spec(netns, SPEC)
    plan = netns.dsrctl("plan", str(smaller)).stdout
    assert "~ sysctl net.ipv4.conf.all.rp_filter: 2 -> 1  (restore the value before dsrctl)" in plan
    assert plan.index("- address 198.18.0.7/32") < plan.index("rp_filter: 2 -> 1")
    assert netns.dsrctl("apply", "--auto-approve", str(smaller)).returncode == 0
    assert netns.sysctl("net.ipv4.conf.all.rp_filter") == "1"
    assert "rp_filter" not in sysctl_file(netns).read_text()


def test_drift_sees_edited_and_deleted_sysctl_file_and_apply_repairs(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    path = sysctl_file(netns)
    good = path.read_bytes()
    path.write_bytes(good.replace(b"arp_announce = 2", b"arp_announce = 1"))
    drift = netns.dsrctl("drift", str(spec))
    assert drift.returncode == 2
    assert f"DRIFT file {path}: expected mode 0644" in drift.stdout
    path.unlink()
    drift = netns.dsrctl("drift", "--json", str(spec))
    assert drift.returncode == 2
    (item,) = json.loads(drift.stdout)["drift"]
    assert item["resource"] == f"file:{path}"
    assert item["actual"] is None
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    assert path.read_bytes() == good
    assert path.stat().st_mode & 0o777 == 0o644
    assert netns.dsrctl("drift", str(spec)).returncode == 0


def test_label_and_ipv6_flag_changes_are_repaired(netns: Netns) -> None:
    netns.run("ip", "addr", "add", "192.0.2.100/32", "dev", "lo", "label", "lo:old")
    netns.run("ip", "addr", "add", "2001:db8::100/128", "dev", "lo")
    spec = write_spec(netns, SPEC)
    plan = netns.dsrctl("plan", str(spec)).stdout
    assert "~ address 192.0.2.100/32 on lo: label lo:old -> label lo:1" in plan
    assert "~ address 2001:db8::100/128 on lo: preferred, dad -> deprecated, nodad" in plan
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    lo = netns.addresses()
    assert "192.0.2.100/32 scope global lo:1" in lo
    assert "2001:db8::100/128 scope global nodad deprecated" in lo
    # They were there before dsrctl: it will never delete them.
    records = json.loads((netns.state_dir / "ownership.json").read_text())["resources"]
    assert records["address:lo:192.0.2.100/32"]["created"] is False


def test_journal_records_each_step_with_its_prior_value(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    records = read_journal(str(netns.state_dir / "journal.jsonl"))
    kinds = [r["type"] for r in records]
    assert kinds[0] == "begin"
    assert kinds[-1] == "end"
    assert records[-1]["result"] == "applied"
    intents = [step for r in records if r["type"] == "intent" for step in r["steps"]]
    ignore = next(s for s in intents if s["resource"] == "sysctl:net.ipv4.conf.all.arp_ignore")
    assert (ignore["before"], ignore["after"]) == (0, 1)
    assert len(intents) == 5
    # Every intent is followed by its "done" before the next intent.
    assert kinds[1:-1] == ["intent", "done"] * (len(kinds[1:-1]) // 2)


def test_interface_other_than_lo_and_missing_interface(netns: Netns) -> None:
    netns.run("ip", "link", "add", "dsr0", "type", "veth", "peer", "name", "dsr0p")
    spec = write_spec(
        netns,
        'version = 1\n[[vip]]\naddress = "192.0.2.100"\nlabel = "dsr0:v"\n'
        '[linux]\ninterface = "dsr0"\n',
    )
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    assert "192.0.2.100/32 scope global dsr0:v" in netns.addresses("dsr0")
    missing = write_spec(
        netns, 'version = 1\n[[vip]]\naddress = "192.0.2.100"\n[linux]\ninterface = "dsr9"\n'
    )
    result = netns.dsrctl("plan", str(missing))
    assert result.returncode == 1
    assert 'linux.interface = "dsr9": no such interface on this host' in result.stderr


def test_down_interface_is_warned_about(make_netns: NetnsFactory) -> None:
    ns = make_netns("down", lo_up=False)
    spec = write_spec(ns, SPEC)
    result = ns.dsrctl("plan", str(spec))
    assert result.returncode == 0
    assert "! interface lo is down: the kernel does not deliver traffic" in result.stdout


def test_show_reports_addresses_and_arp_sysctls(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    data = json.loads(netns.dsrctl("show", "--json").stdout)
    assert data["sysctl"]["net.ipv4.conf.all.arp_ignore"] == 1
    assert data["sysctl"]["net.ipv4.conf.all.arp_announce"] == 2
    lo = next(i for i in data["interfaces"] if i["name"] == "lo")
    assert {"address": "192.0.2.100", "prefix": 32, "label": "lo:1"} in lo["addresses"]
    assert {
        "address": "2001:db8::100",
        "prefix": 128,
        "deprecated": True,
        "nodad": True,
    } in lo["addresses"]
    assert "address:lo:192.0.2.100/32" in data["dsrctl"]["created_by_dsrctl"]
    text = netns.dsrctl("show").stdout
    assert "net.ipv4.conf.all.arp_ignore = 1" in text
    assert "192.0.2.100/32  label=lo:1" in text


def _run_on_tty(ns: Netns, args: list[str], extra_env: dict[str, str]) -> bytes:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env.update({"DSRCTL_STATE_DIR": str(ns.state_dir), **extra_env})
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns.name, sys.executable, "-m", "dsrctl", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    output = b""
    try:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        proc.wait(timeout=30)
    finally:
        proc.kill()
        os.close(master)
    return output


def test_colour_on_a_terminal_and_none_with_no_color(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    coloured = _run_on_tty(netns, ["plan", str(spec)], {"TERM": "xterm-256color"})
    assert b"\x1b[" in coloured
    assert b"Plan: 3 to add, 2 to change, 0 to remove." in coloured
    plain = _run_on_tty(netns, ["plan", str(spec)], {"TERM": "xterm-256color", "NO_COLOR": "1"})
    assert b"\x1b[" not in plain
    assert b"Plan: 3 to add, 2 to change, 0 to remove." in plain


def test_unreadable_records_still_allow_a_read_only_plan(netns: Netns) -> None:
    spec = write_spec(netns, SPEC)
    assert netns.dsrctl("apply", "--auto-approve", str(spec)).returncode == 0
    netns.run("ip", "addr", "del", "192.0.2.100/32", "dev", "lo")
    # Root's own records, unreadable without CAP_DAC_OVERRIDE (a state directory owned by
    # another user is refused outright: see test_state_trust).
    os.chmod(netns.state_dir, 0)
    env = {**os.environ, "DSRCTL_STATE_DIR": str(netns.state_dir)}
    drop = ["setpriv", "--inh-caps=-all", "--bounding-set=-all"]
    command = ["ip", "netns", "exec", netns.name, *drop, sys.executable, "-m", "dsrctl"]
    result = subprocess.run(
        [*command, "drift", str(spec)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 2, result.stderr
    assert "cannot read ownership records" in result.stdout
    assert (
        "DRIFT address 192.0.2.100/32 on lo: expected label lo:1, actual missing" in result.stdout
    )


def test_hundreds_of_vips_are_applied_in_one_batch_and_removed_again(netns: Netns) -> None:
    vips = "".join(f'[[vip]]\naddress = "198.18.{i // 200}.{i % 200 + 1}"\n' for i in range(400))
    spec = write_spec(netns, "version = 1\n" + vips)
    applied = netns.dsrctl("apply", "--auto-approve", str(spec))
    assert applied.returncode == 0, applied.stderr
    assert "Apply complete: 403 change(s)" in applied.stdout
    lo = json.loads(netns.run("ip", "-j", "addr", "show", "dev", "lo").stdout)[0]["addr_info"]
    assert len([a for a in lo if a["local"].startswith("198.18.")]) == 400
    assert netns.dsrctl("drift", str(spec)).returncode == 0
    records = read_journal(str(netns.state_dir / "journal.jsonl"))
    batches = [r for r in records if r["type"] == "intent" and r["steps"][0]["kind"] == "address"]
    assert [len(r["steps"]) for r in batches] == [400]
    one = write_spec(netns, 'version = 1\n[[vip]]\naddress = "198.18.0.1"\n')
    shrunk = netns.dsrctl("apply", "--auto-approve", str(one))
    assert shrunk.returncode == 0, shrunk.stderr
    assert "Apply complete: 399 change(s)" in shrunk.stdout
    assert netns.addresses().count("198.18.") == 1
