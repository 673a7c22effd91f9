"""The Ansible module (contrib/ansible/library/dsrctl.py) run by ansible-playbook against
real hosts: every inventory host is a throwaway network namespace.

Ansible reaches a host with ``ansible_connection=local`` and an
``ansible_python_interpreter`` that is a wrapper running this test's Python inside the
namespace (``ip netns exec NS python``). So the module, and the dsrctl it starts (as
``python -m dsrctl``, through the module's ``executable`` option), see that namespace's
addresses and sysctls. Each host has its own state directory, and a spec (``write_spec``)
whose persisted files are under the test's temporary directory: nothing outside it and
the namespaces changes.

The playbooks and a small result-recording callback are in tests/ansible/.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.netns.namespaces import SPEC, Netns, NetnsFactory, write_spec

REPO = Path(__file__).resolve().parents[2]
LIBRARY = REPO / "contrib" / "ansible" / "library"
FIXTURES = REPO / "tests" / "ansible"
PLAYBOOKS = FIXTURES / "playbooks"


BAD_SPEC = """
version = 1
bogus = 1
[[vip]]
address = "192.0.2.100"
"""

ARP_IGNORE = "net.ipv4.conf.all.arp_ignore"
ARP_ANNOUNCE = "net.ipv4.conf.all.arp_announce"


@pytest.fixture
def ansible_playbook() -> list[str]:
    try:
        import ansible  # noqa: F401
    except ImportError:
        pytest.skip(
            "ansible-core is not installed (it is in the test extra: pip install -e '.[test]')"
        )
    return [sys.executable, "-m", "ansible", "playbook"]


@dataclass
class Run:
    proc: subprocess.CompletedProcess[str]
    records: list[dict[str, Any]]

    def explain(self) -> str:
        return f"exit {self.proc.returncode}\n{self.proc.stdout}\n{self.proc.stderr}"

    def result(self, task: str, host: str) -> dict[str, Any]:
        """The module result of ``task`` on ``host``, with the callback's ``status``."""
        found = [r for r in self.records if r["task"] == task and r["host"] == host]
        assert len(found) == 1, f"{task} on {host}: {len(found)} results\n{self.explain()}"
        return {**found[0]["result"], "status": found[0]["status"]}

    def recap(self, host: str) -> dict[str, int]:
        match = re.search(rf"^{re.escape(host)}\s*:\s*(.*)$", self.proc.stdout, re.MULTILINE)
        assert match, self.explain()
        return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}


class Fleet:
    """An inventory of namespaces, and ansible-playbook runs against it."""

    def __init__(self, command: list[str], tmp: Path, hosts: dict[str, Netns]) -> None:
        self.command = command
        self.tmp = tmp
        self.hosts = hosts
        self.runs = 0
        for sub in ("home", "ansible-local", "ansible-remote"):
            (tmp / sub).mkdir(parents=True)
        (tmp / "ansible.cfg").write_text("")  # so that no other ansible.cfg is read
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "DSRCTL_"))}
        self.env = {
            **env,
            "HOME": str(tmp / "home"),
            "ANSIBLE_CONFIG": str(tmp / "ansible.cfg"),
            "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-local"),
            "ANSIBLE_REMOTE_TEMP": str(tmp / "ansible-remote"),
            "ANSIBLE_LIBRARY": str(LIBRARY),
            "ANSIBLE_CALLBACK_PLUGINS": str(FIXTURES / "callback_plugins"),
            "ANSIBLE_CALLBACKS_ENABLED": "record_results",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_PIPELINING": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
        }
        self.inventory = tmp / "inventory.yml"
        inventory: dict[str, Any] = {"all": {"hosts": {}}}
        for name, ns in hosts.items():
            wrapper = ns.workdir / "python-in-netns"
            wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {ns.name} {sys.executable} "$@"\n')
            wrapper.chmod(0o755)
            inventory["all"]["hosts"][name] = {
                "ansible_connection": "local",
                "ansible_python_interpreter": str(wrapper),
                "dsrctl_spec": str(ns.workdir / "dsrctl.toml"),
                "dsrctl_state_dir": str(ns.state_dir),
                "dsrctl_executable": [sys.executable, "-m", "dsrctl"],
            }
        self.host_vars = inventory["all"]["hosts"]
        self.write_inventory()

    def write_inventory(self) -> None:
        self.inventory.write_text(json.dumps({"all": {"hosts": self.host_vars}}, indent=1))

    def play(self, playbook: str, *options: str) -> Run:
        self.runs += 1
        results = self.tmp / f"results-{self.runs}.jsonl"
        proc = subprocess.run(
            [*self.command, "-i", str(self.inventory), *options, str(PLAYBOOKS / playbook)],
            cwd=self.tmp,
            env={**self.env, "DSRCTL_TEST_RESULTS": str(results)},
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )
        lines = results.read_text().splitlines() if results.exists() else []
        return Run(proc, [json.loads(line) for line in lines])


