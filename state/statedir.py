"""Location and creation of the state directory (default /var/lib/dsrctl)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from dsrctl.errors import StateError
from state.safefile import fsync_directory, write_atomic

__all__ = ["DEFAULT_STATE_DIR", "StateDir", "fsync_directory", "write_atomic"]

DEFAULT_STATE_DIR = "/var/lib/dsrctl"


@dataclass(frozen=True)
class StateDir:
    path: str

    @property
    def ownership_file(self) -> str:
        return os.path.join(self.path, "ownership.json")

    @property
    def journal_file(self) -> str:
        return os.path.join(self.path, "journal.jsonl")

    @property
    def lock_file(self) -> str:
        return os.path.join(self.path, "lock")

    @property
    def inflight_file(self) -> str:
        """Present while an apply or rollback runs; left behind by one that died."""
        return os.path.join(self.path, "inflight.json")

    @property
    def pending_file(self) -> str:
        """An apply waiting for `dsrctl confirm` (apply --confirm-timeout)."""
        return os.path.join(self.path, "pending-confirm.json")

    def ensure(self) -> None:
        """Create the directory (mode 0700) for a command that writes state."""
        try:
            os.makedirs(self.path, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise StateError(f"cannot create state directory {self.path}: {exc.strerror}") from None
        if not os.path.isdir(self.path):
            raise StateError(f"state directory {self.path} is not a directory")
        if not os.access(self.path, os.W_OK):
            raise StateError(f"state directory {self.path} is not writable")
