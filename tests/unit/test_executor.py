"""The executor: journal before each step, rollback in reverse from observed values.

The host here is a small in-memory fake that refuses what it is told to refuse; the real
kernel path is covered by tests/netns.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from dsrctl.errors import ApplyFailed, HostError, StateError, VerificationError
from dsrctl.executor import execute, group_steps
from dsrctl.kinds.address import AddressStep
from dsrctl.kinds.file import FileStep
from dsrctl.kinds.sysctl import SysctlStep
from dsrctl.model import AddressState, FileState
from dsrctl.plan import Plan
from dsrctl.steps import Phase, Step
from providers import safefile
from state.journal import Journal, read_journal, read_records


class FakeHost:
    def __init__(self, journal_path: Path) -> None:
        self.sysctls: dict[str, int | str] = {"a": 0, "b": 0}
        self.addresses: dict[str, AddressState] = {}
        self.files: dict[str, FileState] = {}
        self.fail_on: set[str] = set()
        self.calls: list[str] = []
        self.journal_path = journal_path
        self.journal_lengths: list[int] = []

    def _check(self, what: str) -> None:
        self.journal_lengths.append(len(read_journal(str(self.journal_path))))
        self.calls.append(what)
        if what in self.fail_on:
            raise HostError(f"refused {what}")

    def set_sysctl(self, key: str, value: int | str) -> None:
        self._check(f"sysctl {key}={value}")
        self.sysctls[key] = value

    def run_batch(self, steps: list[Step]) -> list[BaseException | None]:
        results: list[BaseException | None] = []
        for step in steps:
            assert isinstance(step, AddressStep)
            try:
                self._check(f"{step.action} {step.cidr}")
            except HostError as exc:
                results.append(exc)
                continue
            if step.after is None:
                self.addresses.pop(step.cidr, None)
            else:
                self.addresses[step.cidr] = step.after
            results.append(None)
        return results

    def write_file(self, path: str, state: FileState) -> None:
        self._check(f"write {path}")
        self.files[path] = state

    def remove_file(self, path: str) -> None:
        self._check(f"remove {path}")
        self.files.pop(path, None)


def addr(cidr: str) -> AddressState:
    address, prefix = cidr.split("/")
    return AddressState(address, int(prefix), label="lo")


def make_plan() -> Plan:
    return Plan(
        steps=(
            SysctlStep("sysctl:a", 0, 1, Phase.HARDEN),
            SysctlStep("sysctl:b", 0, 2, Phase.HARDEN),
            AddressStep("address:lo:192.0.2.1/32", None, addr("192.0.2.1/32"), Phase.ADD_ADDRESSES),
            AddressStep("address:lo:192.0.2.2/32", None, addr("192.0.2.2/32"), Phase.ADD_ADDRESSES),
            FileStep("file:/f.conf", None, FileState(b"a = 1\n"), Phase.PERSIST),
        )
    )


def run(host: FakeHost, tmp_path: Path, verify: Any = None) -> int:
    journal = Journal(str(tmp_path / "journal.jsonl"), safefile)
    journal.begin(spec="s")
    try:
        return execute(make_plan(), host, journal, verify or (lambda: None), lambda: []).steps
    finally:
        journal.close()


@pytest.fixture
def fake(tmp_path: Path) -> FakeHost:
    return FakeHost(tmp_path / "journal.jsonl")


def test_steps_run_in_plan_order_and_addresses_are_batched(fake: FakeHost, tmp_path: Path) -> None:
    assert [len(g) for g in group_steps(make_plan().steps)] == [1, 1, 2, 1]
    assert run(fake, tmp_path) == 5
    assert fake.calls == [
        "sysctl a=1",
        "sysctl b=2",
        "create 192.0.2.1/32",
        "create 192.0.2.2/32",
        "write /f.conf",
    ]
    records = read_journal(str(tmp_path / "journal.jsonl"))
    assert [r["type"] for r in records] == [
        "begin",
        *["intent", "done"] * 4,
        "end",
    ]
    assert records[-1]["result"] == "applied"


def test_journal_intent_with_prior_value_is_written_before_each_step(
    fake: FakeHost, tmp_path: Path
) -> None:
    run(fake, tmp_path)
    records = read_journal(str(tmp_path / "journal.jsonl"))
    # Before the first host call the journal held "begin" and the first "intent".
    assert fake.journal_lengths[0] == 2
    assert records[1]["type"] == "intent"
    assert records[1]["steps"][0]["before"] == 0
    assert records[1]["steps"][0]["after"] == 1
    file_intent = records[7]
    assert file_intent["steps"][0]["before"] is None
    assert file_intent["steps"][0]["after"]["b64"] == "YSA9IDEK"


def test_failure_midway_undoes_completed_steps_in_reverse(fake: FakeHost, tmp_path: Path) -> None:
    fake.fail_on = {"write /f.conf"}
    with pytest.raises(ApplyFailed) as caught:
        run(fake, tmp_path)
    assert "refused write /f.conf" in str(caught.value)
    assert "rolled back 4 completed step(s)" in str(caught.value)
    assert fake.calls[5:] == [
        # The failed step itself is not undone: a single step that raises did nothing.
        "delete 192.0.2.2/32",
        "delete 192.0.2.1/32",
        "sysctl b=0",
        "sysctl a=0",
    ]
    assert fake.sysctls == {"a": 0, "b": 0}
    assert fake.addresses == {}
    records = read_journal(str(tmp_path / "journal.jsonl"))
    assert records[-1]["type"] == "end"
    assert records[-1]["result"] == "rolled-back"
    assert [r["type"] for r in records].count("undo") == 3


def test_partial_batch_undoes_only_what_completed(fake: FakeHost, tmp_path: Path) -> None:
    fake.fail_on = {"create 192.0.2.2/32"}
    with pytest.raises(ApplyFailed):
        run(fake, tmp_path)
    assert "delete 192.0.2.2/32" not in fake.calls
    assert "delete 192.0.2.1/32" in fake.calls
    assert fake.addresses == {}
    assert fake.sysctls == {"a": 0, "b": 0}


def test_failed_verification_rolls_back(fake: FakeHost, tmp_path: Path) -> None:
    def verify() -> None:
        raise VerificationError("after apply the host still differs")

    with pytest.raises(ApplyFailed) as caught:
        run(fake, tmp_path, verify)
    assert "still differs" in str(caught.value)
    assert fake.files == {}
    assert fake.addresses == {}
    assert fake.sysctls == {"a": 0, "b": 0}


def test_failed_rollback_is_reported_next_to_the_original_error(
    fake: FakeHost, tmp_path: Path
) -> None:
    fake.fail_on = {"write /f.conf", "sysctl b=0"}
    with pytest.raises(ApplyFailed) as caught:
        run(fake, tmp_path)
    message = str(caught.value)
    assert message.startswith("apply failed: refused write /f.conf")
    assert "rollback FAILED (1 error(s)): undo of sysctl:b: refused sysctl b=0" in message
    # The rest was still undone.
    assert fake.sysctls["a"] == 0
    assert fake.addresses == {}
    assert read_journal(str(tmp_path / "journal.jsonl"))[-1]["result"] == "rollback-failed"


def test_interrupt_during_apply_rolls_back(fake: FakeHost, tmp_path: Path) -> None:
    original = fake.set_sysctl

    def interrupted(key: str, value: int | str) -> None:
        if key == "b" and value == 2:
            raise KeyboardInterrupt
        original(key, value)

    fake.set_sysctl = interrupted  # type: ignore[method-assign]
    with pytest.raises(ApplyFailed):
        run(fake, tmp_path)
    assert fake.sysctls == {"a": 0, "b": 0}


def test_inverse_swaps_before_and_after() -> None:
    step = SysctlStep("sysctl:a", 0, 1, Phase.HARDEN)
    inverse = step.inverse()
    assert (inverse.before, inverse.after, inverse.action) == (1, 0, "update")
    create = AddressStep("address:lo:192.0.2.1/32", None, addr("192.0.2.1/32"), Phase.ADD_ADDRESSES)
    assert create.inverse().action == "delete"
    assert create.inverse().inverse().action == "create"
    assert create.inverse().note == "rollback"


def test_sigterm_during_apply_becomes_an_exception_that_rolls_back(
    fake: FakeHost, tmp_path: Path
) -> None:
    import os
    import signal

    from dsrctl.executor import Terminated, terminate_as_interrupt

    saved = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)
    original = fake.set_sysctl

    def killed(key: str, value: int | str) -> None:
        original(key, value)
        if key == "b":
            os.kill(os.getpid(), signal.SIGTERM)

    fake.set_sysctl = killed  # type: ignore[method-assign]
    try:
        terminate_as_interrupt()
        with pytest.raises(ApplyFailed) as caught:
            run(fake, tmp_path)
    finally:
        signal.signal(signal.SIGTERM, saved[0])
        signal.signal(signal.SIGHUP, saved[1])
    assert isinstance(caught.value.original, Terminated)
    assert "stopped by SIGTERM" in str(caught.value)
    assert fake.sysctls == {"a": 0, "b": 0}


class FullDisk:
    """Journal records from number ``after`` on fail as on a full disk (ENOSPC)."""

    def __init__(self, after: int) -> None:
        self.after = after
        self.count = 0

    def __call__(self, fd: int, data: bytes | memoryview) -> int:
        self.count += 1
        if self.count > self.after:
            raise OSError(errno.ENOSPC, "No space left on device")
        return REAL_WRITE(fd, data)


REAL_WRITE = os.write


@pytest.mark.parametrize("records_that_fit", range(1, 12))
def test_a_full_disk_at_any_journal_record_leaves_the_host_as_before_or_as_planned(
    fake: FakeHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, records_that_fit: int
) -> None:
    """The old executor wrote a "failed" record before undoing; on a full disk that write
    raised and the undo never ran: VIPs and sysctls stayed with no rollback."""
    monkeypatch.setattr(safefile.os, "write", FullDisk(records_that_fit))
    planned = {"a": 1, "b": 2}
    try:
        run(fake, tmp_path)
    except ApplyFailed as exc:
        assert "No space left on device" in str(exc)
        assert "the host is as it was before apply" in str(exc)
        assert fake.sysctls == {"a": 0, "b": 0}
        assert fake.addresses == {} and fake.files == {}
    else:
        assert fake.sysctls == planned
        assert set(fake.addresses) == {"192.0.2.1/32", "192.0.2.2/32"}
    monkeypatch.setattr(safefile.os, "write", REAL_WRITE)
    # Every line that stands in the journal is a whole record: nothing torn.
    raw = (tmp_path / "journal.jsonl").read_bytes()
    assert raw == b"" or raw.endswith(b"\n")
    assert read_records(str(tmp_path / "journal.jsonl")).problems == []


def test_a_group_never_runs_unless_its_intent_is_written(
    fake: FakeHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # begin (1) and the first intent (2) fit; the "done" of group 0 does not.
    monkeypatch.setattr(safefile.os, "write", FullDisk(2))
    with pytest.raises(ApplyFailed):
        run(fake, tmp_path)
    assert fake.calls == ["sysctl a=1", "sysctl a=0"]


def test_a_fully_undone_run_whose_end_cannot_be_written_leaves_no_trace(
    fake: FakeHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal_path = tmp_path / "journal.jsonl"
    journal = Journal(str(journal_path), safefile)
    journal.begin(spec="earlier")
    journal.write("end", result="applied")
    journal.close()
    before = journal_path.read_bytes()
    monkeypatch.setattr(safefile.os, "write", FullDisk(4))
    with pytest.raises(ApplyFailed) as caught:
        run(fake, tmp_path)
    assert "the journal could not record this" in str(caught.value)
    assert journal_path.read_bytes() == before
    assert fake.sysctls == {"a": 0, "b": 0}


def test_a_failed_commit_rolls_the_host_back(fake: FakeHost, tmp_path: Path) -> None:
    def commit() -> None:
        raise StateError("cannot write ownership records: No space left on device")

    journal = Journal(str(tmp_path / "journal.jsonl"), safefile)
    journal.begin(spec="s")
    with pytest.raises(ApplyFailed) as caught:
        execute(make_plan(), fake, journal, lambda: None, lambda: [], commit=commit)
    journal.close()
    assert "ownership records" in str(caught.value)
    assert fake.sysctls == {"a": 0, "b": 0} and fake.addresses == {} and fake.files == {}
    assert read_journal(str(tmp_path / "journal.jsonl"))[-1]["result"] == "rolled-back"
