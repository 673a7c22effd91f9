"""Apply a plan: journal each step before it runs, run it, and undo on failure.

Completed steps are undone in reverse order from the values observed before them. A
rollback that fails is reported next to the original error, never instead of it.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, cast, runtime_checkable

from dsrctl.errors import ApplyFailed
from dsrctl.plan import Plan
from dsrctl.progress import NO_PROGRESS, Progress
from dsrctl.steps import Step
from state.journal import Journal

if TYPE_CHECKING:
    from dsrctl.kinds.address import AddressStep
    from providers.linux.changes import AddressChange, FileChange


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived during apply: roll back, then exit."""


# SIGHUP does not exist on Windows.
_STOP_SIGNALS = tuple(name for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def terminate_as_interrupt() -> None:
    """Turn SIGTERM/SIGHUP into an exception so that a stopped apply still rolls back.

    (systemd stops units with SIGTERM; a closed SSH session sends SIGHUP.)
    """

    def handler(signum: int, frame: object) -> None:
        # Ignore further signals while the rollback runs.
        for name in _STOP_SIGNALS:
            signal.signal(getattr(signal, name), signal.SIG_IGN)
        raise Terminated(f"stopped by {signal.Signals(signum).name}")

    for name in _STOP_SIGNALS:
        signal.signal(getattr(signal, name), handler)


def group_steps(steps: tuple[Step, ...] | list[Step]) -> list[list[Step]]:
    """Neighbouring batchable steps of one kind and phase run as one host call."""
    groups: list[list[Step]] = []
    for step in steps:
        last = groups[-1] if groups else None
        if (
            last is not None
            and step.batchable
            and last[0].batchable
            and last[0].kind == step.kind
            and last[0].phase == step.phase
        ):
            last.append(step)
        else:
            groups.append([step])
    return groups


def run_group(host: StepHost, group: list[Step]) -> tuple[list[Step], BaseException | None]:
    """Run one group; return the steps that completed and the first error, if any."""
    if len(group) == 1 and not group[0].batchable:
        group[0].apply(host)
        return group, None
    # Address steps are the only batchable kind (dsrctl.kinds.address); mypy checks here
    # that they are the AddressChange the host takes, and at each platform's record that
    # its host is a BatchRunner when its steps batch (LinuxHost).
    if not isinstance(host, BatchRunner):
        raise TypeError(f"{type(host).__name__} cannot run a batch of {group[0].kind} steps")
    errors = host.run_batch(cast("list[AddressStep]", group))
    completed = [step for step, error in zip(group, errors, strict=True) if error is None]
    first = next((error for error in errors if error is not None), None)
    return completed, first


class StepHost(Protocol):
    """The host the executor runs steps on (a provider: LinuxHost, WindowsHost).

    The executor hands it to each step's ``apply``, which takes the writer Protocol of its
    kind (``dsrctl.kinds.*``, ``dsrctl.windows.steps.WindowsWriter``); a group of
    batchable steps goes to ``run_batch`` (:class:`BatchRunner`), and a host that can
    make its undo independent of free space is an :class:`UndoPreparer`. mypy checks at
    each platform's record (``dsrctl.linux.PLATFORM``, ``dsrctl.windows.PLATFORM``) that
    its host is all of those its steps need."""

    @property
    def platform(self) -> str: ...


@runtime_checkable
class BatchRunner(Protocol):
    """A host that runs a group of batchable steps in one call (LinuxHost)."""

    def run_batch(self, steps: Sequence[AddressChange]) -> list[BaseException | None]: ...


@dataclass
class Executed:
    """A transaction that completed: every step ran, verified and committed."""

    steps: int
    # Set when the host and the records are as planned but the journal could not record
    # the end (a full disk): the run is then left unfinished for the next apply to seal.
    unrecorded: str | None = None


def execute(
    plan: Plan,
    host: StepHost,
    journal: Journal,
    verify: Callable[[], None],
    undone_check: Callable[[], list[str]],
    action: str = "apply",
    commit: Callable[[], None] | None = None,
    progress: Progress = NO_PROGRESS,
) -> Executed:
    """Run every step, ``verify()``, then ``commit()`` (the records that must agree with the
    host). On any failure up to and including the commit, roll back and raise ApplyFailed.

    Write-ahead: a group runs only after its intent record is durably in the journal; if
    that record cannot be written, the group never runs. Undo never depends on the
    journal: its records are written where possible, and a transaction whose changes
    were all undone but whose end cannot be recorded is cut from the journal, which then
    tells the truth: nothing happened.

    ``undone_check`` re-reads the host after a rollback and names what still differs from
    the state observed before.

    ``progress`` counts the steps and the verification (one unit) as they are done; it is
    closed when execute returns or raises.
    """
    if isinstance(host, UndoPreparer):
        try:
            host.prepare_undo(plan.steps)
        except BaseException:
            journal.abandon()
            raise
    try:
        return _execute(plan, host, journal, verify, undone_check, action, commit, progress)
    finally:
        progress.close()
        if isinstance(host, UndoPreparer):
            host.release_undo()


@runtime_checkable
class UndoPreparer(Protocol):
    """A host that can make its undo independent of free disk space (LinuxHost)."""

    def prepare_undo(self, steps: Sequence[FileChange]) -> None: ...

    def release_undo(self) -> None: ...


def _execute(
    plan: Plan,
    host: StepHost,
    journal: Journal,
    verify: Callable[[], None],
    undone_check: Callable[[], list[str]],
    action: str,
    commit: Callable[[], None] | None,
    progress: Progress,
) -> Executed:
    done: list[Step] = []
    # A group whose call did not return (a signal, an unexpected error) may have taken
    # effect in part: it is undone as a whole. Every inverse is idempotent.
    in_flight: list[Step] = []
    try:
        _pause_for_tests(-1)
        progress.start(len(plan.steps) + 1, action)
        for number, group in enumerate(group_steps(plan.steps)):
            journal.write("intent", seq=number, steps=[step.to_record() for step in group])
            in_flight = group
            if len(group) > 1:  # one host call: the bar moves when it returns
                progress.advance(0, f"{action}: {len(group)} {group[0].kind} changes")
            try:
                completed, error = run_group(host, group)
            except Exception:
                # A single step that raised did nothing: each one is atomic on its own
                # (sysctl write, rename of a complete file). A batch may have done part.
                if len(group) == 1 and not group[0].batchable:
                    in_flight = []
                raise
            in_flight = []
            done.extend(completed)
            if error is not None:
                raise error
            journal.write("done", seq=number)
            progress.advance(len(group), action)
            _pause_for_tests(number)
        progress.advance(0, f"{action}: verifying")
        verify()
        progress.advance(1)
        if commit is not None:
            commit()
    except BaseException as exc:  # KeyboardInterrupt too: never leave a half-applied host
        completed_count = len(done)
        progress.start(len(done) + len(in_flight), f"{action} failed: undoing")
        done.extend(in_flight)
        rollback_errors = rollback(done, host, journal, progress)
        if not rollback_errors:
            rollback_errors = undone_check()
        result = "rollback-failed" if rollback_errors else "rolled-back"
        unrecorded = journal.try_write(
            "failed", error=str(exc) or type(exc).__name__, steps_done=completed_count
        ) or journal.try_write("end", result=result, errors=rollback_errors)
        if unrecorded is not None and not rollback_errors:
            journal.abandon()
        raise ApplyFailed(exc, rollback_errors, completed_count, action, unrecorded) from exc
    unrecorded = journal.try_write("end", result="applied", steps=len(plan.steps))
    return Executed(len(plan.steps), unrecorded)


def _pause_for_tests(boundary: int) -> None:
    """Test hook: DSRCTL_TEST_PAUSE_AFTER_GROUP=N stops after step group N (-1: before the
    first) so that a test can kill the process at an exact step boundary."""
    wanted = os.environ.get("DSRCTL_TEST_PAUSE_AFTER_GROUP")
    if wanted is None or int(wanted) != boundary:
        return
    sys.stderr.write(f"dsrctl: test pause after step group {boundary}\n")
    sys.stderr.flush()
    time.sleep(120)


def rollback(
    done: list[Step], host: StepHost, journal: Journal, progress: Progress = NO_PROGRESS
) -> list[str]:
    """Undo ``done`` newest first, then record what was undone.

    Nothing is written before or between the undo groups: on a full disk a journal record
    would take the space a file being restored needs, and the records are not needed to
    recover (a run that dies while undoing is undone again from its intent records; every
    inverse is idempotent)."""
    errors: list[str] = []
    inverses = [step.inverse() for step in reversed(done)]
    outcomes: list[tuple[int, list[Step], bool]] = []
    for number, group in enumerate(group_steps(inverses)):
        try:
            _, error = run_group(host, group)
        except Exception as exc:  # keep undoing the rest
            error = exc
        if error is not None:
            errors.append(f"undo of {group[0].resource}: {error}")
        progress.advance(len(group))
        outcomes.append((number, group, error is None))
    for number, group, undone in outcomes:
        if journal.try_write("undo", seq=number, steps=[s.to_record() for s in group]):
            break
        if undone and journal.try_write("undone", seq=number):
            break
    return errors
