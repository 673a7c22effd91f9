"""What the Windows host needs to know of the steps it is asked to check before applying.

The planner's steps (``dsrctl.windows.steps``) satisfy these Protocols structurally; the
provider names only the attributes it reads, picked by the step's kind, so it depends on
no planning code. The step classes take their kinds from here, and mypy checks the fit of
each class to its kind's Protocol where dsrctl.windows.steps lists them (``PREFLIGHT``).
"""

from __future__ import annotations

from typing import Protocol, TypeGuard

# The kinds of step whose attributes the preflight reads (journal kinds: stable).
ADAPTER = "adapter"
VIP = "vip"
FIREWALL = "firewall"
MANUAL = "manual"


class PlannedStep(Protocol):
    """Any step of a Windows plan (``WindowsHost.preflight``)."""

    @property
    def kind(self) -> str: ...


class AdapterChange(PlannedStep, Protocol):
    """Create or remove the loopback adapter with devcon."""

    @property
    def devcon(self) -> str: ...

    @property
    def after(self) -> object:
        """None when the adapter is to be removed."""
        ...


class VipChange(PlannedStep, Protocol):
    """Add or delete a VIP on an adapter."""

    @property
    def interface(self) -> str: ...

    @property
    def after(self) -> object:
        """The ``VipAddress`` to add, or None."""
        ...


class RuleChange(PlannedStep, Protocol):
    """Add, replace or delete the firewall rule of this name."""

    @property
    def name(self) -> str: ...

    @property
    def before(self) -> object:
        """The ``FirewallRuleState`` read, or None."""
        ...


class ManualChange(PlannedStep, Protocol):
    """What netsh cannot do; a blocking one stops apply before anything changes."""

    @property
    def resource(self) -> str: ...

    @property
    def blocking(self) -> bool: ...

    @property
    def instructions(self) -> str: ...


def is_adapter(step: PlannedStep) -> TypeGuard[AdapterChange]:
    return step.kind == ADAPTER


def is_vip(step: PlannedStep) -> TypeGuard[VipChange]:
    return step.kind == VIP


def is_rule(step: PlannedStep) -> TypeGuard[RuleChange]:
    return step.kind == FIREWALL


def is_manual(step: PlannedStep) -> TypeGuard[ManualChange]:
    return step.kind == MANUAL
