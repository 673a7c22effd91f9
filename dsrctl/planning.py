"""What a planner returns, on every platform.

A planner (one per platform, named by its record: dsrctl.platforms) reads the host
through its provider and runs the pure diff. The engine only sees :class:`PlanResult`,
whose maps are plain data, so verification, rollback checks and ownership records work
the same on every platform.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dsrctl.plan import Plan


@dataclass
class PlanResult:
    plan: Plan
    # resources the spec itself names (recorded in the ownership records on apply)
    spec_resources: set[str] = field(default_factory=set)
    # the host as observed, restricted to managed resources: plain values and step values
    have_plain: dict[str, Any] = field(default_factory=dict)
    have_rich: dict[str, Any] = field(default_factory=dict)
