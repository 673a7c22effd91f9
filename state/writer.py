"""What the state directory needs of a file writer, declared here and given by dsrctl.

The safe writer itself (random temporary names, no links followed, fsync, rename) is
``providers/safefile.py``: writing a file safely on a host is a provider concern, and
``state/`` imports nothing of ``providers``. dsrctl, which imports both, passes that
module wherever state writes (``StateDir.writer``); mypy checks that it fits.
"""

from __future__ import annotations

from typing import Protocol


class StagedWrite(Protocol):
    """A complete, fsynced temporary file waiting to be renamed over its target."""

    def commit(self) -> None: ...

    def discard(self) -> None: ...


class FileWriter(Protocol):
    def stage(self, path: str, data: bytes, mode: int = 0o600) -> StagedWrite:
        """Write ``data`` beside ``path``; ``commit()`` puts it in place."""
        ...

    def write_atomic(self, path: str, data: bytes, mode: int = 0o600) -> None:
        """Replace ``path`` with ``data`` atomically and durably (never through a link)."""
        ...

    def write_all(self, fd: int, data: bytes) -> None:
        """os.write until every byte is written: a short write is continued, an error
        raises (the journal's records, the lock's holder)."""
        ...
