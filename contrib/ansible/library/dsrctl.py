#!/usr/bin/python
# Copyright: the dsrctl authors
# MIT License (see pyproject.toml of dsrctl)
"""Ansible module: run dsrctl on the managed host (plan, apply, or report drift).

This file is shipped to the managed host by Ansible and runs there with the host's Python
(`ansible_python_interpreter`), which may be older than dsrctl's own (3.11): it uses only
the standard library and ansible.module_utils, and syntax that Python 3.8 accepts.
"""

# ruff: noqa: E402 - Ansible modules put DOCUMENTATION, EXAMPLES and RETURN before the imports

from __future__ import annotations

DOCUMENTATION = r"""
---
module: dsrctl
short_description: Configure a Direct Server Return real server with dsrctl
description:
  - Runs dsrctl on the managed host to plan, apply, or check for drift the state that a
    dsrctl spec declares (VIPs on the loopback
    interface, ARP sysctls, the persisted sysctl file).
  - With I(state=applied), the module runs C(dsrctl plan --json --out FILE SPEC), then
    C(dsrctl apply FILE). dsrctl applies exactly that saved plan, and refuses it if the
    spec or the host changed in between. Nothing is applied when the plan is empty.
  - Check mode and diff mode are built from dsrctl's JSON plan. In check mode only
    read-only dsrctl commands run.
  - dsrctl must be installed on the managed host. Applying needs root (C(become=true)).
  - When dsrctl fails (exit 1), the task fails with dsrctl's error message. A failed
    apply has already been rolled back by dsrctl (see its message).
author:
  - dsrctl authors
options:
  spec:
    description:
      - Path of the dsrctl spec (TOML) on the managed host.
      - Give an absolute path. A relative path is relative to the module's working
        directory on the managed host.
    type: path
    required: true
  state:
    description:
      - C(applied) makes the host match the spec. C(changed) is true when dsrctl applied
        at least one change (in check mode, when the plan has changes).
      - C(planned) only computes the plan (C(dsrctl plan --json)) and returns it. It never
        changes the host and always returns C(changed=false), in check mode too, like an
        C(_info) module. To have the play recap count the hosts with pending changes, run
        I(state=applied) in check mode instead.
      - C(drift) runs the read-only C(dsrctl drift --json). It returns C(changed=true) when
        the host has drifted from the spec, that is when an apply would change something,
        with or without check mode, so that the play recap counts the drifted hosts. It
        never changes the host. Use C(failed_when) to make drift a failure.
    type: str
    choices: [planned, applied, drift]
    default: applied
  state_dir:
    description:
      - dsrctl's state directory (C(--state-dir)). Defaults to dsrctl's own default
        (C(DSRCTL_STATE_DIR) or C(/var/lib/dsrctl)).
      - Use the same directory for every run on a host.
    type: path
  executable:
    description:
      - How to run dsrctl on the managed host, as a program name or path, or as a list
        of arguments that starts the command, for example
        C(["/opt/dsrctl/bin/python", "-m", "dsrctl"]).
      - A program name without a C(/) is looked up in C(PATH) and the sbin directories.
    type: list
    elements: str
    default: [dsrctl]
notes:
  - Supports check mode and diff mode. The diff has one entry per resource that would
    change (sysctl, address, file), with its value before and after.
  - Notes that dsrctl prints as C(! ) lines (spec warnings, resources it lets go of) are
    returned in C(notes) and shown as warnings.
  - Runs on Linux managed hosts (Ansible runs Python modules on POSIX hosts).
requirements:
  - dsrctl on the managed host
"""

EXAMPLES = r"""
- name: Review what would change (run the play with --check --diff)
  dsrctl:
    spec: /etc/dsrctl/dsrctl.toml
  become: true

- name: Make the real server match its spec
  dsrctl:
    spec: /etc/dsrctl/dsrctl.toml
    state: applied
  become: true

- name: dsrctl installed in a virtual environment
  dsrctl:
    spec: /etc/dsrctl/dsrctl.toml
    executable: [/opt/dsrctl/bin/python, -m, dsrctl]
  become: true

- name: Collect the plan without changing anything
  dsrctl:
    spec: /etc/dsrctl/dsrctl.toml
    state: planned
  register: dsr_plan
  become: true

- name: Drift report; changed (yellow) on the hosts that drifted
  dsrctl:
    spec: /etc/dsrctl/dsrctl.toml
    state: drift
  register: dsr_drift
  become: true

- name: Or make drift a failure
  dsrctl:
    spec: /etc/dsrctl/dsrctl.toml
    state: drift
  register: dsr_drift
  changed_when: false
  failed_when: dsr_drift.failed or not dsr_drift.in_sync
  become: true
"""

