"""The plan: an ordered tuple of steps plus notes. `plan`, `apply`, `drift` and the JSON
output all use the same object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dsrctl.steps import Step

PLAN_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]
    notes: tuple[str, ...] = ()
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.steps

    def counts(self) -> dict[str, int]:
        counts = {"create": 0, "update": 0, "delete": 0}
        for step in self.steps:
            counts[step.action] += 1
        return counts

    def summary(self) -> str:
        if self.empty:
            return "No changes. The host matches the spec."
        c = self.counts()
        return f"Plan: {c['create']} to add, {c['update']} to change, {c['delete']} to remove."

    def to_json(self, spec_path: str) -> dict[str, Any]:
        return {
            "format_version": PLAN_FORMAT_VERSION,
            "spec": spec_path,
            "changes": [step.to_json() for step in self.steps],
            "summary": self.counts(),
            "in_sync": self.empty,
            "notes": list(self.notes),
        }
