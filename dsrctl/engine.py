"""The library behind the commands: load, plan, apply, drift. No typer, no rich.

Every check that can refuse runs before the host is changed: the spec (file and host
facts), privileges, the lock, the preflight of the steps.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dsrctl.desired import Desired, build_desired, read_scope
from dsrctl.diff import build_plan, current_map
from dsrctl.errors import AbortedByUser, VerificationError
from dsrctl.model import FileState, HostState, split_id
from dsrctl.plan import Plan
from dsrctl.spec import Spec, load_spec
from providers.base import Provider, get_provider
from state.journal import Journal
from state.lock import ApplyLock
from state.ownership import Ownership
from state.statedir import StateDir


@dataclass
class Context:
    spec: Spec
    provider: Provider
    state_dir: StateDir
    ownership: Ownership


@dataclass
class PlanResult:
    plan: Plan
    desired: Desired
    current: HostState


def open_context(spec_path: str, state_dir: str, platform: str | None = None) -> Context:
    spec = load_spec(spec_path)
    provider = get_provider(platform)
    provider.check_spec(spec)
    state = StateDir(state_dir)
    return Context(spec, provider, state, Ownership.load(state.ownership_file))


def make_plan(ctx: Context) -> PlanResult:
    desired = build_desired(ctx.spec, ctx.ownership)
    current = ctx.provider.read(read_scope(ctx.spec, desired, ctx.ownership))
    plan = build_plan(desired, current, ctx.ownership)
    notes = tuple(ctx.spec.warnings) + tuple(current.facts.get("warnings", ())) + plan.notes
    plan = Plan(steps=plan.steps, notes=notes, facts=plan.facts)
    return PlanResult(plan, desired, current)


@dataclass
class ApplyOutcome:
    plan: Plan
    applied: int


def apply(
    ctx: Context, confirm: Callable[[Plan], bool], command: str = "dsrctl apply"
) -> ApplyOutcome:
    ctx.provider.check_privileges()
    ctx.state_dir.ensure()
    with ApplyLock(ctx.state_dir.lock_file, command):
        # Re-read the records under the lock: another run may have changed them.
        ctx.ownership = Ownership.load(ctx.state_dir.ownership_file)
        result = make_plan(ctx)
        plan = result.plan
        if plan.empty:
            _record_ownership(ctx, result)
            return ApplyOutcome(plan, 0)
        if not confirm(plan):
            raise AbortedByUser("apply cancelled; nothing was changed")
        ctx.provider.preflight(plan.steps)
        journal = Journal(ctx.state_dir.journal_file)
        journal.begin(spec=ctx.spec.path, steps=len(plan.steps), pid=os.getpid())
        try:
            from dsrctl.executor import execute

            applied = execute(
                plan,
                ctx.provider,
                journal,
                verify=lambda: _verify(ctx, result.desired),
                undone_check=lambda: _differences_from(ctx, result),
            )
        finally:
            journal.close()
        _record_ownership(ctx, result)
        return ApplyOutcome(plan, applied)


def _verify(ctx: Context, desired: Desired) -> None:
    current = ctx.provider.read(read_scope(ctx.spec, desired, ctx.ownership))
    left = build_plan(desired, current, ctx.ownership)
    if not left.empty:
        names = ", ".join(f"{s.resource} ({s.show(s.before)!r})" for s in left.steps[:5])
        raise VerificationError(f"after apply the host still differs from the spec: {names}")


def _differences_from(ctx: Context, before: PlanResult) -> list[str]:
    """What differs, after a rollback, from the host as observed before apply."""
    current = ctx.provider.read(read_scope(ctx.spec, before.desired, ctx.ownership))
    then, _ = current_map(before.current, before.desired, ctx.ownership)
    now, _ = current_map(current, before.desired, ctx.ownership)
    return [
        f"{resource} is {now.get(resource)!r}, was {then.get(resource)!r}"
        for resource in sorted(set(then) | set(now))
        if then.get(resource) != now.get(resource)
    ]


def _record_ownership(ctx: Context, result: PlanResult) -> None:
    """After a successful apply: remember what dsrctl took charge of, forget what it let go."""
    changed = {step.resource: step.before for step in result.plan.steps}
    _, have = current_map(result.current, result.desired, ctx.ownership)
    records = ctx.ownership
    for resource in sorted(result.desired.spec_resources):
        before = changed[resource] if resource in changed else have.get(resource)
        records.remember(resource, created=before is None, original=_record_value(before))
    for resource in list(records.records):
        if resource not in result.desired.spec_resources:
            records.forget(resource)
    records.save(ctx.state_dir.ownership_file)


def _record_value(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, FileState):
        return value.to_record()
    if hasattr(value, "attributes"):
        return {"address": value.address, "prefix": value.prefix, **value.attributes()}
    return value


def drift_items(plan: Plan) -> list[dict[str, Any]]:
    """Each drifted resource with what the spec expects and what the host has."""
    items = []
    for step in plan.steps:
        kind, name = split_id(step.resource)
        items.append(
            {
                "resource": step.resource,
                "kind": kind,
                "name": name,
                "expected": step.show(step.after),
                "actual": step.show(step.before),
                "action": step.action,
            }
        )
    return items
