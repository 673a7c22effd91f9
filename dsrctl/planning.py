"""From spec and host to a plan, per platform.

A planner reads the host through its provider and runs the pure diff. The engine
only sees :class:`PlanResult`, whose maps are plain data, so verification, rollback
checks and ownership records work the same on every platform.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Protocol

from dsrctl.plan import Plan
from dsrctl.spec import Spec
from state.ownership import Ownership


@dataclass
class PlanResult:
    plan: Plan
    # resources the spec itself names (recorded in the ownership records on apply)
    spec_resources: set[str] = field(default_factory=set)
    # the host as observed, restricted to managed resources: plain values and step values
    have_plain: dict[str, Any] = field(default_factory=dict)
    have_rich: dict[str, Any] = field(default_factory=dict)


class Planner(Protocol):
    def __call__(self, spec: Spec, provider: Any, ownership: Ownership) -> PlanResult: ...


# platform -> "module:function"; imported on use only.
_PLANNERS: dict[str, str] = {
    "linux": "dsrctl.linux_planning:plan_linux",
    "windows": "dsrctl.windows_planning:plan_windows",
}


def planner_for(platform: str) -> Planner:
    module_name, _, function = _PLANNERS[platform].partition(":")
    planner: Planner = getattr(importlib.import_module(module_name), function)
    return planner
