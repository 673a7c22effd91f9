"""Read-only access to a root tree (the live host's "/" or an image, a test directory).

Detection and the sysctl.d scan read configuration through :class:`Tree`, so that a root
other than "/" is read exactly like the live host, links included: an absolute link
target is looked up under the root, never on this host.
"""

from __future__ import annotations

import glob
import os

from dsrctl.model import under_root as under

_MAX_LINKS = 40


class Tree:
    """Read-only access to the files under a root, by their path as seen from the root.

    A file that exists but cannot be read is remembered, so that the plan can say that
    detection is incomplete instead of quietly guessing."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.unreadable: list[str] = []

    def path(self, logical: str) -> str:
        return under(self.root, logical)

    def resolve(self, logical: str) -> str:
        """``logical`` with symbolic links followed inside the root (an absolute target
        such as /etc/sysctl.conf is the root's, not this host's)."""
        for _ in range(_MAX_LINKS):
            try:
                target = os.readlink(self.path(logical))
            except OSError:
                return logical
            logical = os.path.normpath(os.path.join(os.path.dirname(logical), target))
        return logical

    def read(self, logical: str) -> str | None:
        try:
            with open(
                self.path(self.resolve(logical)), encoding="utf-8", errors="replace"
            ) as handle:
                return handle.read()
        except PermissionError:
            self.unreadable.append(logical)
        except OSError:
            pass
        return None

    def glob(self, pattern: str) -> list[str]:
        return sorted("/" + os.path.relpath(p, self.root) for p in glob.glob(self.path(pattern)))

    def listdir(self, logical: str) -> list[str]:
        try:
            return sorted(os.listdir(self.path(logical)))
        except OSError:
            return []


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
