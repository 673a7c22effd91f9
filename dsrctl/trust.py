"""Whose file is it? The trust check for a spec (or saved plan) that root acts on.

A spec decides what root writes to /etc and to the kernel, so whoever can change the spec
can change the host. A file is trusted only when nobody but root and the running user
can change it:

- the file is owned by root or by the running user, and not writable by group or others;
- every directory on its path (also through symlinks, and a symlink on the path itself)
  is owned by root or the running user and is not writable by group or others, unless the
  sticky bit is set (as on /tmp): in such a directory others can add names but cannot
  rename or replace a file they do not own.

apply and `drift --fix` refuse an untrusted spec, plan, drift and validate print a note.
POSIX ACLs need no check of their own: an ACL entry that grants write shows as the group
write bit (the ACL mask) in the mode. Windows has no meaningful mode in os.stat: no check.

The rules are pure functions over ``os.stat_result`` so that they are tested with plain
data; :func:`check_path` does the reading.
"""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass

from dsrctl.errors import MISSING, DsrctlError, SpecError


@dataclass(frozen=True)
class Problem:
    """One reason a path cannot be trusted, and the command that fixes it."""

    path: str
    what: str  # "is writable by group and others (mode 0666)"
    fix: str  # "chmod go-w /etc/dsrctl/spec.toml"

    def describe(self) -> str:
        return f"{self.path} {self.what} (fix: {self.fix})"


class UntrustedFile(DsrctlError):
    """Someone other than root and the running user can change a file that root acts on:
    fix the ownership or mode as the message says, or move the file to a root-owned
    directory."""


def owner_trusted(uid: int, euid: int) -> bool:
    return uid in (0, euid)


def owner_name(uid: int) -> str:
    import pwd

    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _writers(mode: int) -> str:
    group, others = bool(mode & stat.S_IWGRP), bool(mode & stat.S_IWOTH)
    return "group and others" if group and others else "group" if group else "others"


def _chmod(mode: int) -> str:
    who = ("g" if mode & stat.S_IWGRP else "") + ("o" if mode & stat.S_IWOTH else "")
    return f"chmod {who}-w"


def _owner_problem(path: str, st: os.stat_result, euid: int, kind: str) -> Problem | None:
    if owner_trusted(st.st_uid, euid):
        return None
    return Problem(
        path,
        f"is {kind} owned by {owner_name(st.st_uid)}, not by root or the running user",
        f"chown root {path}",
    )


def file_problems(path: str, st: os.stat_result, euid: int) -> list[Problem]:
    """The file itself (``st`` from os.stat): a trusted owner, no group or other write."""
    problems = []
    owner = _owner_problem(path, st, euid, "a file")
    if owner is not None:
        problems.append(owner)
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problems.append(
            Problem(
                path,
                f"is writable by {_writers(st.st_mode)} (mode {stat.S_IMODE(st.st_mode):04o})",
                f"{_chmod(st.st_mode)} {path}",
            )
        )
    return problems


def directory_problems(path: str, st: os.stat_result, euid: int) -> list[Problem]:
    """A directory on the way: a trusted owner; group or other write only with the sticky
    bit (then others cannot replace a file they do not own)."""
    problems = []
    owner = _owner_problem(path, st, euid, "a directory")
    if owner is not None:
        problems.append(owner)
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not st.st_mode & stat.S_ISVTX:
        problems.append(
            Problem(
                path,
                f"is a directory writable by {_writers(st.st_mode)} without the sticky bit "
                f"(mode {stat.S_IMODE(st.st_mode):04o}): they can replace any file in it",
                f"{_chmod(st.st_mode)} {path}",
            )
        )
    return problems


def link_problems(path: str, st: os.stat_result, euid: int) -> list[Problem]:
    """A symlink (``st`` from os.lstat): its owner can remove it from a sticky directory
    and plant another."""
    owner = _owner_problem(path, st, euid, "a symlink")
    return [] if owner is None else [owner]


def kind_of(st: os.stat_result) -> str | None:
    """What a non-regular file is, or None for a regular file."""
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return None
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _ancestors(path: str) -> list[str]:
    """Every directory above ``path`` (absolute, normalised), outermost first."""
    found = []
    parent = os.path.dirname(path)
    while True:
        found.append(parent)
        above = os.path.dirname(parent)
        if above == parent:
            break
        parent = above
    return list(reversed(found))


def check_path(path: str, euid: int | None = None) -> list[Problem]:
    """Read the file at ``path`` and the directories above it (as given and as resolved);
    return what makes it untrustworthy. A path that cannot be read is not judged here: the
    loader reports it."""
    if sys.platform == "win32":
        return []
    euid = os.geteuid() if euid is None else euid
    given = os.path.abspath(path)
    try:
        real = os.path.realpath(given, strict=True)
        st = os.stat(real)
    except (OSError, ValueError):
        return []
    problems: list[Problem] = []
    seen: set[tuple[int, int]] = set()
    for directory in [*_ancestors(given), *_ancestors(real)]:
        try:
            link = os.lstat(directory)
            target = os.stat(directory) if stat.S_ISLNK(link.st_mode) else link
        except OSError:
            continue
        if stat.S_ISLNK(link.st_mode):
            problems += link_problems(directory, link, euid)
        if (target.st_dev, target.st_ino) not in seen:
            seen.add((target.st_dev, target.st_ino))
            problems += directory_problems(directory, target, euid)
    try:
        link = os.lstat(given)
    except OSError:
        return problems
    if stat.S_ISLNK(link.st_mode):
        problems += link_problems(given, link, euid)
    return problems + file_problems(given if given == real else real, st, euid)


def require_regular(path: str, what: str = "spec file") -> None:
    """Refuse a directory, FIFO or device before anything opens it (a FIFO would block,
    /dev/zero would never end)."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return  # the loader reports a missing or unreadable file in its own words
    kind = kind_of(st)
    if kind is not None:
        raise SpecError(path, "", MISSING, f"is {kind}, not a {what}")


def refuse_untrusted(path: str, role: str, action: str) -> None:
    """Raise when root would act on a file that someone else can change."""
    problems = check_path(path)
    if problems:
        found = "; ".join(problem.describe() for problem in problems)
        raise UntrustedFile(
            f"refusing to {action}: the {role} {path} can be changed by someone other than "
            f"root and the running user: {found}; nothing was changed"
        )


def untrusted_notes(path: str, role: str, action: str) -> list[str]:
    """The same finding as a note for read-only commands."""
    problems = check_path(path)
    if not problems:
        return []
    found = "; ".join(problem.describe() for problem in problems)
    return [
        f"the {role} {path} can be changed by someone other than root and the running user: "
        f"{found}; {action} will refuse it"
    ]
