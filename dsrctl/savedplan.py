"""Saved plans: `dsrctl plan --out FILE`, then `dsrctl apply FILE` in the change window.

The file holds the plan, the spec's path and sha256, and a fingerprint of the host as
observed (the managed resources' values). Applying it re-reads the spec and the host
under the lock and refuses, naming what changed, unless both still match: the plan that
was reviewed is exactly the plan that runs (Terraform refuses a stale plan the same way).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import time
from typing import Any

from dsrctl.errors import MISSING, DsrctlError, SpecError
from dsrctl.kinds.registry import step_class
from dsrctl.plan import PLAN_FORMAT_VERSION
from dsrctl.planning import PlanResult
from dsrctl.steps import Phase
from providers.safefile import write_atomic

SAVED_FORMAT = "dsrctl-saved-plan"
SAVED_VERSION = 1


def fingerprint(observed: dict[str, Any]) -> str:
    canonical = json.dumps(observed, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def save_plan(
    path: str, spec_path: str, spec_digest: str, platform: str, result: PlanResult
) -> None:
    data = {
        "format": SAVED_FORMAT,
        "format_version": SAVED_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "platform": platform,
        "spec": os.path.abspath(spec_path),
        "spec_sha256": spec_digest,
        "host_sha256": fingerprint(result.have_plain),
        "observed": result.have_plain,
        "plan": result.plan.to_json(os.path.abspath(spec_path)),
    }
    try:
        write_atomic(path, json.dumps(data, indent=1, default=str).encode() + b"\n", 0o600)
    except OSError as exc:
        raise DsrctlError(f"cannot write the plan to {path}: {exc.strerror}") from None


class SavedPlanError(SpecError):
    """A saved plan is damaged, edited or not one this dsrctl wrote: make a new plan with
    `dsrctl plan --out FILE`. Names the file, the key and what is wrong with it."""


# Generous: a 10,000-VIP plan is a few MB. Anything bigger is not a plan dsrctl wrote.
MAX_SAVED_BYTES = 64 * 1024 * 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TOP_KEYS = frozenset(
    {"format", "format_version", "created", "platform", "spec", "spec_sha256"}
    | {"host_sha256", "observed", "plan"}
)
_PLAN_KEYS = frozenset({"format_version", "spec", "changes", "summary", "in_sync", "notes"})
_CHANGE_KEYS = frozenset({"action", "resource", "kind", "phase", "before", "after", "note"})
_MANUAL_KEYS = frozenset({"manual", "blocking", "instructions"})
_ACTIONS = ("create", "update", "delete")


def load_saved(path: str) -> dict[str, Any] | None:
    """The saved plan in ``path``, or None when the file is not one (a spec, say).

    A file that is meant as a saved plan (it names the format) is checked strictly, key by
    key; anything wrong raises SavedPlanError naming the file, the key and the problem.
    """
    try:
        raw = read_regular(path, MAX_SAVED_BYTES)
    except (OSError, ValueError):
        return None  # the spec loader reports a missing or odd file in its own words
    if not raw.startswith(b"{"):
        return None  # TOML never starts with "{"
    if len(raw) > MAX_SAVED_BYTES:
        if SAVED_FORMAT.encode() not in raw:
            return None
        raise SavedPlanError(path, "", MISSING, f"larger than {MAX_SAVED_BYTES} bytes")
    try:
        data = strict_json(raw)
    except ValueError as exc:
        if SAVED_FORMAT.encode() not in raw:
            return None  # not JSON and not meant as a plan: the spec loader says why
        raise SavedPlanError(path, "", MISSING, f"damaged saved plan: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != SAVED_FORMAT:
        return None
    _check_schema(Fields(path, SavedPlanError, "make a new plan with `dsrctl plan --out`"), data)
    return data


def read_regular(path: str, limit: int) -> bytes:
    """At most ``limit`` + 1 bytes of a regular file. Opening never blocks (a FIFO) and a
    device is never read: ValueError names what the file is instead. OSError as open()."""
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0)  # Windows: no text-mode translation
    flags |= getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)  # POSIX
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            from dsrctl.trust import kind_of

            raise ValueError(f"it is {kind_of(os.fstat(fd))}, not a regular file")
        chunks = []
        left = limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def strict_json(raw: bytes) -> Any:
    """JSON as dsrctl writes it: UTF-8, no NaN or Infinity, no duplicate keys. Every
    failure (deep nesting, a 5,000-digit number) is a ValueError with a one-line reason."""
    try:
        return json.loads(raw, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("invalid JSON: nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"invalid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})"
        ) from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"invalid JSON: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except ValueError as exc:  # the int digit limit, the hooks below
        raise ValueError(f"invalid JSON: {' '.join(str(exc).split())}") from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise ValueError(f"duplicate key {key!r}")
        data[key] = value
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


class Fields:
    """Typed reads from the JSON tables of one file: each failure names the file, the key
    path and the value, and says what it must be (a bool is a bool: true is no integer)."""

    def __init__(self, path: str, error: type[SpecError], hint: str) -> None:
        self.path = path
        self.error = error
        self.hint = hint

    def fail(self, key: str, value: object, reason: str) -> SpecError:
        return self.error(self.path, key, value, f"{reason} ({self.hint})")

    def get(self, table: dict[str, Any], prefix: str, key: str, *kinds: type) -> Any:
        name = f"{prefix}{key}"
        if key not in table:
            raise self.fail(name, MISSING, "missing")
        value = table[key]
        wanted = " or ".join(_NAMES.get(kind, kind.__name__) for kind in kinds)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            raise self.fail(name, value, f"must be {wanted}, not {json_type(value)}")
        return value

    def only(self, table: dict[str, Any], prefix: str, allowed: frozenset[str]) -> None:
        for key in table:
            if key not in allowed:
                raise self.fail(f"{prefix}{key}", table[key], "unknown key")

    def strings(self, table: dict[str, Any], prefix: str, key: str) -> list[str]:
        items: list[Any] = self.get(table, prefix, key, list)
        for index, item in enumerate(items):
            if not isinstance(item, str):
                raise self.fail(
                    f"{prefix}{key}[{index}]", item, f"must be a string, not {json_type(item)}"
                )
        return items


def json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return _NAMES.get(type(value), type(value).__name__)


_NAMES: dict[type, str] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    list: "a list",
    dict: "a table",
    type(None): "null",
}


def _check_schema(f: Fields, data: dict[str, Any]) -> None:
    """Every key a saved plan must have, with the type dsrctl wrote, and nothing else."""
    f.only(data, "", _TOP_KEYS)
    version = f.get(data, "", "format_version", int)
    if version != SAVED_VERSION:
        raise SavedPlanError(
            f.path,
            "format_version",
            version,
            f"unknown saved-plan version; this dsrctl reads version {SAVED_VERSION}",
        )
    f.get(data, "", "created", str)
    from dsrctl.platforms import platform_names

    platform = f.get(data, "", "platform", str)
    if platform not in platform_names():
        known = ", ".join(platform_names())
        raise f.fail("platform", platform, f"unknown platform (known: {known})")
    spec = f.get(data, "", "spec", str)
    if not os.path.isabs(spec) or _CONTROL.search(spec):
        raise f.fail("spec", spec, "must be the absolute path of the spec file")
    for key in ("spec_sha256", "host_sha256"):
        if not _SHA256.fullmatch(f.get(data, "", key, str)):
            raise f.fail(key, data[key], "must be a sha256 digest (64 lowercase hex digits)")
    f.get(data, "", "observed", dict)
    plan = f.get(data, "", "plan", dict)
    f.only(plan, "plan.", _PLAN_KEYS)
    if f.get(plan, "plan.", "format_version", int) != PLAN_FORMAT_VERSION:
        raise f.fail(
            "plan.format_version", plan["format_version"], f"must be {PLAN_FORMAT_VERSION}"
        )
    if f.get(plan, "plan.", "spec", str) != spec:
        raise f.fail("plan.spec", plan["spec"], "differs from the saved plan's spec")
    changes = f.get(plan, "plan.", "changes", list)
    counts = dict.fromkeys(_ACTIONS, 0)
    for index, change in enumerate(changes):
        counts[_check_change(f, f"plan.changes[{index}]", change)] += 1
    summary = f.get(plan, "plan.", "summary", dict)
    f.only(summary, "plan.summary.", frozenset(_ACTIONS))
    for action in _ACTIONS:
        if f.get(summary, "plan.summary.", action, int) != counts[action]:
            raise f.fail(
                f"plan.summary.{action}", summary[action], f"the changes hold {counts[action]}"
            )
    if f.get(plan, "plan.", "in_sync", bool) != (not changes):
        raise f.fail("plan.in_sync", plan["in_sync"], "contradicts the changes")
    f.strings(plan, "plan.", "notes")


def _check_change(f: Fields, where: str, change: Any) -> str:
    """One entry of plan.changes (Step.to_json()); returns its action."""
    if not isinstance(change, dict):
        raise f.fail(where, change, f"must be a table, not {json_type(change)}")
    prefix = f"{where}."
    kind = f.get(change, prefix, "kind", str)
    if step_class(kind) is None:
        raise f.fail(f"{prefix}kind", kind, "unknown step kind")
    f.only(change, prefix, _CHANGE_KEYS | (_MANUAL_KEYS if kind == "manual" else frozenset()))
    action = f.get(change, prefix, "action", str)
    if action not in _ACTIONS:
        raise f.fail(f"{prefix}action", action, f"must be one of {', '.join(_ACTIONS)}")
    f.get(change, prefix, "resource", str)
    if f.get(change, prefix, "phase", str) not in {phase.label for phase in Phase}:
        raise f.fail(f"{prefix}phase", change["phase"], "unknown phase")
    for side in ("before", "after"):
        if side not in change:
            raise f.fail(f"{prefix}{side}", MISSING, "missing")
    if "note" in change:
        f.get(change, prefix, "note", str)
    if kind == "manual":
        f.get(change, prefix, "manual", bool)
        f.get(change, prefix, "blocking", bool)
        f.get(change, prefix, "instructions", str)
    return str(action)


def check_saved(saved: dict[str, Any], spec_digest: str, result: PlanResult, path: str) -> None:
    """Refuse a stale plan: the spec or the host changed since it was saved."""
    if saved["spec_sha256"] != spec_digest:
        raise DsrctlError(
            f"saved plan {path} is stale: the spec {saved['spec']} changed since the plan was "
            f"made (sha256 {saved['spec_sha256'][:12]} -> {spec_digest[:12]}); make a new plan"
        )
    if saved["host_sha256"] != fingerprint(result.have_plain):
        then: dict[str, Any] = saved.get("observed", {})
        now = result.have_plain
        changed = [
            f"{resource} (was {_shown(then.get(resource))}, now {_shown(now.get(resource))})"
            for resource in sorted(set(then) | set(now))
            if then.get(resource) != now.get(resource)
        ]
        raise DsrctlError(
            f"saved plan {path} is stale: the host changed since the plan was made: "
            + "; ".join(changed[:10])
            + "; make a new plan"
        )
    planned_now = result.plan.to_json(saved["spec"])["changes"]
    if planned_now != saved["plan"]["changes"]:
        raise DsrctlError(
            f"saved plan {path} is stale: the plan dsrctl makes now differs from the saved "
            "one (the ownership records changed?); make a new plan"
        )


def _shown(value: Any) -> str:
    from dsrctl.errors import toml_literal

    return "absent" if value is None else toml_literal(value)
