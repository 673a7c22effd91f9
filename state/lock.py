"""An exclusive, non-blocking lock so that two applies never interleave.

flock(2) on ``<state-dir>/lock`` (on Windows, msvcrt's byte-range lock far past the end
of the text): the kernel drops it when the holder dies, so a crashed run never leaves a
stale lock. The holder writes who it is into the file so that the second run can name it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from types import TracebackType

from state.errors import LockError
from state.statedir import open_state_file_for
from state.writer import FileWriter


class ApplyLock:
    def __init__(self, path: str, command: str, writer: FileWriter) -> None:
        self.path = path
        self.command = command
        self.writer = writer
        self._fd: int | None = None
        # Set when the lock file still named a holder: that process died holding it.
        self.recovered: str | None = None

    def acquire(self) -> None:
        # Never through a link: the holder truncates and rewrites this file as root.
        fd = open_state_file_for(self.path, os.O_RDWR | os.O_CREAT, "lock file")
        try:
            _try_lock(fd)
        except (BlockingIOError, PermissionError):
            holder = _describe_holder(fd, wait=HOLDER_WAIT_SECONDS)
            os.close(fd)
            raise LockError(
                f"another dsrctl run holds the lock {self.path}: {holder}; wait for it to finish"
            ) from None
        # A holder that exits normally truncates the file; one that died did not.
        left = _read_start(fd)
        if left.strip():
            self.recovered = (
                "recovered the lock left by a dsrctl run that died: " + _describe_holder(fd)
            )
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command,
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        try:
            os.ftruncate(fd, 0)
            _write_start(fd, (json.dumps(info) + "\n").encode(), self.writer)
        except OSError:
            pass  # a full disk: the lock holds all the same, it just names nobody

        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            _unlock(self._fd)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ApplyLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


HOLDER_WAIT_SECONDS = 1.0


def _describe_holder(fd: int, wait: float = 0.0) -> str:
    """Who holds the lock. A holder that has just taken it writes its name a moment later:
    give it ``wait`` seconds to do so."""
    deadline = time.monotonic() + wait
    while True:
        try:
            info = json.loads(_read_start(fd).decode("utf-8", errors="replace"))
            return (
                f"pid {info.get('pid')} on {info.get('host')} running "
                f"'{info.get('command')}' since {info.get('since')}"
            )
        except (OSError, ValueError, AttributeError):
            if time.monotonic() >= deadline:
                return "holder unknown (the lock file names nobody yet)"
            time.sleep(0.02)


# The lock byte sits far past the holder text, so that readers on Windows (where locks
# are mandatory) can still read who holds it.
_LOCK_OFFSET = 1 << 20


def _try_lock(fd: int) -> None:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        os.lseek(fd, _LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _unlock(fd: int) -> None:
    if sys.platform == "win32":  # pragma: no cover
        import msvcrt

        os.lseek(fd, _LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_UN)


def _read_start(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 4096)


def _write_start(fd: int, data: bytes, writer: FileWriter) -> None:
    os.lseek(fd, 0, os.SEEK_SET)
    writer.write_all(fd, data)
