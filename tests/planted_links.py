"""Symbolic links planted by an unprivileged user (uid 65534) in a directory dsrctl writes:
the root-owned ``Victim`` they point at, ``give_to_nobody`` to hand a directory to that
user, ``plant`` to plant the links as that user at every temporary name the old writer
would have used, and ``assert_links_intact`` to check that nothing wrote through them.

Shared by the namespace tests (tests/netns/test_planted_links.py) and the fake-Windows
capture tests (tests/windows/test_planted_links_capture.py).
"""

from __future__ import annotations

import os
from pathlib import Path

NOBODY = 65534
PIDS_AHEAD = 3000
VICTIM_TEXT = b"root's precious file\n"


class Victim:
    """A root-owned file outside every directory the attacker can write."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_bytes(VICTIM_TEXT)
        path.chmod(0o600)
        self.stat = path.stat()

    def assert_untouched(self) -> None:
        now = self.path.stat()
        assert self.path.read_bytes() == VICTIM_TEXT
        assert (now.st_mode, now.st_uid, now.st_gid, now.st_ino) == (
            self.stat.st_mode,
            self.stat.st_uid,
            self.stat.st_gid,
            self.stat.st_ino,
        )


def give_to_nobody(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    os.chown(directory, NOBODY, NOBODY)
    directory.chmod(0o777)


def plant(directory: Path, victim: Victim, names: list[str], final: bool = True) -> list[Path]:
    """As uid 65534: a link to the victim at each coming temp name of each name (and at
    the name itself if ``final``). Returns the temp-name links."""
    last_pid = int(Path("/proc/sys/kernel/ns_last_pid").read_text())
    first, last = last_pid + 1, last_pid + PIDS_AHEAD
    links = [f".{name}.dsrctl-tmp-{pid}" for name in names for pid in range(first, last)]
    links += names if final else []
    # A child that becomes uid 65534 and works from the directory's descriptor: it needs
    # no access to the directories above (pytest's are 0700), only to this one.
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            for link in links:
                os.symlink(victim.path, link, dir_fd=fd)
            code = 0
        finally:
            os._exit(code)
    os.close(fd)
    assert os.waitpid(child, 0)[1] == 0, "planting as uid 65534 failed"
    temps = [directory / f".{name}.dsrctl-tmp-{pid}" for name in names for pid in (first, last - 1)]
    assert all(os.lstat(link).st_uid == NOBODY for link in temps)
    return temps


def assert_links_intact(temps: list[Path], victim: Victim) -> None:
    """Each planted link is still a link to the victim, or gone (apply removes what looks
    like a dead writer's temp file: unlink removes the link, never its target)."""
    for link in temps:
        if os.path.lexists(link):
            assert os.readlink(link) == str(victim.path), link
    victim.assert_untouched()
