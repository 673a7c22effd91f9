"""Apply a plan: journal each step before it runs, run it, and undo on failure.

Completed steps are undone in reverse order from the values observed before them. A
rollback that fails is reported next to the original error, never instead of it.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from dsrctl.errors import ApplyFailed
from dsrctl.plan import Plan
from dsrctl.steps import Step
from state.journal import Journal


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


def run_group(host: Any, group: list[Step]) -> tuple[list[Step], BaseException | None]:
    """Run one group; return the steps that completed and the first error, if any."""
    if len(group) == 1 and not group[0].batchable:
        group[0].apply(host)
        return group, None
    errors: list[BaseException | None] = host.run_batch(group)
    completed = [step for step, error in zip(group, errors, strict=True) if error is None]
    first = next((error for error in errors if error is not None), None)
    return completed, first


def execute(
    plan: Plan,
    host: Any,
    journal: Journal,
    verify: Callable[[], None],
    undone_check: Callable[[], list[str]],
    action: str = "apply",
) -> int:
    """Run every step, then ``verify()``. On any failure, roll back and raise ApplyFailed.

    ``undone_check`` re-reads the host after a rollback and names what still differs from
    the state observed before apply.
    """
    done: list[Step] = []
    # A group whose call did not return (a signal, an unexpected error) may have taken
    # effect in part: it is undone as a whole. Every inverse is idempotent.
    in_flight: list[Step] = []
    try:
        _pause_for_tests(-1)
        for number, group in enumerate(group_steps(plan.steps)):
            journal.write("intent", seq=number, steps=[step.to_record() for step in group])
            in_flight = group
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
            _pause_for_tests(number)
        verify()
    except BaseException as exc:  # KeyboardInterrupt too: never leave a half-applied host
        journal.write("failed", error=str(exc) or type(exc).__name__, steps_done=len(done))
        completed_count = len(done)
        done.extend(in_flight)
        rollback_errors = rollback(done, host, journal)
        if not rollback_errors:
            rollback_errors = undone_check()
        result = "rollback-failed" if rollback_errors else "rolled-back"
        journal.write("end", result=result, errors=rollback_errors)
        raise ApplyFailed(exc, rollback_errors, completed_count, action) from exc
    journal.write("end", result="applied", steps=len(plan.steps))
    return len(plan.steps)


def _pause_for_tests(boundary: int) -> None:
    """Test hook: DSRCTL_TEST_PAUSE_AFTER_GROUP=N stops after step group N (-1: before the
    first) so that a test can kill the process at an exact step boundary."""
    wanted = os.environ.get("DSRCTL_TEST_PAUSE_AFTER_GROUP")
    if wanted is None or int(wanted) != boundary:
        return
    sys.stderr.write(f"dsrctl: test pause after step group {boundary}\n")
    sys.stderr.flush()
    time.sleep(120)


def rollback(done: list[Step], host: Any, journal: Journal) -> list[str]:
    errors: list[str] = []
    inverses = [step.inverse() for step in reversed(done)]
    for number, group in enumerate(group_steps(inverses)):
        journal.write("undo", seq=number, steps=[step.to_record() for step in group])
        try:
            _, error = run_group(host, group)
        except Exception as exc:  # keep undoing the rest
            error = exc
        if error is not None:
            errors.append(f"undo of {group[0].resource}: {error}")
        else:
            journal.write("undone", seq=number)
    return errors
