"""The Linux planner: desired state from the spec, host state from LinuxHost, pure diff."""

from __future__ import annotations

from typing import Any

from dsrctl.desired import build_desired, read_scope
from dsrctl.diff import build_plan, current_map
from dsrctl.plan import Plan
from dsrctl.planning import PlanResult
from dsrctl.spec import Spec
from state.ownership import Ownership


def plan_linux(spec: Spec, provider: Any, ownership: Ownership) -> PlanResult:
    desired = build_desired(spec, ownership)
    current = provider.read(read_scope(spec, desired, ownership))
    plan = build_plan(desired, current, ownership)
    notes = tuple(spec.warnings) + tuple(current.facts.get("warnings", ())) + plan.notes
    have_plain, have_rich = current_map(current, desired, ownership)
    return PlanResult(
        plan=Plan(steps=plan.steps, notes=notes, facts=plan.facts),
        spec_resources=set(desired.spec_resources),
        have_plain=have_plain,
        have_rich=have_rich,
    )
