"""State directory pieces: atomic writes, the lock, ownership records, the journal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dsrctl.errors import LockError, StateError
from providers import safefile
from providers.safefile import write_atomic
from state.journal import Journal, read_journal
from state.lock import ApplyLock
from state.ownership import Ownership
from state.statedir import StateDir


def test_write_atomic_replaces_with_mode_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "f.conf"
    target.write_text("old\n")
    write_atomic(str(target), b"new\n", 0o640)
    assert target.read_bytes() == b"new\n"
    assert target.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.conf"]


def test_write_atomic_failure_keeps_old_file(tmp_path: Path) -> None:
    target = tmp_path / "f.conf"
    target.write_text("old\n")
    with pytest.raises(TypeError):
        write_atomic(str(target), None, 0o644)  # type: ignore[arg-type]
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.conf"]


def test_second_lock_fails_at_once_naming_the_holder(tmp_path: Path) -> None:
    path = str(tmp_path / "lock")
    with ApplyLock(path, "dsrctl apply first", safefile):
        with pytest.raises(LockError) as caught:
            ApplyLock(path, "dsrctl apply second", safefile).acquire()
        message = str(caught.value)
        assert f"pid {os.getpid()}" in message
        assert "'dsrctl apply first'" in message
    # Released: the next one gets it.
    with ApplyLock(path, "third", safefile):
        pass


def test_lock_held_by_another_process_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from providers import safefile; from state.lock import ApplyLock\n"
            f"l = ApplyLock({str(path)!r}, 'dsrctl apply held', safefile); l.acquire()\n"
            "print('held', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockError, match=f"pid {holder.pid} .*'dsrctl apply held'"):
            ApplyLock(str(path), "second", safefile).acquire()
    finally:
        holder.kill()
        holder.wait()
    # The kernel released the dead holder's lock: no stale lock.
    with ApplyLock(str(path), "after", safefile):
        pass


def test_ownership_keeps_the_first_original(tmp_path: Path) -> None:
    path = str(tmp_path / "ownership.json")
    records = Ownership()
    records.remember("sysctl:x", created=False, original=0)
    records.remember("sysctl:x", created=False, original=1)
    records.remember("address:lo:192.0.2.1/32", created=True, original=None)
    records.save(path, safefile)
    loaded = Ownership.load(path)
    record = loaded.get("sysctl:x")
    assert record is not None
    assert record.original == 0
    assert loaded.created("address:lo:192.0.2.1/32")
    assert not loaded.created("sysctl:x")
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_missing_ownership_file_is_empty_and_corrupt_one_is_an_error(tmp_path: Path) -> None:
    assert Ownership.load(str(tmp_path / "none.json")).records == {}
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(StateError, match="corrupt"):
        Ownership.load(str(bad))
    bad.write_text(json.dumps({"version": 99, "resources": {}}))
    with pytest.raises(StateError, match="unknown format"):
        Ownership.load(str(bad))


def test_journal_records_are_appended_and_fsynced_lines(tmp_path: Path) -> None:
    path = str(tmp_path / "journal.jsonl")
    journal = Journal(path, safefile)
    txn = journal.begin(spec="s.toml")
    journal.write(
        "intent", seq=0, steps=[{"kind": "sysctl", "resource": "sysctl:a", "before": 0, "after": 1}]
    )
    journal.close()
    second = Journal(path, safefile)
    second.begin(spec="s.toml")
    second.close()
    records = read_journal(path)
    assert [r["type"] for r in records] == ["begin", "intent", "begin"]
    assert records[1]["txn"] == txn
    assert records[2]["txn"] != txn


def test_state_dir_is_created_private(tmp_path: Path) -> None:
    state = StateDir(str(tmp_path / "a" / "state"), safefile)
    state.ensure()
    assert os.stat(state.path).st_mode & 0o777 == 0o700
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StateError, match="cannot create state directory"):
        StateDir(str(blocker / "state"), safefile).ensure()


def test_a_dead_or_zombie_or_reused_pid_is_not_alive() -> None:
    import time

    from state.process import process_alive, process_token

    assert process_alive(os.getpid(), process_token(os.getpid()))
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # exited but not reaped: a zombie
        with open(f"/proc/{child.pid}/stat") as handle:
            if handle.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.05)
    assert not process_alive(child.pid)
    child.wait()
    assert not process_alive(child.pid)
    # Same pid, another start time: a reused pid is not the run that wrote the marker.
    assert not process_alive(os.getpid(), "1")


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("inflight.json", '{"txn": "t", "pid": "12"}'),
        ("inflight.json", '{"txn": "t", "pid": true}'),
        ("inflight.json", "[1, 2, 3]"),
        ("inflight.json", '{"txn": "t"'),
        ("pending-confirm.json", '{"txn": "t", "deadline": NaN}'),
        ("pending-confirm.json", '{"txn": "t", "deadline": "soon"}'),
        ("pending-confirm.json", '{"deadline": 1}'),
    ],
)
def test_markers_are_read_strictly(tmp_path: Path, name: str, text: str) -> None:
    from state.errors import StateError
    from state.inflight import read_inflight
    from state.pending import read_pending

    state = StateDir(str(tmp_path), safefile)
    (tmp_path / name).write_text(text)
    (tmp_path / name).chmod(0o600)
    read = read_inflight if name == "inflight.json" else read_pending
    with pytest.raises(StateError, match=f"{name} is corrupt"):
        read(state)
