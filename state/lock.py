"""An exclusive, non-blocking lock so that two applies never interleave.

flock(2) on ``<state-dir>/lock``: the kernel drops it when the holder dies, so a crashed
run never leaves a stale lock. The holder writes who it is into the file so that the
second run can name it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from types import TracebackType

from dsrctl.errors import LockError, StateError


class ApplyLock:
    def __init__(self, path: str, command: str) -> None:
        self.path = path
        self.command = command
        self._fd: int | None = None
        # Set when the lock file still named a holder: that process died holding it.
        self.recovered: str | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StateError(f"cannot open lock file {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe_holder(fd)
            os.close(fd)
            raise LockError(
                f"another dsrctl run holds the lock {self.path}: {holder}; wait for it to finish"
            ) from None
        # A holder that exits normally truncates the file; one that died did not.
        left = os.pread(fd, 4096, 0)
        if left.strip():
            self.recovered = (
                "recovered the lock left by a dsrctl run that died: "
                + _describe_holder(fd)
                + "; check `dsrctl history` for an unfinished apply"
            )
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command,
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
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


def _describe_holder(fd: int) -> str:
    try:
        raw = os.pread(fd, 4096, 0).decode("utf-8", errors="replace")
        info = json.loads(raw)
        return (
            f"pid {info.get('pid')} on {info.get('host')} running "
            f"'{info.get('command')}' since {info.get('since')}"
        )
    except (OSError, ValueError, AttributeError):
        return "holder unknown (the lock file names nobody yet)"