RETURN = r"""
rc:
  description:
    - Exit code of the last dsrctl command run. 0, or 2 for I(state=drift) when the host
      has drifted.
  returned: always
  type: int
  sample: 0
cmd:
  description: The last dsrctl command run, as a list of arguments.
  returned: always
  type: list
  elements: str
  sample: [dsrctl, apply, /tmp/ansible-tmp/dsrctl-plan.json]
stdout:
  description:
    - Standard output of C(dsrctl apply). The JSON output of C(plan) and C(drift) is
      returned parsed, in C(plan) and C(drift).
  returned: when dsrctl apply ran, or a command failed
  type: str
msg:
  description:
    - What happened, in dsrctl's words. On failure, dsrctl's error message without its
      C(error:) prefix.
  returned: always
  type: str
  sample: "Plan: 3 to add, 2 to change, 0 to remove."
stderr:
  description: Standard error of the last dsrctl command run.
  returned: always
  type: str
plan:
  description:
    - dsrctl's JSON plan (C(dsrctl plan --json), format version 1), computed before
      anything was applied. Its C(changes) are what was applied (or, in check mode,
      what would be).
  returned: when state is planned or applied
  type: dict
  sample:
    format_version: 1
    spec: /etc/dsrctl/dsrctl.toml
    changes:
      - action: update
        resource: sysctl:net.ipv4.conf.all.arp_ignore
        kind: sysctl
        phase: harden
        before: 0
        after: 1
    summary: {create: 0, update: 1, delete: 0}
    in_sync: false
    notes: []
in_sync:
  description:
    - True when the host matched the spec when the task started (no changes planned, no
      drift).
  returned: always, except when a command failed
  type: bool
  sample: true
drift:
  description:
    - The drifted resources from C(dsrctl drift --json), each with C(resource), C(kind),
      C(name), C(expected), C(actual) and C(action) (what an apply would do).
  returned: when state is drift
  type: list
  elements: dict
notes:
  description: dsrctl's notes and warnings (its C(! ) lines).
  returned: always, except when a command failed
  type: list
  elements: str
diff:
  description:
    - In diff mode, one entry per resource that changes (or drifted), with C(before),
      C(after), C(before_header) and C(after_header).
  returned: in diff mode
  type: list
  elements: dict
"""

import json
import os
from typing import Any, NoReturn

from ansible.module_utils.basic import AnsibleModule

ERROR_PREFIX = "error: "
NOTE_PREFIX = "! "
PLAN_FILE = "dsrctl-plan.json"


def dsrctl_error(rc: int, stdout: str, stderr: str) -> str:
    """dsrctl's error message: its ``error: ...`` line on stderr without the prefix, with
    any lines after it (a failed apply adds what the rollback did)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if line.startswith(ERROR_PREFIX):
            return "; ".join([line[len(ERROR_PREFIX) :], *lines[index + 1 :]])
    # Not a dsrctl error line: a usage error, a crash, a signal.
    detail = lines[-1] if lines else (stdout.strip().splitlines() or ["no output"])[-1]
    return f"dsrctl exited with {rc}: {detail}"


def _scalar(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _is_file(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("content"), str)


def _text(name: str, value: Any, content: bool = True) -> str:
    """One side of a resource as text for a unified diff: a file's content, one
    ``key = value`` line per field of an address, ``name = value`` for a sysctl, and
    nothing for an absent resource."""
    if value is None:
        return ""
    if isinstance(value, dict):
        if content and _is_file(value):
            return str(value["content"])
        fields = {k: v for k, v in value.items() if k != "content"}
        return "".join(f"{key} = {_scalar(field)}\n" for key, field in fields.items())
    return f"{name} = {_scalar(value)}\n"


def _header(resource: str, value: Any, note: str | None = None) -> str:
    if value is None:
        header = f"{resource} (absent)"
    elif _is_file(value) and "mode" in value:
        header = f"{resource} (mode {value['mode']})"
    else:
        header = resource
    return f"{header} [{note}]" if note else header


def diff_entry(resource: str, before: Any, after: Any, note: str | None = None) -> dict[str, str]:
    """A diff for one resource, like the diff of Ansible's file modules."""
    name = resource.partition(":")[2] or resource
    before_text, after_text = _text(name, before), _text(name, after)
    if before_text == after_text:
        # Same content, other metadata (a file's mode): show the metadata instead.
        before_text, after_text = _text(name, before, False), _text(name, after, False)
    return {
        "before_header": _header(resource, before),
        "after_header": _header(resource, after, note),
        "before": before_text,
        "after": after_text,
    }


def plan_diff(plan: dict[str, Any]) -> list[dict[str, str]]:
    return [
        diff_entry(
            str(change.get("resource", "?")),
            change.get("before"),
            change.get("after"),
            change.get("note"),
        )
        for change in plan.get("changes", [])
    ]


