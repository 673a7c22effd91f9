"""The errors of the providers: what the host refused, or what the caller may not do.

The providers' own root, :class:`ProviderError`; ``providers/`` imports nothing of
``dsrctl``. The CLI reports these like dsrctl's own errors (``dsrctl.errors.REPORTED``):
one line on stderr and the class's exit code.
"""

from __future__ import annotations

__all__ = ["HostError", "PrivilegeError", "ProviderError"]


class ProviderError(Exception):
    """Root of every error a provider raises. Exit code 1 unless a subclass says otherwise."""

    exit_code = 1


class PrivilegeError(ProviderError):
    """The command needs privileges it does not have: run it as root (or with CAP_NET_ADMIN)."""


class HostError(ProviderError):
    """The host refused or failed an operation: the message carries what the kernel said."""
