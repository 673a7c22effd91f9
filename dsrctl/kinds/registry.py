"""The resource kinds, listed once, and the step classes of every platform by journal kind.

The Linux planner's diff, way back and read scope go through ``LINUX``, in this order
(which is the order of the maps; the plan's order is ``sort_steps``). Windows plans with
its own diff; its step classes are listed by ``dsrctl.windows.steps.STEPS``, named by
the platform's record (``dsrctl.platforms.Platform.steps``) and imported only when a
journal names one of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from dsrctl.kinds import (
    address,
    directory,
    file,
    fou,
    module,
    mss,
    route,
    symlink,
    sysctl,
    tunnel,
)
from dsrctl.kinds.base import ResourceKind
from dsrctl.steps import Phase, Step

LINUX: tuple[ResourceKind, ...] = (
    sysctl.KIND,
    address.KIND,
    route.KIND,
    module.KIND,  # before tunnel: its leave_removed reads what module's decided
    tunnel.KIND,
    fou.KIND,
    file.KIND,
    symlink.KIND,
    directory.KIND,
    mss.KIND,
)
BY_NAME: dict[str, ResourceKind] = {kind.name: kind for kind in LINUX}


def step_class(kind: str) -> type[Step] | None:
    """The step class whose journal kind is ``kind``, or None."""
    known = BY_NAME.get(kind)
    if known is not None:
        return known.step
    from dsrctl.platforms import step_modules

    for module_name in step_modules():
        steps: Sequence[type[Step]] = importlib.import_module(module_name).STEPS
        for cls in steps:
            if cls.kind == kind:
                return cls
    return None


def step_from_record(record: dict[str, Any]) -> Step:
    """Rebuild a step from its journal record (the output of to_record())."""
    cls = step_class(record.get("kind", ""))
    if cls is None:
        raise ValueError(f"unknown step kind {record.get('kind')!r} in the journal")
    phase = next(p for p in Phase if p.label == record["phase"])
    return cls(
        resource=record["resource"],
        before=cls.decode(record["before"]),
        after=cls.decode(record["after"]),
        phase=phase,
        note=record.get("note", ""),
    )
