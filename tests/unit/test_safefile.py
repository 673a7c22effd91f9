"""The one safe file writer: no planted link is ever followed, failures leave the target."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from providers import safefile
from providers.safefile import remove_stray_temp_files, stray_temp_files, write_atomic
from state.statedir import open_no_follow


def test_planted_links_for_every_pid_are_never_followed(tmp_path: Path) -> None:
    """The old writer opened .NAME.dsrctl-tmp-PID with O_CREAT|O_TRUNC: a link planted
    under that name made root truncate and chmod the link's target."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious\n")
    victim.chmod(0o640)
    shared = tmp_path / "textfiles"
    shared.mkdir()
    for pid in [os.getpid(), *range(os.getpid() - 50, os.getpid() + 50)]:
        link = shared / f".dsrctl.prom.dsrctl-tmp-{pid}"
        if not link.is_symlink():
            link.symlink_to(victim)
    write_atomic(str(shared / "dsrctl.prom"), b"dsrctl_in_sync 1\n", 0o644)
    assert victim.read_bytes() == b"precious\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o640
    assert (shared / "dsrctl.prom").read_bytes() == b"dsrctl_in_sync 1\n"
    assert stat.S_IMODE((shared / "dsrctl.prom").stat().st_mode) == 0o644


def test_a_link_at_the_drawn_name_is_not_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even a name an attacker guessed is created with O_EXCL|O_NOFOLLOW: never opened."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious\n")
    names = iter(["a" * 32, "b" * 32])
    monkeypatch.setattr(safefile.secrets, "token_hex", lambda n: next(names))
    (tmp_path / f".out.dsrctl-tmp-{os.getpid()}-{'a' * 32}").symlink_to(victim)
    write_atomic(str(tmp_path / "out"), b"new\n")
    assert victim.read_bytes() == b"precious\n"
    assert (tmp_path / "out").read_bytes() == b"new\n"


def test_a_target_that_is_a_link_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious\n")
    (tmp_path / "out").symlink_to(victim)
    write_atomic(str(tmp_path / "out"), b"new\n")
    assert victim.read_bytes() == b"precious\n"
    assert not (tmp_path / "out").is_symlink()


def test_mode_is_set_on_the_descriptor_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        write_atomic(str(tmp_path / "out"), b"x", 0o644)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o644


def test_short_writes_are_continued(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = os.write

    def dribble(fd: int, data: bytes | memoryview) -> int:
        return real_write(fd, bytes(data[:3]))

    monkeypatch.setattr(safefile.os, "write", dribble)
    write_atomic(str(tmp_path / "out"), b"0123456789" * 10)
    assert (tmp_path / "out").read_bytes() == b"0123456789" * 10


def test_a_failed_write_leaves_the_target_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "out").write_bytes(b"old\n")

    def full(fd: int, data: bytes | memoryview) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safefile.os, "write", full)
    with pytest.raises(OSError) as caught:
        write_atomic(str(tmp_path / "out"), b"new\n")
    assert caught.value.errno == errno.ENOSPC
    assert (tmp_path / "out").read_bytes() == b"old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_open_no_follow_refuses_links_fifos_and_directories(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious\n")
    (tmp_path / "link").symlink_to(victim)
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    for name in ("link", "fifo", "dir"):
        with pytest.raises(OSError):
            os.close(open_no_follow(str(tmp_path / name), os.O_RDWR | os.O_CREAT))
    assert victim.read_bytes() == b"precious\n"
    fd = open_no_follow(str(tmp_path / "plain"), os.O_RDWR | os.O_CREAT)
    os.close(fd)
    assert (tmp_path / "plain").exists()


def test_stray_temp_files_of_dead_writers_are_found_and_removed(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    stray_new = tmp_path / f".90-dsrctl.conf.dsrctl-tmp-{dead_pid}-{'c' * 32}"
    stray_old = tmp_path / f".lock.dsrctl-tmp-{dead_pid}"
    live = tmp_path / f".x.dsrctl-tmp-{os.getpid()}-{'d' * 32}"
    other = tmp_path / ".not-ours-tmp-1"
    for path in (stray_new, stray_old, live, other):
        path.write_bytes(b"")
    found = stray_temp_files(str(tmp_path))
    assert found == sorted([str(stray_new), str(stray_old)])
    assert remove_stray_temp_files(str(tmp_path)) == found
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])
