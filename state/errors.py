"""The errors of the state directory, its own: state/ imports nothing from dsrctl.

The CLI maps them to a one-line message and an exit code in the same single place as
dsrctl's own errors (dsrctl.errors.REPORTED).
"""

from __future__ import annotations


class StateError(Exception):
    """The state directory is unusable or its records are corrupt: check the named file."""

    exit_code = 1


class LockError(StateError):
    """Another dsrctl run holds the lock: wait for it, or check the named holder."""


class StatePermissionError(StateError):
    """The state directory or a file in it cannot be read or written: run as root.

    ``path`` and ``action`` ("read", "open") let the CLI say it in its own words, with the
    command the operator ran (state/ knows neither the command nor the CLI's options)."""

    def __init__(self, message: str, path: str | None = None, action: str = "read") -> None:
        super().__init__(message)
        self.path = path
        self.action = action
