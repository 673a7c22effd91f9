"""From spec and host to a plan, per platform.

A planner reads the host through its provider and runs the pure diff. The engine
only sees :class:`PlanResult`, whose maps are plain data, so verification, rollback
checks and ownership records work the same on every platform.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from dsrctl.plan import Plan
from dsrctl.spec import Spec
from state.ownership import Ownership

if TYPE_CHECKING:
    from providers.base import Provider


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
    "linux": "dsrctl.linux.planner:plan_linux",
    "windows": "dsrctl.windows.planner:plan_windows",
}


def planner_for(platform: str) -> Planner:
    module_name, _, function = _PLANNERS[platform].partition(":")
    planner: Planner = getattr(importlib.import_module(module_name), function)
    return planner


def check_spec(spec: Spec, provider: Provider) -> None:
    """Refuse a spec that names what this host does not have (SpecError), before anything
    is read or changed: the platform's checks over the provider's plain answers."""
    from providers.errors import ProviderError

    if provider.platform == "linux":
        from dsrctl.linux.checks import check_linux_spec
        from providers.linux.host import LinuxHost

        if isinstance(provider, LinuxHost):
            check_linux_spec(spec, provider)
            return
    if provider.platform == "windows":
        from dsrctl.windows.checks import check_windows_spec
        from providers.windows.host import WindowsHost

        if isinstance(provider, WindowsHost):
            check_windows_spec(spec, provider)
            return
    raise ProviderError(f"no spec checks for the {provider.platform!r} provider")
