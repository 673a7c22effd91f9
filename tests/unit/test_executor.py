"""The executor: journal before each step, rollback in reverse from observed values.

The host here is a small in-memory fake that refuses what it is told to refuse; the real
kernel path is covered by tests/netns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dsrctl.errors import ApplyFailed, HostError, VerificationError
from dsrctl.executor import execute, group_steps
from dsrctl.model import AddressState, FileState
from dsrctl.plan import Plan
from dsrctl.steps import AddressStep, FileStep, Phase, Step, SysctlStep
from state.journal import Journal, read_journal


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
    journal = Journal(str(tmp_path / "journal.jsonl"))
    journal.begin(spec="s")
    try:
        return execute(make_plan(), host, journal, verify or (lambda: None), lambda: [])
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
