"""The library behind the commands: load, plan, apply, drift. No typer, no rich.

Every check that can refuse runs before the host is changed: the spec (file and host
facts), privileges, the lock, the preflight of the steps.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dsrctl.errors import AbortedByUser, DsrctlError, PrivilegeError, VerificationError
from dsrctl.model import split_id
from dsrctl.plan import Plan
from dsrctl.planning import PlanResult, planner_for
from dsrctl.spec import Spec, load_spec
from providers.base import Provider, get_provider
from state.journal import Journal, append_record
from state.lock import ApplyLock
from state.ownership import Ownership
from state.statedir import StateDir


@dataclass
class Context:
    spec: Spec
    provider: Provider
    state_dir: StateDir
    ownership: Ownership
    notes: list[str] = field(default_factory=list)


def open_context(spec_path: str, state_dir: str, platform: str | None = None) -> Context:
    spec = load_spec(spec_path)
    provider = get_provider(platform)
    provider.check_spec(spec)
    state = StateDir(state_dir)
    notes = state_notes(state)
    try:
        ownership = Ownership.load(state.ownership_file)
    except PrivilegeError as exc:
        # plan and drift stay useful read-only; apply re-reads the records as root.
        ownership = Ownership()
        notes.append(
            f"{exc}: VIPs that dsrctl added and the spec dropped are not shown for removal; "
            "run as root for the complete picture"
        )
    return Context(spec, provider, state, ownership, notes)


def state_notes(state: StateDir) -> list[str]:
    """What every command must say about the state directory: a dead run, a pending apply."""
    from dsrctl.confirm import pending_note
    from dsrctl.recovery import unfinished_note

    return [note for note in (unfinished_note(state), pending_note(state)) if note]


def make_plan(ctx: Context) -> PlanResult:
    result = planner_for(ctx.provider.platform)(ctx.spec, ctx.provider, ctx.ownership)
    if ctx.notes:
        plan = result.plan
        result.plan = Plan(plan.steps, tuple(ctx.notes) + plan.notes, plan.facts)
    return result


@dataclass
class ApplyOutcome:
    plan: Plan
    applied: int
    txn: str = ""
    pending: Any = None  # confirm.Pending when --confirm-timeout was given
    notes: list[str] = field(default_factory=list)


def apply(
    ctx: Context,
    confirm: Callable[[Plan], bool],
    command: str = "dsrctl apply",
    saved: dict[str, Any] | None = None,
    saved_path: str = "",
    confirm_timeout: float | None = None,
) -> ApplyOutcome:
    """Apply the spec (or a saved plan of it) under the lock; roll back on any failure."""
    from dsrctl import recovery
    from dsrctl.confirm import pending_note

    ctx.provider.check_privileges()
    ctx.state_dir.ensure()
    with ApplyLock(ctx.state_dir.lock_file, command) as lock:
        notes = [lock.recovered] if lock.recovered else []
        waiting = pending_note(ctx.state_dir)
        if waiting is not None:
            raise DsrctlError(f"{waiting}; no new apply until it is confirmed or rolled back")
        # Re-read the records under the lock: another run may have changed them.
        ctx.ownership = Ownership.load(ctx.state_dir.ownership_file)
        ctx.notes = []
        dead = recovery.unfinished(ctx.state_dir, locked=True)
        if dead is not None:
            dead_txn = recovery.find_transaction(ctx.state_dir, dead.txn)
            if dead_txn is not None:
                recovery.learn_ownership(ctx.ownership, dead_txn)
            notes.append(f"converging over the unfinished {dead.describe()}")
        result = make_plan(ctx)
        plan = result.plan
        if saved is not None:
            from dsrctl.savedplan import check_saved

            check_saved(saved, ctx.spec.digest, result, saved_path)
        if plan.empty:
            _record_ownership(ctx, result)
            if dead is not None:
                # Everything the dead run set out to do is in effect: it is complete, and
                # `dsrctl rollback` can undo it like any apply.
                append_record(
                    ctx.state_dir.journal_file, dead.txn, "end", result="applied", recovered=True
                )
                recovery.clear_inflight(ctx.state_dir, dead.txn)
            return ApplyOutcome(plan, 0, notes=notes)
        if saved is None and not confirm(plan):
            raise AbortedByUser("apply cancelled; nothing was changed")
        ctx.provider.preflight(plan.steps)
        journal = Journal(ctx.state_dir.journal_file)
        txn = journal.begin(
            kind="apply",
            spec=os.path.abspath(ctx.spec.path),
            spec_sha256=ctx.spec.digest,
            user=recovery.current_user(),
            command=command,
            pid=os.getpid(),
            steps=len(plan.steps),
            ownership_before=ctx.ownership.to_json(),
        )
        recovery.mark_inflight(ctx.state_dir, txn, "apply", command)
        try:
            from dsrctl.executor import execute, terminate_as_interrupt

            terminate_as_interrupt()
            applied = execute(
                plan,
                ctx.provider,
                journal,
                verify=lambda: _verify(ctx),
                undone_check=lambda: _differences_from(ctx, result),
            )
        except BaseException as exc:
            recovery.clear_inflight(ctx.state_dir, txn)
            _log(f"apply {txn} failed: spec={ctx.spec.path} {exc}".replace("\n", "; "), "err")
            raise
        finally:
            journal.close()
        _log(
            f"apply {txn}: {applied} change(s) applied spec={os.path.abspath(ctx.spec.path)} "
            f"sha256={ctx.spec.digest[:12]} user={recovery.current_user()}"
        )
        _record_ownership(ctx, result)
        if dead is not None:
            _supersede(ctx, txn, dead.txn)
        outcome = ApplyOutcome(plan, applied, txn=txn, notes=notes)
        if confirm_timeout is not None:
            from dsrctl.confirm import start_watchdog

            deadline = time.time() + confirm_timeout
            outcome.pending = start_watchdog(ctx.state_dir, txn, deadline, ctx.provider.platform)
            append_record(ctx.state_dir.journal_file, txn, "pending", deadline=deadline)
        recovery.clear_inflight(ctx.state_dir, txn)
        return outcome


def adopt_spec(text: str, spec_path: str, state_dir: str, provider: Provider, command: str) -> int:
    """Record every resource of an imported spec that the host already matches as managed
    but not created by dsrctl. Returns how many were recorded."""
    import tomllib

    from dsrctl.spec import parse_spec

    spec = parse_spec(tomllib.loads(text), spec_path)
    provider.check_spec(spec)
    provider.check_privileges()
    state = StateDir(state_dir)
    state.ensure()
    with ApplyLock(state.lock_file, command):
        ownership = Ownership.load(state.ownership_file)
        ctx = Context(spec, provider, state, ownership)
        result = make_plan(ctx)
        changing = {step.resource for step in result.plan.steps}
        count = 0
        for resource in sorted(result.spec_resources - changing):
            if resource in result.have_rich and ownership.get(resource) is None:
                ownership.remember(
                    resource, created=False, original=_record_value(result.have_rich[resource])
                )
                count += 1
        ownership.save(state.ownership_file)
        return count


def _log(message: str, severity: str = "notice") -> None:
    from dsrctl.monitoring import log

    log(message, severity)


def _supersede(ctx: Context, by: str, dead: str) -> None:
    append_record(ctx.state_dir.journal_file, by, "superseded", target=dead)
    from dsrctl.recovery import clear_inflight

    clear_inflight(ctx.state_dir, dead)


def _verify(ctx: Context) -> None:
    left = make_plan(ctx).plan
    if not left.empty:
        names = ", ".join(f"{s.resource} ({s.show(s.before)!r})" for s in left.steps[:5])
        raise VerificationError(f"after apply the host still differs from the spec: {names}")


def _differences_from(ctx: Context, before: PlanResult) -> list[str]:
    """What differs, after a rollback, from the host as observed before apply."""
    then, now = before.have_plain, make_plan(ctx).have_plain
    return [
        f"{resource} is {now.get(resource)!r}, was {then.get(resource)!r}"
        for resource in sorted(set(then) | set(now))
        if then.get(resource) != now.get(resource)
    ]


def _record_ownership(ctx: Context, result: PlanResult) -> None:
    """After a successful apply: remember what dsrctl took charge of, forget what it let go."""
    changed = {step.resource: step.before for step in result.plan.steps}
    records = ctx.ownership
    for resource in sorted(result.spec_resources):
        before = changed[resource] if resource in changed else result.have_rich.get(resource)
        records.remember(resource, created=before is None, original=_record_value(before))
    for resource in list(records.records):
        if resource not in result.spec_resources:
            records.forget(resource)
    records.save(ctx.state_dir.ownership_file)


def _record_value(value: Any) -> Any:
    if value is None:
        return None
    to_record = getattr(value, "to_record", None)
    return to_record() if callable(to_record) else value


def drift_items(plan: Plan) -> list[dict[str, Any]]:
    """Each drifted resource with what the spec expects and what the host has."""
    items = []
    for step in plan.steps:
        kind, name = split_id(step.resource)
        items.append(
            {
                "resource": step.resource,
                "kind": kind,
                "name": name,
                "expected": step.show(step.after),
                "actual": step.show(step.before),
                "action": step.action,
            }
        )
    return items
