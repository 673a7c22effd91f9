"""The one safe way dsrctl writes a file: state files, persistence files, textfiles, plans.

It is the providers' (writing a file safely on a host is a provider concern: the Linux
host writes persistence files through it); ``state/`` declares what it needs of it
(``state.writer.FileWriter``) and receives this module from dsrctl, which imports both.

dsrctl runs as root and often writes into directories that other users can write too (a
node_exporter textfile directory, a shared plans directory). A writer that opens a
predictable temporary name, or follows a link there, lets such a user make root overwrite
and chmod any file on the system. So every write here:

- opens the directory once and works relative to that descriptor (a directory swapped
  for a link halfway cannot redirect the rename);
- creates the temporary file with ``O_CREAT | O_EXCL | O_NOFOLLOW`` under a name with
  128 random bits (nothing planted in advance can match it; a name that exists anyway is
  never opened, a fresh one is drawn);
- sets the mode with ``fchmod`` on the descriptor (never chmod by path);
- checks every ``write`` (a short write is continued, ENOSPC raises), fsyncs the file,
  renames it over the target, and fsyncs the directory.

A reader sees the old bytes or the new bytes, never a mix; a failure leaves the target
untouched and removes the temporary file. A run killed halfway leaves a temporary file
named ``.NAME.dsrctl-tmp-PID-RANDOM``: :func:`stray_temp_files` finds those whose writer
is gone, and the next apply removes them.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import sys

TEMP_MARK = ".dsrctl-tmp-"
# .NAME.dsrctl-tmp-PID-HEX (the pid tells a live writer's file from a dead one's)
_TEMP_NAME = re.compile(r"^\..+\.dsrctl-tmp-(\d+)-[0-9a-f]{32}$")
# Before the safe writer: .NAME.dsrctl-tmp-PID
_OLD_TEMP_NAME = re.compile(r"^\..+\.dsrctl-tmp-(\d+)$")

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_USE_DIR_FD = sys.platform != "win32" and os.open in os.supports_dir_fd


def temp_name(target_name: str) -> str:
    return f".{target_name}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(16)}"


def write_atomic(path: str, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` (file mode ``mode``) atomically and durably.

    ``path`` itself may be a symbolic link: the link is replaced, never followed. Raises
    OSError (ENOSPC, EACCES...) with the target untouched.
    """
    stage(path, data, mode).commit()


class Staged:
    """A complete, fsynced temporary file waiting to be renamed over its target.

    Staging takes the disk space; the commit is a rename, which needs none. So a
    transaction stages what it must record before it changes the host, and a full disk
    stops it before the first change instead of after the last."""

    def __init__(self, directory: str, name: str, tmp: str, dir_fd: int | None) -> None:
        self.directory = directory
        self.name = name
        self.tmp = tmp
        self._dir_fd = dir_fd

    def commit(self) -> None:
        if self._dir_fd is None:  # pragma: no cover - Windows
            os.replace(self.tmp, os.path.join(self.directory, self.name))
            return
        try:
            os.rename(self.tmp, self.name, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
        except BaseException:
            self.discard()
            raise
        try:
            os.fsync(self._dir_fd)
        finally:
            self._close()

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            if self._dir_fd is None:  # pragma: no cover - Windows
                os.unlink(self.tmp)
            else:
                os.unlink(self.tmp, dir_fd=self._dir_fd)
        self._close()

    def _close(self) -> None:
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None


def stage(path: str, data: bytes, mode: int = 0o600) -> Staged:
    """Write ``data`` to a fresh temporary file beside ``path`` (see the module doc);
    :meth:`Staged.commit` puts it in place."""
    directory = os.path.dirname(path) or "."
    name = os.path.basename(path)
    if not _USE_DIR_FD:  # pragma: no cover - Windows: no dir_fd, no O_NOFOLLOW
        return Staged(directory, name, _stage_by_path(directory, name, data, mode), None)
    dir_fd = os.open(directory, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    try:
        tmp, fd = _create_temp(name, dir_fd)
        try:
            try:
                os.fchmod(fd, mode)
                write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
    except BaseException:
        os.close(dir_fd)
        raise
    return Staged(directory, name, tmp, dir_fd)


def _create_temp(name: str, dir_fd: int) -> tuple[str, int]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
    for _ in range(16):
        tmp = temp_name(name)
        try:
            return tmp, os.open(tmp, flags, 0o600, dir_fd=dir_fd)
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file for {name}")


def write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written: a short write is continued, an error raises."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:  # pragma: no cover - os.write raises rather than return 0
            raise OSError(28, "No space left on device")
        view = view[written:]


def _stage_by_path(
    directory: str, name: str, data: bytes, mode: int
) -> str:  # pragma: no cover - Windows only
    tmp = os.path.join(directory, temp_name(name))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    try:
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, mode)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def fsync_directory(directory: str) -> None:
    if sys.platform == "win32":  # pragma: no cover - directories cannot be opened there
        return
    fd = os.open(directory, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def stray_temp_files(directory: str) -> list[str]:
    """Temporary files in ``directory`` left by a dsrctl writer that is no longer running."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    stray = []
    for name in sorted(names):
        if TEMP_MARK not in name:
            continue
        match = _TEMP_NAME.match(name) or _OLD_TEMP_NAME.match(name)
        if match is None:
            continue
        pid = int(match.group(1))
        if pid != os.getpid() and not _pid_running(pid):
            stray.append(os.path.join(directory, name))
    return stray


def remove_stray_temp_files(directory: str) -> list[str]:
    """Remove what :func:`stray_temp_files` finds (never through a link: unlink removes
    the name itself). Returns the paths removed."""
    removed = []
    for path in stray_temp_files(directory):
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
        removed.append(path)
    if removed:
        fsync_directory(directory)
    return removed


def _pid_running(pid: int) -> bool:
    if sys.platform == "win32":  # pragma: no cover
        return True  # cannot tell cheaply: keep the file
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")