def drift_diff(drift: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [
        diff_entry(str(item.get("resource", "?")), item.get("actual"), item.get("expected"))
        for item in drift
    ]


def stdout_notes(stdout: str) -> list[str]:
    return [line[len(NOTE_PREFIX) :] for line in stdout.splitlines() if line.startswith("! ")]


class Dsrctl:
    """Runs dsrctl commands for the module and turns failures into fail_json."""

    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        executable = list(module.params["executable"] or [])
        if not executable or not executable[0]:
            module.fail_json(msg="executable must name a program")
        if "/" not in executable[0]:
            executable[0] = module.get_bin_path(executable[0], required=True)
        self.base = executable
        if module.params["state_dir"]:
            self.base += ["--state-dir", module.params["state_dir"]]
        self.result: dict[str, Any] = {"changed": False}

    def run(self, *args: str, ok: tuple[int, ...] = (0,)) -> tuple[int, str, str]:
        cmd = [*self.base, *args]
        rc, stdout, stderr = self.module.run_command(
            cmd, check_rc=False, environ_update={"NO_COLOR": "1"}
        )
        self.result.update(rc=rc, cmd=cmd, stdout=stdout, stderr=stderr)
        if rc not in ok:
            self.fail(dsrctl_error(rc, stdout, stderr))
        return rc, stdout, stderr

    def run_json(self, *args: str, ok: tuple[int, ...] = (0,)) -> dict[str, Any]:
        _, stdout, _ = self.run(*args, ok=ok)
        try:
            data = json.loads(stdout)
        except ValueError:
            data = None
        if not isinstance(data, dict) or data.get("format_version") != 1:
            self.fail(f"`dsrctl {args[0]} --json` did not print a format_version 1 JSON document")
        del self.result["stdout"]  # returned parsed (plan, drift), not a second time as text
        return data

    def fail(self, msg: str) -> NoReturn:
        # dsrctl changed nothing: it exits 1 before any change, or after rolling back.
        self.result.pop("changed", None)
        self.module.fail_json(msg=msg, changed=False, **self.result)
        raise SystemExit(1)  # not reached: fail_json exits

    def warn_notes(self, notes: list[str]) -> None:
        self.result["notes"] = notes
        for note in notes:
            self.module.warn(f"dsrctl: {note}")


def plan_summary(plan: dict[str, Any]) -> str:
    """The last line of `dsrctl plan`."""
    if not plan.get("changes"):
        return "No changes. The host matches the spec."
    counts = {"create": 0, "update": 0, "delete": 0, **plan.get("summary", {})}
    return (
        f"Plan: {counts['create']} to add, {counts['update']} to change, "
        f"{counts['delete']} to remove."
    )


def planned(dsrctl: Dsrctl, spec: str) -> None:
    plan = dsrctl.run_json("plan", "--json", spec)
    dsrctl.result.update(plan=plan, in_sync=not plan.get("changes"), msg=plan_summary(plan))
    dsrctl.warn_notes(list(plan.get("notes", [])))
    if dsrctl.module._diff:
        dsrctl.result["diff"] = plan_diff(plan)


def applied(dsrctl: Dsrctl, spec: str) -> None:
    module = dsrctl.module
    if module.check_mode:
        plan = dsrctl.run_json("plan", "--json", spec)
    else:
        plan_file = os.path.join(module.tmpdir, PLAN_FILE)
        plan = dsrctl.run_json("plan", "--json", "--out", plan_file, spec)
    changes = list(plan.get("changes", []))
    notes = list(plan.get("notes", []))
    dsrctl.result.update(plan=plan, in_sync=not changes, msg=plan_summary(plan))
    if module._diff:
        dsrctl.result["diff"] = plan_diff(plan)
    if changes and not module.check_mode:
        # Exactly the plan above; dsrctl refuses it if the spec or the host changed since.
        _, stdout, _ = dsrctl.run("apply", plan_file)
        notes += [note for note in stdout_notes(stdout) if note not in notes]
        lines = stdout.splitlines()
        done = [line for line in lines if line.startswith(("Apply complete", "No changes."))]
        dsrctl.result["msg"] = done[-1] if done else "dsrctl apply succeeded"
        dsrctl.result["changed"] = not any(line.startswith("No changes.") for line in lines)
    else:
        dsrctl.result["changed"] = bool(changes)
    dsrctl.warn_notes(notes)


def drift(dsrctl: Dsrctl, spec: str) -> None:
    # Exit 2 is "drift found" (dsrctl prints its JSON report then); usage errors exit 1,
    # and a run without a JSON report fails the task in run_json either way.
    report = dsrctl.run_json("drift", "--json", spec, ok=(0, 2))
    items = list(report.get("drift", []))
    in_sync = bool(report.get("in_sync", not items)) and not items
    dsrctl.result.update(drift=items, in_sync=in_sync, changed=not in_sync)
    dsrctl.result["msg"] = (
        f"in sync: the host matches {spec}"
        if in_sync
        else f"drift: {len(items)} item(s) differ from {spec}"
    )
    dsrctl.warn_notes(list(report.get("notes", [])))
    if dsrctl.module._diff:
        dsrctl.result["diff"] = drift_diff(items)


STATES = {"planned": planned, "applied": applied, "drift": drift}

ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "spec": {"type": "path", "required": True},
    "state": {"type": "str", "choices": list(STATES), "default": "applied"},
    "state_dir": {"type": "path"},
    "executable": {"type": "list", "elements": "str", "default": ["dsrctl"]},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    dsrctl = Dsrctl(module)
    STATES[module.params["state"]](dsrctl, module.params["spec"])
    # failed=False explicitly: Ansible otherwise fails any result whose rc is not 0, and
    # drift's rc 2 ("drift found") is a successful report.
    module.exit_json(failed=False, **dsrctl.result)


if __name__ == "__main__":
    main()
