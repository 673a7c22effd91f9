"""Persistent files, links and directories: read with their mode, write atomically, remove
durably.

Never through a link. The paths here are host paths that providers.model.under_root made:
links in their parent directories were already followed inside linux.persist.root, so
a parent that is a link now was planted or changed since. Every operation walks the
path from "/" one directory at a time with O_NOFOLLOW and refuses a link on the way, then
works relative to the last directory's descriptor: a directory swapped for a link
halfway cannot redirect a write. The last component is never followed either: a managed
file that is a link is read as a link (FileState.link), replaced by renaming over the link
(never written through it), and a link value is written back as a link.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator

from providers.errors import HostError, PrivilegeError
from providers.model import DIRECTORY, FileState
from providers.safefile import Staged, stage, temp_name, write_atomic

_PATH = getattr(os, "O_PATH", os.O_RDONLY)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_WALK = _PATH | _DIRECTORY | _NOFOLLOW | _CLOEXEC


class _Missing(Exception):
    """A parent directory of the path does not exist."""


@contextlib.contextmanager
def _parent(path: str) -> Iterator[tuple[int, str]]:
    """(descriptor of the parent directory of ``path``, its last component), reached
    from "/" without following any link. HostError for a link or a non-directory on
    the way, _Missing for a directory that is not there."""
    absolute = os.path.abspath(path)
    *parents, name = absolute.split("/")[1:]
    fd = os.open("/", _WALK)
    walked = ""
    try:
        for part in parents:
            walked += "/" + part
            try:
                child = os.open(part, _WALK, dir_fd=fd)
            except FileNotFoundError:
                raise _Missing(walked) from None
            except OSError as exc:
                if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                    raise HostError(f"cannot open {walked}: {exc.strerror}") from None
                if os.path.islink(walked):
                    raise HostError(
                        f"{path}: its parent directory {walked} is a symbolic link; dsrctl "
                        "never reads or writes through one (links under linux.persist.root "
                        "are followed when the plan is made): make a new plan, and check "
                        "who changed it"
                    ) from None
                raise HostError(f"{path}: {walked} is not a directory") from None
            os.close(fd)
            fd = child
        yield fd, name
    finally:
        os.close(fd)


def _fsync_dir(dir_fd: int) -> None:
    fd = os.open(".", os.O_RDONLY | _DIRECTORY | _CLOEXEC, dir_fd=dir_fd)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _lstat(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def read_file(path: str) -> FileState | None:
    """The file at ``path``, a link there as FileState.symlink(target), None if absent."""
    try:
        with _parent(path) as (dir_fd, name):
            info = _lstat(name, dir_fd)
            if info is None:
                return None
            if stat.S_ISLNK(info.st_mode):
                return FileState.symlink(os.readlink(name, dir_fd=dir_fd))
            if stat.S_ISDIR(info.st_mode):
                raise HostError(f"{path} exists but is a directory")
            if not stat.S_ISREG(info.st_mode):
                raise HostError(f"{path} exists but is not a regular file")
            flags = os.O_RDONLY | _NOFOLLOW | _CLOEXEC | _NONBLOCK
            with open(os.open(name, flags, dir_fd=dir_fd), "rb") as handle:
                info = os.fstat(handle.fileno())
                if not stat.S_ISREG(info.st_mode):  # swapped since the lstat
                    raise HostError(f"{path} exists but is not a regular file")
                return FileState(content=handle.read(), mode=stat.S_IMODE(info.st_mode))
    except _Missing:
        return None
    except FileNotFoundError:
        return None
    except PermissionError:
        raise PrivilegeError(f"cannot read {path}: permission denied") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # became a link between the lstat and the open
            raise HostError(f"cannot read {path}: it changed while being read") from None
        raise HostError(f"cannot read {path}: {exc.strerror}") from None


def write_file(path: str, state: FileState) -> None:
    """Put ``state`` at ``path`` atomically: a regular file, or the link ``state.link``.
    Whatever is at ``path`` (a link included) is replaced by a rename, never written
    through."""
    try:
        with _parent(path) as (dir_fd, name):
            if state.link is not None:
                _link_at(dir_fd, name, state.link)
                return
            # The one safe writer, pointed at this very directory (not at a path that
            # could be swapped): /proc/self/fd/N opens the directory the descriptor holds.
            write_atomic(f"/proc/self/fd/{dir_fd}/{name}", state.content, state.mode)
    except _Missing as missing:
        raise HostError(f"cannot write {path}: directory {missing} does not exist") from None
    except PermissionError:
        raise PrivilegeError(f"cannot write {path}: permission denied") from None
    except OSError as exc:
        raise HostError(f"cannot write {path}: {exc.strerror}") from None


def stage_file(path: str, state: FileState) -> Staged | None:
    """A complete copy of ``state`` staged beside ``path`` (providers.safefile.stage), reached
    like write_file reaches it (no link on the way); None for a link value, which
    write_file recreates as a link (staging it would put a regular file in its place)."""
    if state.link is not None:
        return None
    try:
        with _parent(path) as (dir_fd, name):
            return stage(f"/proc/self/fd/{dir_fd}/{name}", state.content, state.mode)
    except _Missing as missing:
        raise HostError(f"cannot write {path}: directory {missing} does not exist") from None


def _link_at(dir_fd: int, name: str, target: str) -> None:
    """A new link under a fresh random name, renamed over ``name``, the directory synced."""
    for _ in range(16):
        tmp = temp_name(name)
        try:
            os.symlink(target, tmp, dir_fd=dir_fd)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(errno.EEXIST, f"cannot create a temporary link for {name}")
    try:
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    _fsync_dir(dir_fd)


def remove_file(path: str) -> None:
    """Remove the file (or the link: never what it points to) at ``path``."""
    try:
        with _parent(path) as (dir_fd, name):
            try:
                os.unlink(name, dir_fd=dir_fd)
            except FileNotFoundError:
                return
            _fsync_dir(dir_fd)
    except _Missing:
        return
    except OSError as exc:
        raise HostError(f"cannot remove {path}: {exc.strerror}") from None


def check_parent(path: str) -> None:
    try:
        with _parent(path):
            pass
    except _Missing:
        parent = os.path.dirname(path) or "."
        raise HostError(f"cannot write {path}: directory {parent} does not exist") from None


def read_symlink(path: str) -> str | None:
    """The target of the link at ``path``, None if nothing is there."""
    try:
        with _parent(path) as (dir_fd, name):
            return os.readlink(name, dir_fd=dir_fd)
    except (_Missing, FileNotFoundError):
        return None
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            raise HostError(f"{path} exists but is not a symbolic link") from None
        raise HostError(f"cannot read {path}: {exc.strerror}") from None


def write_symlink(path: str, target: str) -> None:
    """Point ``path`` at ``target`` atomically: a new link renamed over the old one."""
    write_file(path, FileState.symlink(target))


def remove_symlink(path: str) -> None:
    try:
        with _parent(path) as (dir_fd, name):
            info = _lstat(name, dir_fd)
    except _Missing:
        return
    if info is None:
        return
    if not stat.S_ISLNK(info.st_mode):
        raise HostError(f"cannot remove {path}: not a symbolic link")
    remove_file(path)


def read_dir(path: str) -> str | None:
    """DIRECTORY if ``path`` is a directory, None if nothing is there."""
    try:
        with _parent(path) as (dir_fd, name):
            info = _lstat(name, dir_fd)
    except _Missing:
        return None
    if info is None:
        return None
    if not stat.S_ISDIR(info.st_mode):
        raise HostError(f"{path} exists but is not a directory")
    return DIRECTORY


def make_dir(path: str) -> None:
    try:
        with _parent(path) as (dir_fd, name):
            try:
                os.mkdir(name, 0o755, dir_fd=dir_fd)
            except FileExistsError:
                info = _lstat(name, dir_fd)
                if info is None or not stat.S_ISDIR(info.st_mode):  # a link is not one
                    raise HostError(
                        f"cannot create directory {path}: something else is there"
                    ) from None
                return
            _fsync_dir(dir_fd)
    except _Missing as missing:
        raise HostError(
            f"cannot create directory {path}: directory {missing} does not exist"
        ) from None
    except PermissionError:
        raise PrivilegeError(f"cannot create directory {path}: permission denied") from None
    except OSError as exc:
        raise HostError(f"cannot create directory {path}: {exc.strerror}") from None


def remove_dir(path: str) -> None:
    """Remove an empty directory; one that holds files nobody asked dsrctl to remove stays."""
    try:
        with _parent(path) as (dir_fd, name):
            try:
                os.rmdir(name, dir_fd=dir_fd)  # a link there fails (ENOTDIR): never followed
            except FileNotFoundError:
                return
            _fsync_dir(dir_fd)
    except _Missing:
        return
    except OSError as exc:
        if exc.errno == errno.ENOTEMPTY:
            names = ", ".join(sorted(os.listdir(path))[:5])
            raise HostError(
                f"cannot remove directory {path}, which dsrctl created: it now holds files "
                f"dsrctl did not write ({names}); move them or remove the directory by hand"
            ) from None
        raise HostError(f"cannot remove directory {path}: {exc.strerror}") from None
