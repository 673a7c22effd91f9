"""Read-only access to a root tree (the live host's "/" or an image, a test directory).

Detection and the sysctl.d scan read configuration through :class:`Tree`, so that a root
other than "/" is read exactly like the live host, links included: every link, in a
parent directory or at the path itself, is followed inside the root (an absolute target
is looked up under the root, never on this host), the same way providers.model.under_root
maps the paths dsrctl writes.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import posixpath
import stat
from collections.abc import Iterator

from providers.errors import HostError
from providers.model import resolve_in_root
from providers.model import under_root as under

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def _no_follow(path: str, flags: int) -> int:
    # resolve() followed every link inside the root; one left at the path (a loop, or one
    # planted since) is not followed on this host. O_NONBLOCK: a FIFO must not hang a read.
    return os.open(path, flags | _NOFOLLOW | _CLOEXEC | _NONBLOCK)


class Tree:
    """Read-only access to the files under a root, by their path as seen from the root.

    A file that exists but cannot be read is remembered, so that the plan can say that
    detection is incomplete instead of quietly guessing."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.unreadable: list[str] = []

    def path(self, logical: str) -> str:
        """The host path of ``logical``, its parent directories' links followed inside
        the root (the last component is not followed)."""
        return under(self.root, logical)

    def resolve(self, logical: str) -> str:
        """``logical`` with symbolic links followed inside the root (an absolute target
        such as /etc/sysctl.conf is the root's, not this host's). A loop of links, or a
        path with "..", is returned as it is (reading it then finds nothing)."""
        try:
            return resolve_in_root(self.root, logical, follow_last=True)
        except HostError:
            return logical

    def read(self, logical: str) -> str | None:
        found = self.read_bytes(logical)
        return None if found is None else found[0].decode("utf-8", errors="replace")

    def read_bytes(self, logical: str) -> tuple[bytes, int] | None:
        """The bytes and permission bits of ``logical``, links followed inside the root."""
        try:
            with open(self.path(self.resolve(logical)), "rb", opener=_no_follow) as handle:
                return handle.read(), os.fstat(handle.fileno()).st_mode & 0o7777
        except PermissionError:
            self.unreadable.append(logical)
        except (OSError, HostError):
            pass
        return None

    def exists(self, logical: str, kind: str = "any") -> bool:
        """Whether ``logical`` exists under the root (``kind``: "file", "dir" or "any"),
        links followed inside the root, never to this host's files."""
        try:
            info = os.lstat(self.path(self.resolve(logical)))
        except (OSError, HostError):
            return False
        if kind == "file":
            return stat.S_ISREG(info.st_mode)
        if kind == "dir":
            return stat.S_ISDIR(info.st_mode)
        return True

    def glob(self, pattern: str) -> list[str]:
        """Paths (as seen from the root) that match ``pattern``, each link in a directory
        on the way followed inside the root; the matched names themselves are returned
        as found (a link is not replaced by its target)."""
        found = [""]
        # ".." (``source ../x`` in ifupdown) taken lexically; at the root it stays there.
        parts = [p for p in posixpath.normpath("/" + pattern).split("/") if p not in ("", ".")]
        for part in parts:
            matched = []
            for prefix in found:
                if not any(char in part for char in "*?["):  # a plain name
                    matched.append(f"{prefix}/{part}")
                    continue
                names = self.listdir(prefix or "/")
                show_hidden = part.startswith(".")
                matched += [
                    f"{prefix}/{name}"
                    for name in names
                    if (show_hidden or not name.startswith(".")) and fnmatch.fnmatchcase(name, part)
                ]
            found = matched
        return sorted(path for path in found if parts and self._lexists(path))

    def _lexists(self, logical: str) -> bool:
        try:
            return os.path.lexists(self.path(logical))
        except HostError:
            return False

    def listdir(self, logical: str) -> list[str]:
        with self._open_dir(logical) as fd:
            if fd is None:
                return []
            try:
                return sorted(os.listdir(fd))
            except OSError:
                return []

    @contextlib.contextmanager
    def _open_dir(self, logical: str) -> Iterator[int | None]:
        try:
            fd = os.open(
                self.path(self.resolve(logical)), os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC
            )
        except (OSError, HostError):
            yield None
            return
        try:
            yield fd
        finally:
            os.close(fd)


def first_by_name(tree: Tree, directories: tuple[str, ...], suffix: str) -> list[tuple[str, str]]:
    """(path, text) of each config file, one per name (the first directory wins), by name."""
    chosen: dict[str, str] = {}
    for directory in directories:
        for name in tree.listdir(directory):
            if name.endswith(suffix) and name not in chosen:
                chosen[name] = f"{directory}/{name}"
    result = []
    for name in sorted(chosen):
        text = tree.read(chosen[name])
        if text is not None:  # a dangling link masks the name, as for systemd
            result.append((chosen[name], text))
    return result


def is_live(root: str) -> bool:
    return os.path.realpath(root) == "/"


def boots_with_systemd(root: str) -> bool:
    """systemd boots the live host (it runs), or is installed under another root."""
    if is_live(root):
        return os.path.isdir("/run/systemd/system")
    return os.path.isdir(under(root, "/etc/systemd/system"))
