"""Location and creation of the state directory (default /var/lib/dsrctl)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from dsrctl.errors import StateError

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


def write_atomic(path: str, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old or the new bytes, never a mix.

    Temporary file in the same directory, fsync, rename over the target, fsync the directory.
    """
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, f".{os.path.basename(path)}.dsrctl-tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_directory(directory)


def fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
