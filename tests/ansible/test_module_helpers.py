"""The Ansible module's helpers, without Ansible running it: dsrctl's error message, the
per-resource diff, and that the module stays importable by older target Pythons.

The module is run for real, by ansible-playbook against network namespaces, in
tests/netns/test_ansible_module.py.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

MODULE_PATH = Path(__file__).resolve().parents[2] / "contrib" / "ansible" / "library" / "dsrctl.py"


@pytest.fixture(scope="module")
def mod() -> ModuleType:
    pytest.importorskip(
        "ansible.module_utils.basic",
        reason="ansible-core is not installed (it is in the test extra: pip install -e '.[test]')",
    )
    spec = importlib.util.spec_from_file_location("ansible_module_dsrctl", MODULE_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_module_parses_as_python_38() -> None:
    # The module runs with the managed host's Python (ansible_python_interpreter), which
    # can be older than dsrctl's.
    ast.parse(MODULE_PATH.read_text(), feature_version=(3, 8))


def test_module_documents_every_option(mod: ModuleType) -> None:
    yaml = pytest.importorskip("yaml")
    doc = yaml.safe_load(mod.DOCUMENTATION)
    assert set(doc["options"]) == set(mod.ARGUMENT_SPEC)
    for name, spec in mod.ARGUMENT_SPEC.items():
        documented = doc["options"][name]
        for key in ("type", "elements", "choices", "default"):
            assert documented.get(key) == spec.get(key), (name, key)
        assert documented.get("required", False) == spec.get("required", False), name
    assert doc["options"]["state"]["choices"] == ["planned", "applied", "drift"]
    assert yaml.safe_load(mod.EXAMPLES)
    assert {"rc", "plan", "drift", "in_sync", "diff"} <= set(yaml.safe_load(mod.RETURN))


def test_error_message_is_dsrctls_line_without_prefix(mod: ModuleType) -> None:
    stderr = "error: spec.toml: bogus = 1: unknown key; known keys here: version, vip\n"
    assert mod.dsrctl_error(1, "", stderr) == (
        "spec.toml: bogus = 1: unknown key; known keys here: version, vip"
    )


def test_error_message_keeps_the_rollback_line(mod: ModuleType) -> None:
    stderr = (
        "error: apply failed: cannot write /etc/sysctl.d/90-dsrctl.conf: permission denied\n"
        "rolled back 2 completed step(s); the host is as it was before apply\n"
    )
    assert mod.dsrctl_error(1, "", stderr) == (
        "apply failed: cannot write /etc/sysctl.d/90-dsrctl.conf: permission denied; "
        "rolled back 2 completed step(s); the host is as it was before apply"
    )


def test_error_message_without_an_error_line(mod: ModuleType) -> None:
    usage = "Usage: dsrctl [OPTIONS] COMMAND [ARGS]...\nError: No such command 'plna'.\n"
    assert mod.dsrctl_error(2, "", usage) == "dsrctl exited with 2: Error: No such command 'plna'."
    assert mod.dsrctl_error(137, "", "") == "dsrctl exited with 137: no output"


def test_diff_of_a_sysctl_an_address_and_a_file(mod: ModuleType) -> None:
    plan = {
        "changes": [
            {
                "action": "update",
                "resource": "sysctl:net.ipv4.conf.all.arp_ignore",
                "before": 0,
                "after": 1,
            },
            {
                "action": "delete",
                "resource": "address:lo:192.0.2.100/32",
                "before": {"address": "192.0.2.100", "prefix": 32, "label": "lo:1"},
                "after": None,
                "note": "added by dsrctl, no longer in the spec",
            },
            {
                "action": "update",
                "resource": "file:/etc/sysctl.d/90-dsrctl.conf",
                "before": {"mode": "0644", "sha256": "aa", "content": "a = 1\n# local\n"},
                "after": {"mode": "0644", "sha256": "bb", "content": "a = 1\n"},
            },
        ]
    }
    assert mod.plan_diff(plan) == [
        {
            "before_header": "sysctl:net.ipv4.conf.all.arp_ignore",
            "after_header": "sysctl:net.ipv4.conf.all.arp_ignore",
            "before": "net.ipv4.conf.all.arp_ignore = 0\n",
            "after": "net.ipv4.conf.all.arp_ignore = 1\n",
        },
        {
            "before_header": "address:lo:192.0.2.100/32",
            "after_header": (
                "address:lo:192.0.2.100/32 (absent) [added by dsrctl, no longer in the spec]"
            ),
            "before": "address = 192.0.2.100\nprefix = 32\nlabel = lo:1\n",
            "after": "",
        },
        {
            "before_header": "file:/etc/sysctl.d/90-dsrctl.conf (mode 0644)",
            "after_header": "file:/etc/sysctl.d/90-dsrctl.conf (mode 0644)",
            "before": "a = 1\n# local\n",
            "after": "a = 1\n",
        },
    ]


def test_diff_of_a_mode_only_change_shows_the_mode(mod: ModuleType) -> None:
    entry = mod.diff_entry(
        "file:/etc/x.conf",
        {"mode": "0600", "sha256": "aa", "content": "a\n"},
        {"mode": "0644", "sha256": "aa", "content": "a\n"},
    )
    assert (entry["before"], entry["after"]) == (
        "mode = 0600\nsha256 = aa\n",
        "mode = 0644\nsha256 = aa\n",
    )


def test_drift_diff_goes_from_actual_to_expected(mod: ModuleType) -> None:
    items = [
        {
            "resource": "address:lo:2001:db8::100/128",
            "expected": {"address": "2001:db8::100", "prefix": 128, "deprecated": True},
            "actual": None,
        }
    ]
    [entry] = mod.drift_diff(items)
    assert entry["before"] == ""
    assert entry["after"] == "address = 2001:db8::100\nprefix = 128\ndeprecated = true\n"
    assert entry["before_header"] == "address:lo:2001:db8::100/128 (absent)"


def test_notes_from_apply_output(mod: ModuleType) -> None:
    stdout = "! converging over the unfinished apply 2026\nApply complete: 1 change(s)\n"
    assert mod.stdout_notes(stdout) == ["converging over the unfinished apply 2026"]


def test_example_playbook_parses_and_tags_select_the_plays(tmp_path: Path) -> None:
    pytest.importorskip("ansible", reason="ansible-core is not installed")
    contrib = MODULE_PATH.parents[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        HOME=str(tmp_path),
        ANSIBLE_CONFIG=str(contrib / "ansible.cfg"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "local"),
        ANSIBLE_NOCOLOR="1",
    )

    def tasks(*options: str) -> str:
        listed = subprocess.run(
            [sys.executable, "-m", "ansible", "playbook", "--list-tasks", *options, "dsrctl.yml"],
            cwd=contrib,
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        assert listed.returncode == 0, listed.stdout + listed.stderr
        return listed.stdout

    default = tasks()
    assert "Make the real server match its spec" in default
    assert "Compare the real server with its spec" not in default
    drift = tasks("--tags", "drift")
    assert "Compare the real server with its spec" in drift
    assert "Make the real server match its spec" not in drift


def test_plan_summary_is_dsrctls_last_plan_line(mod: ModuleType) -> None:
    assert mod.plan_summary({"changes": []}) == "No changes. The host matches the spec."
    plan = {"changes": [{}], "summary": {"create": 1, "update": 2, "delete": 0}}
    assert mod.plan_summary(plan) == "Plan: 1 to add, 2 to change, 0 to remove."


def test_fleet_doc_shows_the_example_playbook_as_it_is() -> None:
    playbook = (MODULE_PATH.parents[1] / "dsrctl.yml").read_text()
    doc = (MODULE_PATH.parents[3] / "docs" / "fleet.md").read_text()
    assert f"```yaml\n{playbook}```\n" in doc
