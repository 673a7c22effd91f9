"""`dsrctl rollback`: undo earlier applies from the journal.

Every step an apply set out to run is in the journal with the value observed before it.
Rolling back applies the inverse of each, newest first, which restores exactly those
values; every inverse is idempotent, so an apply that died halfway (its last step maybe
half done) is undone the same way. The rollback is itself a journaled, locked
transaction, verified by re-reading every resource it touched, and it puts the
ownership records back as they were before the first apply it undoes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dsrctl.errors import (
    REPORTED,
    AbortedByUser,
    DsrctlError,
    StateError,
    VerificationError,
    nothing_changed,
)
from dsrctl.kinds.registry import step_from_record
from dsrctl.plan import Plan
from dsrctl.progress import NO_PROGRESS, Progress
from dsrctl.steps import Step
from providers import safefile
from providers.base import Provider
from state.inflight import clear_inflight, mark_inflight, read_inflight
from state.journal import Journal, Transaction, transactions
from state.lock import ApplyLock
from state.ownership import Ownership
from state.statedir import StateDir

REVERTABLE_RESULTS = (None, "applied", "rollback-failed")


@dataclass
class RollbackPlan:
    targets: list[Transaction]  # newest first
    plan: Plan

    @property
    def empty(self) -> bool:
        return self.plan.empty


def revertable(txn: Transaction, running: str | None) -> bool:
    return (
        txn.kind == "apply"
        and txn.reverted_by is None
        and txn.superseded_by is None
        and txn.result in REVERTABLE_RESULTS
        and txn.txn != running
    )


def plan_rollback(state: StateDir, to: str | None = None, locked: bool = False) -> RollbackPlan:
    """Which applies to undo, and the inverse steps, newest first.

    An apply that died and was later converged over ("superseded") is undone together with
    the apply that converged over it: its changes are in effect as part of that one.
    """
    state.verify()  # a --state-dir that is a file is said as such, before any file in it is read
    inflight = read_inflight(state)
    alive = inflight is not None and not locked and inflight.alive()
    running = inflight.txn if inflight is not None and alive else None
    history = transactions(state.journal_file)
    by_id = {t.txn: t for t in history}
    if to is not None and to in by_id and by_id[to].superseded_by in by_id:
        to = by_id[to].superseded_by
    candidates = [t for t in reversed(history) if revertable(t, running)]
    if to is None:
        if not candidates:
            raise DsrctlError(
                "nothing to roll back: the journal has no apply that is still in effect"
            )
        targets = candidates[:1]
    else:
        ids = [t.txn for t in candidates]
        if to not in ids:
            known = next((t for t in history if t.txn == to), None)
            why = "no such transaction" if known is None else _why_not(known)
            raise DsrctlError(f"cannot roll back to {to}: {why} (see `dsrctl history`)")
        targets = candidates[: ids.index(to) + 1]
    expanded: list[Transaction] = []
    for txn in targets:
        expanded.append(txn)
        dead = [t for t in history if t.superseded_by == txn.txn and t.reverted_by is None]
        expanded.extend(sorted(dead, key=lambda t: t.started, reverse=True))
    targets = expanded
    steps: list[Step] = []
    for txn in targets:
        forward = _decode_steps(state, txn)
        steps.extend(step.inverse() for step in reversed(forward))
    notes = tuple(f"undo {_describe(txn)}" for txn in targets)
    notes += tuple(_drift_repairs(state, history, targets))
    return RollbackPlan(targets=targets, plan=Plan(steps=tuple(steps), notes=notes))


def _drift_repairs(
    state: StateDir, history: list[Transaction], targets: list[Transaction]
) -> list[str]:
    """A warning for each target apply that repaired drift: a step whose resource held,
    before it, something else than what dsrctl had last set (by the journal) — someone had
    changed it by hand, and the apply put dsrctl's value back. Undoing that apply puts the
    hand-made change back too."""
    from dsrctl.render import describe_resource, show_value

    warnings = []
    for target in targets:
        last: dict[str, Any] = {}  # resource -> what dsrctl last set it to before ``target``
        for txn in history:
            if txn.txn == target.txn:
                break
            if txn.result != "applied":  # failed runs undid their steps
                continue
            try:
                for step in _decode_steps(state, txn):
                    last[step.resource] = step.after
            except StateError:
                continue  # an unreadable older run only weakens this warning
        repaired = [
            step
            for step in _decode_steps(state, target)
            if step.resource in last and last[step.resource] != step.before
        ]
        if repaired:
            what = "; ".join(
                f"{describe_resource(step.resource)} was {show_value(step.before)}, not "
                f"{show_value(last[step.resource])} as dsrctl had set it"
                for step in repaired[:5]
            )
            more = f" (and {len(repaired) - 5} more)" if len(repaired) > 5 else ""
            warnings.append(
                f"apply {target.txn} repaired drift: {what}{more}; rolling it back brings "
                "that drift back"
            )
    return warnings


@dataclass(frozen=True)
class StepNow:
    """What the host holds now for the resource of one rollback step, and what that means:
    ``pending`` (it holds what the apply set), ``done`` (it already holds what the
    rollback sets) or ``differs`` (neither: changed since, by hand or by something else)."""

    now: Any
    status: str


def preview(planned: RollbackPlan, provider: Provider) -> list[StepNow]:
    """Each step of ``planned`` against the host as it is now (read with provider.observe,
    as the rollback's verification reads it). A resource that several steps touch is
    compared, for the later steps, with what the earlier ones set."""
    steps = planned.plan.steps
    current = dict(provider.observe(sorted({step.resource for step in steps})))
    result = []
    for step in steps:
        now = current.get(step.resource)
        if now == step.after:
            status = "done"
        elif now == step.before:
            status = "pending"
        else:
            status = "differs"
        result.append(StepNow(now, status))
        current[step.resource] = step.after
    return result


def _decode_steps(state: StateDir, txn: Transaction) -> list[Step]:
    """The steps of ``txn`` as recorded; a record this dsrctl cannot rebuild stops the
    rollback of that transaction (undoing part of it would leave a mix)."""
    steps: list[Step] = []
    for line, group in zip(txn.lines, txn.intents, strict=True):
        for record in group:
            try:
                steps.append(step_from_record(record))
            except (ValueError, KeyError, TypeError, AttributeError, StopIteration) as exc:
                raise StateError(
                    f"{state.journal_file} line {line}: a step of {txn.txn} cannot be read "
                    f"({exc}): that apply cannot be rolled back automatically; see "
                    "`dsrctl history` and undo it by hand"
                ) from None
    return steps


def _why_not(txn: Transaction) -> str:
    if txn.kind != "apply":
        return f"it is a {txn.kind}, not an apply"
    if txn.reverted_by:
        return f"it was already rolled back by {txn.reverted_by}"
    if txn.result is None:
        return "it is still running"
    if txn.result == "rolled-back":
        return "it failed and was rolled back at the time"
    return f"its result is {txn.result}"


def _describe(txn: Transaction) -> str:
    result = txn.result or "unfinished"
    return f"{txn.txn} ({result}, {len(txn.steps())} step(s), spec {txn.begin.get('spec')})"


def run_rollback(
    state: StateDir,
    provider: Provider,
    to: str | None,
    confirm: Callable[[RollbackPlan], bool],
    command: str,
    progress: Progress = NO_PROGRESS,
) -> RollbackPlan:
    provider.check_privileges("rollback")
    state.ensure()
    with ApplyLock(state.lock_file, command, safefile) as lock:
        planned = plan_rollback(state, to, locked=True)
        if lock.recovered:
            planned.plan = Plan(planned.plan.steps, (lock.recovered, *planned.plan.notes))
        if not confirm(planned):
            raise AbortedByUser("rollback cancelled; nothing was changed")
        execute_rollback(state, provider, planned, command, progress)
        return planned


def execute_rollback(
    state: StateDir,
    provider: Provider,
    planned: RollbackPlan,
    command: str,
    progress: Progress = NO_PROGRESS,
) -> None:
    from dsrctl.executor import execute, terminate_as_interrupt
    from dsrctl.monitoring import log
    from dsrctl.recovery import current_user
    from state.pending import clear_pending, read_pending

    steps = list(planned.plan.steps)
    targets_wanted = _final_values(steps)
    provider.observe(sorted(targets_wanted))  # fails early if a resource cannot be read
    oldest = planned.targets[-1]
    before = oldest.begin.get("ownership_before")
    # Staged before the first change (see engine._run_apply): a full disk stops the
    # rollback before it touches the host; the commit is a rename.
    try:
        staged = (
            Ownership.from_json(before, state.ownership_file).stage(state.ownership_file, safefile)
            if before is not None
            else None
        )
    except REPORTED as exc:
        raise nothing_changed(exc) from None
    journal = Journal(state.journal_file, safefile)
    try:
        txn = journal.begin(
            kind="rollback",
            reverts=[t.txn for t in planned.targets],
            user=current_user(),
            command=command,
            pid=os.getpid(),
            steps=len(steps),
        )
        mark_inflight(state, txn, "rollback", command)
    except BaseException as exc:
        journal.abandon()
        journal.close()
        if staged is not None:
            staged.discard()
        if isinstance(exc, REPORTED):
            raise nothing_changed(exc) from None
        raise

    def commit() -> None:
        # The end record that follows is the commit point in the journal: a rollback that
        # ended well reverted the applies its begin record names.
        if staged is not None:
            staged.commit()

    try:
        terminate_as_interrupt()
        executed = execute(
            planned.plan,
            provider,
            journal,
            verify=lambda: _verify(provider, targets_wanted),
            undone_check=lambda: [],
            action="rollback",
            commit=commit,
            progress=progress,
        )
    except BaseException as exc:
        # It failed and undid itself (or says what it could not undo): not unfinished.
        if staged is not None:
            staged.discard()
        clear_inflight(state, txn)
        log(f"rollback {txn} failed: {exc}".replace("\n", "; "), "err")
        raise
    finally:
        journal.close()
    reverted = ", ".join(t.txn for t in planned.targets)
    log(
        f"rollback {txn}: reverted {reverted} ({len(steps)} step(s)) user={current_user()}",
        "notice",
    )
    pending = read_pending(state)
    if pending is not None and pending.txn in {t.txn for t in planned.targets}:
        clear_pending(state, pending.txn)
    if executed.unrecorded is None:
        # mark_inflight() replaced the marker of any apply that died: clearing ours ends it.
        clear_inflight(state, txn)


def _final_values(steps: list[Step]) -> dict[str, Any]:
    """Resource -> the value it must have once every step ran (the last step wins)."""
    wanted: dict[str, Any] = {}
    for step in steps:
        wanted[step.resource] = step.after
    return wanted


def _verify(provider: Provider, wanted: dict[str, Any]) -> None:
    observed = provider.observe(sorted(wanted))
    wrong = [r for r, value in wanted.items() if observed.get(r) != value]
    if wrong:
        raise VerificationError(
            "after rollback these resources do not hold their earlier values: "
            + ", ".join(wrong[:5])
        )