def host_state(ns: Netns) -> tuple[str, str, str, dict[str, bytes]]:
    """The namespace's ARP sysctls and addresses, and every file under its work directory
    (the persisted sysctl file, any boot files, the state directory)."""
    files = {
        str(path.relative_to(ns.workdir)): path.read_bytes()
        for path in sorted(ns.workdir.rglob("*"))
        if path.is_file()
    }
    return ns.sysctl(ARP_IGNORE), ns.sysctl(ARP_ANNOUNCE), ns.addresses(), files


def test_ansible_module_check_apply_twice_drift_and_error(
    make_netns: NetnsFactory, tmp_path: Path, ansible_playbook: list[str]
) -> None:
    hosts = {"ns-a": make_netns("a"), "ns-b": make_netns("b")}
    for ns in hosts.values():
        write_spec(ns, SPEC)
    fleet = Fleet(ansible_playbook, tmp_path / "ansible", hosts)
    fresh = {name: host_state(ns) for name, ns in hosts.items()}
    assert all(state[0] == "0" and "192.0.2.100" not in state[2] for state in fresh.values())
    # What dsrctl itself plans for each fresh host, to compare the module's results with.
    expected = {
        name: json.loads(ns.dsrctl("plan", "--json", str(ns.workdir / "dsrctl.toml")).stdout)
        for name, ns in hosts.items()
    }

    # 1. Check mode with diff: changed=true everywhere, nothing changed on any host.
    check = fleet.play("check.yml", "--check", "--diff")
    assert check.proc.returncode == 0, check.explain()
    for name, ns in hosts.items():
        assert host_state(ns) == fresh[name], f"check mode changed {name}"
        planned = check.result("planned", name)
        assert planned["changed"] is False
        assert planned["in_sync"] is False
        assert planned["plan"] == expected[name]
        changes = expected[name]["changes"]
        assert len(changes) >= 5  # 2 sysctls, 2 addresses, the sysctl file, ...
        applied = check.result("applied", name)
        assert applied["status"] == "ok"
        assert applied["changed"] is True
        summary = expected[name]["summary"]
        assert applied["msg"] == (
            f"Plan: {summary['create']} to add, {summary['update']} to change, "
            f"{summary['delete']} to remove."
        )
        assert "stdout" not in applied  # the plan is returned parsed, not twice
        assert applied["plan"]["changes"] == planned["plan"]["changes"]
        assert applied["cmd"][-3:] == ["plan", "--json", str(ns.workdir / "dsrctl.toml")]
        headers = [entry["after_header"].split(" (")[0] for entry in applied["diff"]]
        assert headers == [change["resource"] for change in changes]
        [arp] = [e for e in applied["diff"] if e["after_header"] == f"sysctl:{ARP_IGNORE}"]
        assert (arp["before"], arp["after"]) == (f"{ARP_IGNORE} = 0\n", f"{ARP_IGNORE} = 1\n")
        drift = check.result("drift", name)
        assert drift["changed"] is True  # read-only, so the same in check mode
        assert drift["in_sync"] is False
        assert [item["resource"] for item in drift["drift"]] == [c["resource"] for c in changes]
        assert check.recap(name)["changed"] == 2
    # The default callback shows the per-resource diff.
    assert "+++ after: address:lo:192.0.2.100/32" in check.proc.stdout
    assert f"+{ARP_IGNORE} = 1" in check.proc.stdout
    assert "+net.ipv4.conf.all.arp_announce = 2" in check.proc.stdout

    # 2. Apply: changed=true, and each host converged.
    apply = fleet.play("apply.yml", "--diff")
    assert apply.proc.returncode == 0, apply.explain()
    for name, ns in hosts.items():
        result = apply.result("applied", name)
        assert result["changed"] is True
        assert result["cmd"][-2:] == ["apply", result["cmd"][-1]]
        assert result["cmd"][-1].endswith("dsrctl-plan.json")
        assert result["msg"].startswith("Apply complete: "), result["msg"]
        assert result["msg"].endswith(" change(s) applied and verified.")
        assert result["plan"]["changes"] == expected[name]["changes"]
        assert result["msg"] in result["stdout"]
        assert "+++ after: address:lo:2001:db8::100/128" in apply.proc.stdout
        drift = ns.dsrctl("drift", str(ns.workdir / "dsrctl.toml"))
        assert drift.returncode == 0, drift.stdout + drift.stderr
        assert ns.sysctl(ARP_IGNORE) == "1"
        assert "inet 192.0.2.100/32 scope global lo:1" in ns.addresses()

    # 3. Apply again: changed=false, nothing applied.
    again = fleet.play("apply.yml", "--diff")
    assert again.proc.returncode == 0, again.explain()
    for name in hosts:
        result = again.result("applied", name)
        assert result["changed"] is False, again.explain()
        assert result["plan"]["changes"] == []
        assert result["msg"] == "No changes. The host matches the spec."
        assert result["cmd"][-5:-2] == ["plan", "--json", "--out"]  # no apply was run
        assert again.recap(name)["changed"] == 0

    # 4. Someone resets a sysctl by hand on ns-a: ns-a reports drift, ns-b does not.
    #    Then a spec with an unknown key on ns-a: the task fails with dsrctl's message.
    hosts["ns-a"].set_sysctl(ARP_IGNORE, "0")
    bad_spec = write_spec(hosts["ns-a"], BAD_SPEC, "bad.toml")
    fleet.host_vars["ns-a"]["dsrctl_bad_spec"] = str(bad_spec)
    fleet.write_inventory()
    expected_error = hosts["ns-a"].dsrctl("plan", str(bad_spec))
    assert expected_error.returncode == 1
    assert expected_error.stderr.startswith("error: ")
    assert "unknown key" in expected_error.stderr

    drift_run = fleet.play("drift.yml")
    assert drift_run.proc.returncode == 2, drift_run.explain()  # a host failed
    a = drift_run.result("drift", "ns-a")
    assert (a["changed"], a["in_sync"], a["rc"]) == (True, False, 2)
    assert a["msg"] == f"drift: 1 item(s) differ from {hosts['ns-a'].workdir / 'dsrctl.toml'}"
    assert [(d["resource"], d["expected"], d["actual"]) for d in a["drift"]] == [
        (f"sysctl:{ARP_IGNORE}", 1, 0)
    ]
    b = drift_run.result("drift", "ns-b")
    assert (b["changed"], b["in_sync"], b["rc"], b["drift"]) == (False, True, 0, [])
    [summary] = [r["result"] for r in drift_run.records if r["task"] == "drifted hosts"]
    assert summary["msg"] == ["ns-a"]
    failed = drift_run.result("drift as a failure", "ns-a")
    assert failed["status"] == "failed"
    assert failed["msg"].startswith("drift: 1 item(s) differ"), failed["msg"]
    assert drift_run.result("drift as a failure", "ns-b")["status"] == "ok"
    assert hosts["ns-a"].sysctl(ARP_IGNORE) == "0", "drift must not change the host"

    error = drift_run.result("bad spec", "ns-a")
    assert error["status"] == "failed"
    assert error["msg"] == expected_error.stderr.strip().removeprefix("error: ")
    assert error["rc"] == 1
    assert error["changed"] is False
    assert error["stderr"] == expected_error.stderr
    assert drift_run.result("bad spec", "ns-b")["status"] == "skipped"
    assert drift_run.recap("ns-a")["failed"] == 1
    assert drift_run.recap("ns-b")["failed"] == 0
