"""Persistent files, links and directories: read with their mode, write atomically, remove
durably."""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from dsrctl.errors import HostError, PrivilegeError
from dsrctl.model import DIRECTORY, FileState
from state.safefile import fsync_directory, write_atomic


def read_file(path: str) -> FileState | None:
    try:
        with open(path, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise HostError(f"{path} exists but is not a regular file")
            return FileState(content=handle.read(), mode=stat.S_IMODE(info.st_mode))
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise HostError(f"{path} exists but is a directory") from None
    except PermissionError:
        raise PrivilegeError(f"cannot read {path}: permission denied") from None
    except NotADirectoryError:
        raise HostError(f"{path}: a parent of it is not a directory") from None


def write_file(path: str, state: FileState) -> None:
    try:
        write_atomic(path, state.content, state.mode)
    except PermissionError:
        raise PrivilegeError(f"cannot write {path}: permission denied") from None
    except OSError as exc:
        raise HostError(f"cannot write {path}: {exc.strerror}") from None


def remove_file(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise HostError(f"cannot remove {path}: {exc.strerror}") from None
    fsync_directory(os.path.dirname(path) or ".")


def check_parent(path: str) -> None:
    parent = os.path.dirname(path) or "."
    if not os.path.isdir(parent):
        raise HostError(f"cannot write {path}: directory {parent} does not exist")


def read_symlink(path: str) -> str | None:
    """The target of the link at ``path``, None if nothing is there."""
    try:
        return os.readlink(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            raise HostError(f"{path} exists but is not a symbolic link") from None
        raise HostError(f"cannot read {path}: {exc.strerror}") from None


def write_symlink(path: str, target: str) -> None:
    """Point ``path`` at ``target`` atomically: a new link renamed over the old one."""
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, f".{os.path.basename(path)}.dsrctl-tmp-{os.getpid()}")
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(target, tmp)
        os.rename(tmp, path)
    except PermissionError:
        raise PrivilegeError(f"cannot write {path}: permission denied") from None
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise HostError(f"cannot write {path}: {exc.strerror}") from None
    fsync_directory(directory)


def remove_symlink(path: str) -> None:
    if not os.path.islink(path):
        if os.path.lexists(path):
            raise HostError(f"cannot remove {path}: not a symbolic link")
        return
    remove_file(path)


def read_dir(path: str) -> str | None:
    """DIRECTORY if ``path`` is a directory, None if nothing is there."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise HostError(f"{path}: a parent of it is not a directory") from None
    if not stat.S_ISDIR(info.st_mode):
        raise HostError(f"{path} exists but is not a directory")
    return DIRECTORY


def make_dir(path: str) -> None:
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        if not os.path.isdir(path):
            raise HostError(f"cannot create directory {path}: something else is there") from None
        return
    except PermissionError:
        raise PrivilegeError(f"cannot create directory {path}: permission denied") from None
    except OSError as exc:
        raise HostError(f"cannot create directory {path}: {exc.strerror}") from None
    fsync_directory(os.path.dirname(path) or ".")


def remove_dir(path: str) -> None:
    """Remove an empty directory; one that holds files nobody asked dsrctl to remove stays."""
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno == errno.ENOTEMPTY:
            names = ", ".join(sorted(os.listdir(path))[:5])
            raise HostError(
                f"cannot remove directory {path}, which dsrctl created: it now holds files "
                f"dsrctl did not write ({names}); move them or remove the directory by hand"
            ) from None
        raise HostError(f"cannot remove directory {path}: {exc.strerror}") from None
    fsync_directory(os.path.dirname(path) or ".")
