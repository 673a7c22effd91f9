"""The provider contract. Which provider serves which platform is dsrctl's (its platform
records: dsrctl.platforms)."""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Protocol

from providers.errors import ProviderError
from providers.model import HostState, ReadScope


class PlannedChange(Protocol):
    """A step of a plan as a provider's preflight sees it (dsrctl's steps fit it
    structurally): its kind says what it changes and which Protocol of the platform's
    ``changes`` module it also fits."""

    @property
    def kind(self) -> str: ...

    @property
    def name(self) -> str:
        """What it changes, without the kind: a path, an interface, a rule name..."""
        ...

    @property
    def before(self) -> object: ...

    @property
    def after(self) -> object:
        """None when the step removes what it changes."""
        ...


class Provider(ABC):
    """Reads one platform's host state and writes the steps dsrctl plans for it."""

    platform: str = ""

    @abstractmethod
    def read(self, scope: ReadScope) -> HostState:
        """The current state of everything in ``scope``; read-only."""

    @abstractmethod
    def check_privileges(self, command: str = "apply") -> None:
        """Raise PrivilegeError if the caller cannot change the host; the message names
        ``command`` (the dsrctl command that was refused: "apply", "rollback")."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """The host's DSR-relevant state for `dsrctl show`."""

    def observe(self, resources: list[str]) -> dict[str, Any]:
        """The current value of each named resource (the rich value a step carries, or
        None when absent). Rollback from the journal verifies its result with this."""
        raise ProviderError(f"rollback from the journal is not available on {self.platform}")

    def preflight(self, steps: Sequence[PlannedChange]) -> None:  # noqa: B027 - optional hook
        """Check what can be checked before the first change (raises HostError)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release sockets and handles."""


def detect_platform() -> str:
    return "windows" if sys.platform.startswith("win") else "linux"
