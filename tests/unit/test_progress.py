"""dsrctl.progress (issue 12 point 6): what the executor reports, when a bar is made, and
that the rich bar appears only after its delay. The bar on a real terminal, through the
CLI, is tested in tests/netns/test_progress.py."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from dsrctl.errors import ApplyFailed
from dsrctl.executor import execute
from dsrctl.progress import NO_PROGRESS, for_terminal, show_after
from providers import safefile
from state.journal import Journal
from tests.unit.test_executor import FakeHost, make_plan


class Recording:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def start(self, total: int, description: str = "") -> None:
        self.calls.append(("start", total))

    def advance(self, n: int = 1, description: str | None = None) -> None:
        self.calls.append(("advance", n))

    def close(self) -> None:
        self.calls.append(("close", None))


def run(host: FakeHost, tmp_path: Path, progress: Recording) -> None:
    journal = Journal(str(tmp_path / "journal.jsonl"), safefile)
    journal.begin(spec="s")
    try:
        execute(make_plan(), host, journal, lambda: None, lambda: [], progress=progress)
    finally:
        journal.close()


def test_execute_counts_each_group_and_the_verification(tmp_path: Path) -> None:
    progress = Recording()
    run(FakeHost(tmp_path / "journal.jsonl"), tmp_path, progress)
    counted = [n for call, n in progress.calls if call == "advance" and n]
    # Five steps in four groups (two addresses in one batch), then the verification.
    assert progress.calls[0] == ("start", 6)
    assert counted == [1, 1, 2, 1, 1]
    assert progress.calls[-1] == ("close", None)


def test_a_failed_apply_counts_its_undo_and_closes_the_bar(tmp_path: Path) -> None:
    host = FakeHost(tmp_path / "journal.jsonl")
    host.fail_on.add("write /f.conf")
    progress = Recording()
    with pytest.raises(ApplyFailed):
        run(host, tmp_path, progress)
    restart = progress.calls.index(("start", 4))  # the four steps done are undone
    assert [n for call, n in progress.calls[restart:] if call == "advance" and n] == [2, 1, 1]
    assert progress.calls[-1] == ("close", None)


def test_no_bar_unless_both_streams_are_terminals(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdout", io.StringIO())
    monkeypatch.setattr("sys.stderr", Tty())
    assert for_terminal() is NO_PROGRESS
    monkeypatch.setattr("sys.stdout", Tty())
    assert for_terminal(machine_readable=True) is NO_PROGRESS
    assert for_terminal() is not NO_PROGRESS


def test_the_threshold_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DSRCTL_PROGRESS_AFTER", raising=False)
    assert show_after() == 1.0
    monkeypatch.setenv("DSRCTL_PROGRESS_AFTER", "0")
    assert show_after() == 0.0
    for wrong in ("soon", "-1"):
        monkeypatch.setenv("DSRCTL_PROGRESS_AFTER", wrong)
        assert show_after() == 1.0


def test_the_bar_appears_only_after_its_delay() -> None:
    from dsrctl.progress_rich import DelayedBar

    quick = DelayedBar(after=30)
    quick.start(10, "apply")
    quick.advance(10)
    quick.close()
    assert not quick._shown and quick._timer is not None and not quick._timer.is_alive()

    slow = DelayedBar(after=0.05)
    slow.start(10, "apply")
    deadline = time.monotonic() + 5
    while not slow._shown and time.monotonic() < deadline:
        time.sleep(0.01)
    assert slow._shown
    slow.close()
    assert not slow._shown
