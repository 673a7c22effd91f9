"""Persistent files: read with their mode, write atomically, remove durably."""

from __future__ import annotations

import os
import stat

from dsrctl.errors import HostError, PrivilegeError
from dsrctl.model import FileState
from state.statedir import fsync_directory, write_atomic


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
