"""The diff engine: a pure function from (desired, current, ownership) to a plan.

Both sides are flattened into maps ``resource id -> plain value`` and compared key by
key; each top-level difference becomes one step. What a resource's value is, and its
step, is its kind's (dsrctl.kinds, listed in dsrctl.kinds.registry). Nothing here
touches the host, so it is tested with plain data.

The comparison reports what DeepDiff(before, after) reported before it (a value that
differs in type, even if ==, is a change; tests/unit/test_diff_without_deepdiff.py checks
the two agree) without its cost: importing deepdiff takes 300+ ms (it pulls numpy and
pydantic when they are installed) and diffing 10,000 VIPs through it a few hundred more.
"""

from __future__ import annotations

from typing import Any

from dsrctl.kinds.base import Plain, Rich, Value
from dsrctl.kinds.registry import BY_NAME, LINUX
from dsrctl.linux.desired import Desired
from dsrctl.model import HostState
from dsrctl.plan import Plan
from dsrctl.steps import Step, sort_steps
from state.ownership import Ownership


def desired_map(desired: Desired) -> tuple[Plain, Rich]:
    """The wanted resources that must exist, kind by kind (``ResourceKind.add_desired``)."""
    plain: Plain = {}
    rich: Rich = {}
    for kind in LINUX:
        kind.add_desired(desired, plain, rich)
    return plain, rich


def current_map(current: HostState, desired: Desired, ownership: Ownership) -> tuple[Plain, Rich]:
    """The host, restricted to what dsrctl manages: spec resources and owned ones."""
    plain: Plain = {}
    rich: Rich = {}
    for kind in LINUX:
        kind.add_current(current, desired, ownership, plain, rich)
    return plain, rich


def changed_resources(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Top-level keys whose values differ: added, removed, or changed in value or type."""
    if before == after:
        return []
    changed = list(before.keys() ^ after.keys())
    changed += [
        key for key, value in before.items() if key in after and not _same(value, after[key])
    ]
    return sorted(str(key) for key in changed)


def _same(left: Any, right: Any) -> bool:
    """Equal, and of the same type all the way down (1 and True, 1 and 1.0 differ)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(_same(v, right[k]) for k, v in left.items())
    if isinstance(left, list | tuple):
        return len(left) == len(right) and all(map(_same, left, right))
    return bool(left == right)


def build_plan(desired: Desired, current: HostState, ownership: Ownership) -> Plan:
    return plan_with_current(desired, current, ownership)[0]


def plan_with_current(
    desired: Desired, current: HostState, ownership: Ownership
) -> tuple[Plan, Plain, Rich]:
    """The plan, and the host's managed resources it was made from (``current_map``)."""
    for kind in LINUX:
        kind.leave_removed(desired, current)
    want_plain, want = desired_map(desired)
    have_plain, have = current_map(current, desired, ownership)
    steps: list[Step] = []
    for resource in changed_resources(have_plain, want_plain):
        steps.append(_step(resource, have.get(resource), want.get(resource), desired))
    notes = list(desired.notes)
    for kind in LINUX:
        notes += kind.warnings(desired, current)
    plan = Plan(steps=tuple(sort_steps(steps)), notes=tuple(notes), facts=dict(current.facts))
    return plan, have_plain, have


def _step(resource: str, before: Value | None, after: Value | None, desired: Desired) -> Step:
    kind = BY_NAME.get(resource.partition(":")[0])
    if kind is None:
        raise ValueError(f"unknown resource kind in {resource!r}")
    return kind.make_step(resource, before, after, desired)
