"""What the Linux host needs to know of a change it is asked to make.

The planner's steps (``dsrctl.steps``) satisfy these Protocols structurally; the provider
names only the attributes it reads, so it depends on no planning code. mypy checks the
fit where the executor and the steps hand their steps to the host.
"""

from __future__ import annotations

from typing import Protocol, TypeGuard

from providers.base import PlannedChange
from providers.model import AddressState, RouteState


class AddressChange(Protocol):
    """One address to add, change or remove (``LinuxHost.apply_addresses``)."""

    @property
    def interface(self) -> str: ...

    @property
    def cidr(self) -> str: ...

    @property
    def action(self) -> str:
        """``create``, ``update`` or ``delete``."""
        ...

    @property
    def before(self) -> AddressState | None: ...

    @property
    def after(self) -> AddressState | None: ...


class RouteChange(Protocol):
    """One route to add, change or remove (``LinuxHost.apply_route``)."""

    @property
    def action(self) -> str:
        """``create``, ``update`` or ``delete``."""
        ...

    @property
    def before(self) -> RouteState | None: ...

    @property
    def after(self) -> RouteState | None: ...


class FileChange(Protocol):
    """A change that may replace or remove a file (``LinuxHost.prepare_undo``)."""

    @property
    def kind(self) -> str:
        """``file`` for a regular file; other kinds are passed over."""
        ...

    @property
    def name(self) -> str:
        """The path, for a file."""
        ...

    @property
    def before(self) -> object:
        """What the resource held before: a ``FileState`` for a file that exists."""
        ...


def is_address(step: PlannedChange) -> TypeGuard[AddressChange]:
    """An address step (``LinuxHost.preflight`` reads its interface)."""
    return step.kind == "address"
