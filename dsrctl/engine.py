"""The library behind the commands: load, plan, apply, drift. No typer, no rich.

Every check that can refuse runs before the host is changed: the spec (file and host
facts), privileges, the lock, the preflight of the steps.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dsrctl.errors import (
    REPORTED,
    AbortedByUser,
    ApplyFailed,
    DsrctlError,
    PrivilegeError,
    ProviderError,
    StateError,
    StatePermissionError,
    VerificationError,
    nothing_changed,
)
from dsrctl.model import split_address_id, split_id
from dsrctl.plan import Plan
from dsrctl.planning import PlanResult
from dsrctl.platforms import bind, check_spec, get_provider
from dsrctl.progress import NO_PROGRESS, Progress
from dsrctl.spec import Spec, load_spec
from providers import safefile
from providers.base import Provider
from state.inflight import clear_inflight, mark_inflight
from state.journal import Journal, append_record
from state.lock import ApplyLock
from state.ownership import Ownership
from state.statedir import StateDir

if TYPE_CHECKING:
    from state.inflight import Inflight
    from state.pending import Pending


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
    check_spec(spec, provider)
    state = StateDir(state_dir, safefile)
    state.verify()
    notes = state_notes(state)
    try:
        ownership = Ownership.load(state.ownership_file)
        notes += screen_ownership(ownership, spec)
    except (PrivilegeError, StatePermissionError) as exc:
        # plan and drift stay useful read-only; apply re-reads the records as root.
        ownership = Ownership()
        notes.append(
            f"{exc}: VIPs that dsrctl added and the spec dropped are not shown for removal; "
            "run as root for the complete picture"
        )
    return Context(spec, provider, state, ownership, notes)


def screen_ownership(ownership: Ownership, spec: Spec) -> list[str]:
    """Drop records of addresses dsrctl could never have created (the spec refuses them as
    VIPs): whoever wrote such a record, dsrctl must not delete 127.0.0.1/8 because of it."""
    import ipaddress

    from dsrctl.model import address_id
    from dsrctl.spec import address_problem

    # The spec's own VIPs passed the same checks when it was loaded (and this runs on
    # every command: 10,000 records must not be parsed twice).
    known = {address_id(spec.linux.interface, vip.cidr) for vip in spec.vips}
    known |= {f"route:local:local:{vip.cidr}" for vip in spec.vips if vip.is_range}
    notes = []
    for resource, record in list(ownership.records.items()):
        if not record.created or resource in known:
            continue
        if resource.startswith("route:"):
            problem = _route_record_problem(resource)
            if problem is not None:
                ownership.forget(resource)
                notes.append(
                    f"ignored the ownership record {resource}: {problem}; dsrctl never "
                    "creates such a route and will not delete it (check who wrote the record)"
                )
            continue
        if not resource.startswith("address:"):
            continue
        _, cidr = split_address_id(resource)
        text, _, prefix = cidr.partition("/")
        try:
            address = ipaddress.ip_address(text)
            problem = address_problem(address)
            if problem is None and prefix != str(address.max_prefixlen):
                problem = "dsrctl adds VIPs as /32 or /128 only"
        except ValueError:
            problem = "not an address"
        if problem is not None:
            ownership.forget(resource)
            notes.append(
                f"ignored the ownership record {resource}: {problem}; dsrctl never creates "
                "such an address and will not delete it (check who wrote the record)"
            )
    return notes


def _route_record_problem(resource: str) -> str | None:
    """Why a route record cannot be one of dsrctl's: it creates local routes in table
    local for VIP ranges only (never 127.0.0.0/8, never a host route)."""
    import ipaddress

    from dsrctl.spec import range_problem

    table, _, rest = split_id(resource)[1].partition(":")
    route_type, _, cidr = rest.partition(":")
    if (table, route_type) != ("local", "local"):
        return "dsrctl adds local routes to table local only"
    try:
        network = ipaddress.ip_network(cidr)
    except ValueError:
        return "not a network"
    if network.prefixlen == network.max_prefixlen:
        return "dsrctl adds ranges, never a route to one address"
    return range_problem(network.network_address, network.prefixlen)


def state_notes(state: StateDir) -> list[str]:
    """What every command must say about the state directory: a dead run, a pending apply."""
    from dsrctl.confirm import pending_note
    from dsrctl.recovery import unfinished_note

    return [note for note in (unfinished_note(state), pending_note(state)) if note]


def make_plan(ctx: Context, report_strays: bool = True) -> PlanResult:
    """The plan. ``report_strays``: say which temporary files a killed run left (plan and
    drift do; apply removes them instead, and its verification needs no notes)."""
    result = bind(ctx.provider).plan(ctx.spec, ctx.ownership)
    notes = ctx.notes + (stray_notes(ctx, result) if report_strays else [])
    if notes:
        plan = result.plan
        result.plan = Plan(plan.steps, tuple(notes) + plan.notes, plan.facts)
    return result


@dataclass
class ApplyOutcome:
    plan: Plan
    applied: int
    txn: str = ""
    pending: Pending | None = None  # when --confirm-timeout was given
    notes: list[str] = field(default_factory=list)


def apply(
    ctx: Context,
    confirm: Callable[[Plan], bool],
    command: str = "dsrctl apply",
    saved: dict[str, Any] | None = None,
    saved_path: str = "",
    confirm_timeout: float | None = None,
    progress: Progress = NO_PROGRESS,
    action: str = "apply",
) -> ApplyOutcome:
    """Apply the spec (or a saved plan of it) under the lock; roll back on any failure.
    ``progress`` follows the steps once the operator said yes (dsrctl.progress);
    ``command`` is what the journal records, ``action`` what a refusal names."""
    from dsrctl import recovery
    from dsrctl.confirm import pending_note

    ctx.provider.check_privileges(action)
    ctx.state_dir.ensure()
    with ApplyLock(ctx.state_dir.lock_file, command, safefile) as lock:
        notes = [lock.recovered] if lock.recovered else []
        notes += journal_problems(ctx.state_dir)
        waiting = pending_note(ctx.state_dir)
        if waiting is not None:
            raise DsrctlError(f"{waiting}; no new apply until it is confirmed or rolled back")
        # Re-read the records under the lock: another run may have changed them.
        ctx.ownership = Ownership.load(ctx.state_dir.ownership_file)
        notes += screen_ownership(ctx.ownership, ctx.spec)
        ctx.notes = []
        dead = recovery.unfinished(ctx.state_dir, locked=True)
        if dead is not None:
            dead_txn = recovery.find_transaction(ctx.state_dir, dead.txn)
            if dead_txn is not None:
                recovery.learn_ownership(ctx.ownership, dead_txn)
            notes.append(f"converging over the unfinished {dead.describe()}")
        result = make_plan(ctx, report_strays=False)
        plan = result.plan
        if saved is not None:
            from dsrctl.savedplan import check_saved

            check_saved(saved, ctx.spec.digest, result, saved_path)
        if plan.empty:
            notes += _clean_up_strays(ctx, result)
            _record_ownership(ctx, result)
            if dead is not None:
                # Everything the dead run set out to do is in effect: it is complete, and
                # `dsrctl rollback` can undo it like any apply.
                append_record(ctx.state_dir, dead.txn, "end", result="applied", recovered=True)
                clear_inflight(ctx.state_dir, dead.txn)
            return ApplyOutcome(plan, 0, notes=notes)
        # Before the prompt: what apply would refuse, it refuses before the operator says yes.
        check_preconditions(ctx.provider, plan)
        if saved is None and not confirm(plan):
            raise AbortedByUser("apply cancelled; nothing was changed")
        notes += _clean_up_strays(ctx, result)
        return _run_apply(ctx, result, command, confirm_timeout, dead, notes, progress)


def check_preconditions(provider: Provider, plan: Plan, command: str = "apply") -> None:
    """Raise what apply would refuse before its first change (a missing directory under
    ``linux.persist.root``, a backend requirement): apply calls it before the prompt and
    says "nothing was changed"; plan and validate report it as "apply would refuse"."""
    try:
        provider.preflight(plan.steps)
    except REPORTED as exc:
        if command != "apply":
            text = str(exc).removesuffix("; nothing was changed")
            text = text.removeprefix("apply stopped before changing anything: ")
            exc.args = (f"apply would refuse: {text}",)
            raise
        if "nothing was changed" in str(exc):
            raise
        raise nothing_changed(exc) from None


def privilege_note(provider: Provider) -> str | None:
    """What plan says when its user could not apply (plan itself is read-only)."""
    try:
        provider.check_privileges("apply")
    except PrivilegeError as exc:
        return "as this user apply would refuse: " + str(exc).removesuffix("; nothing was changed")
    return None


def note_privileges(provider: Provider, result: PlanResult) -> None:
    """Add to the plan's notes that its user could not apply it."""
    note = privilege_note(provider)
    if note is not None:
        plan = result.plan
        result.plan = Plan(plan.steps, (*plan.notes, note), plan.facts)


def journal_problems(state: StateDir) -> list[str]:
    """One warning for the lines of the journal that cannot be read (they are skipped)."""
    from state.journal import read_records

    problems = read_records(state.journal_file).problems
    if not problems:
        return []
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return [f"{problems[0]}{more}; history and rollback use the other records"]


def _run_apply(
    ctx: Context,
    result: PlanResult,
    command: str,
    confirm_timeout: float | None,
    dead: Inflight | None,
    notes: list[str],
    progress: Progress = NO_PROGRESS,
) -> ApplyOutcome:
    """Journal, arm the revert, run, commit; the host ends as before or as planned."""
    from dsrctl import recovery

    plan = result.plan
    # Staged before the first change: a disk too full for the records stops the apply
    # here; committing them afterwards is a rename that needs no space.
    after = next_ownership(ctx.ownership, result)
    try:
        staged = after.stage(ctx.state_dir.ownership_file, safefile)
    except REPORTED as exc:
        raise nothing_changed(exc) from None
    journal = Journal(ctx.state_dir.journal_file, safefile)
    try:
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
    except REPORTED as exc:
        journal.close()
        staged.discard()
        raise nothing_changed(exc) from None
    pending: Pending | None = None
    try:
        mark_inflight(ctx.state_dir, txn, "apply", command)
        if confirm_timeout is not None:
            # Armed before the first change: an apply killed at any moment after it
            # (with its SSH session) is still reverted at the deadline.
            pending = _arm_revert(ctx, journal, txn, confirm_timeout)
    except BaseException as exc:
        journal.abandon()
        journal.close()
        staged.discard()
        _forget_run(ctx, txn)
        if isinstance(exc, REPORTED):
            raise nothing_changed(exc) from None
        raise
    try:
        from dsrctl.executor import execute, terminate_as_interrupt

        terminate_as_interrupt()
        executed = execute(
            plan,
            ctx.provider,
            journal,
            verify=lambda: _verify(ctx),
            undone_check=lambda: _differences_from(ctx, result),
            commit=staged.commit,
            progress=progress,
        )
    except BaseException as exc:
        staged.discard()
        unfinished = isinstance(exc, ApplyFailed) and bool(exc.rollback_errors and exc.unrecorded)
        if not unfinished:
            _forget_run(
                ctx, txn, keep_pending=isinstance(exc, ApplyFailed) and bool(exc.rollback_errors)
            )
        _log(f"apply {txn} failed: spec={ctx.spec.path} {exc}".replace("\n", "; "), "err")
        raise
    finally:
        journal.close()
    ctx.ownership = after
    _log(
        f"apply {txn}: {executed.steps} change(s) applied spec={os.path.abspath(ctx.spec.path)} "
        f"sha256={ctx.spec.digest[:12]} user={recovery.current_user()}"
    )
    if dead is not None:
        try:
            _supersede(ctx, txn, dead.txn)
        except REPORTED as exc:
            notes.append(f"could not record that this apply completed {dead.txn}: {exc}")
    outcome = ApplyOutcome(plan, executed.steps, txn=txn, notes=notes, pending=pending)
    if pending is not None:
        outcome.pending = _extend_revert(ctx, pending, confirm_timeout or 0.0, notes)
    if executed.unrecorded is not None:
        # The host and the ownership records are as planned; the journal lacks the end.
        # The in-flight marker stays, so the next apply seals the run as applied.
        notes.append(
            f"the host matches the spec, but the journal could not record the end of apply "
            f"{txn} ({executed.unrecorded}); free space in {ctx.state_dir.path} and run "
            "`dsrctl apply` again to seal it"
        )
    else:
        clear_inflight(ctx.state_dir, txn)
    return outcome


def _arm_revert(ctx: Context, journal: Journal, txn: str, seconds: float) -> Pending:
    from dsrctl.confirm import start_watchdog

    deadline = time.time() + seconds
    pending = start_watchdog(ctx.state_dir, txn, deadline, ctx.provider.platform)
    journal.write("pending", deadline=deadline)
    return pending


def _extend_revert(ctx: Context, pending: Pending, seconds: float, notes: list[str]) -> Pending:
    """The operator's window starts when the apply has finished: move the deadline."""
    import dataclasses

    from state.pending import write_pending

    extended = dataclasses.replace(pending, deadline=time.time() + seconds)
    try:
        write_pending(ctx.state_dir, extended)
        append_record(ctx.state_dir, pending.txn, "pending", deadline=extended.deadline)
    except (OSError, DsrctlError, ProviderError, StateError) as exc:
        notes.append(f"could not move the confirmation deadline ({exc}); it stays at the first")
        return pending
    return extended


def _forget_run(ctx: Context, txn: str, keep_pending: bool = False) -> None:
    """Remove the markers of a run that ended (best effort: unlinking needs no space)."""
    import contextlib

    from state.pending import clear_pending

    with contextlib.suppress(OSError, DsrctlError, ProviderError, StateError):
        clear_inflight(ctx.state_dir, txn)
    if not keep_pending:
        with contextlib.suppress(OSError, DsrctlError, ProviderError, StateError):
            clear_pending(ctx.state_dir, txn)


def _clean_up_strays(ctx: Context, result: PlanResult) -> list[str]:
    """Remove temporary files a killed run left in the directories dsrctl writes."""
    from providers.safefile import remove_stray_temp_files

    removed: list[str] = []
    for directory in stray_directories(ctx, result):
        try:
            removed += remove_stray_temp_files(directory)
        except OSError as exc:
            return [f"cannot remove stray temporary files in {directory}: {exc.strerror}"]
    if not removed:
        return []
    return [
        f"removed {len(removed)} stray temporary file(s) of a killed run: " + ", ".join(removed)
    ]


def stray_directories(ctx: Context, result: PlanResult) -> list[str]:
    """The state directory and every directory dsrctl writes managed files into."""
    directories = {ctx.state_dir.path}
    for resource in (*result.spec_resources, *ctx.ownership.records):
        kind, name = split_id(resource)
        if kind in ("file", "symlink"):
            directories.add(os.path.dirname(name))
    return sorted(directories)


def stray_notes(ctx: Context, result: PlanResult) -> list[str]:
    """What plan and drift say about temporary files a killed run left behind."""
    from providers.safefile import stray_temp_files

    found = [path for d in stray_directories(ctx, result) for path in stray_temp_files(d)]
    if not found:
        return []
    return [
        f"{len(found)} stray temporary file(s) of a killed run (the next apply removes them): "
        + ", ".join(found)
    ]


def adopt_spec(text: str, spec_path: str, state_dir: str, provider: Provider, command: str) -> int:
    """Record every resource of an imported spec that the host already matches as managed
    but not created by dsrctl. Returns how many were recorded."""
    import tomllib

    from dsrctl.spec import parse_spec

    spec = parse_spec(tomllib.loads(text), spec_path)
    check_spec(spec, provider)
    # Adopting writes only the ownership records: what it needs is the state directory
    # (a non-root user gets the --state-dir line), not CAP_NET_ADMIN.
    state = StateDir(state_dir, safefile)
    state.ensure()
    with ApplyLock(state.lock_file, command, safefile):
        ownership = Ownership.load(state.ownership_file)
        ctx = Context(spec, provider, state, ownership)
        result = make_plan(ctx, report_strays=False)
        changing = {step.resource for step in result.plan.steps}
        count = 0
        for resource in sorted(result.spec_resources - changing):
            if resource in result.have_rich and ownership.get(resource) is None:
                ownership.remember(
                    resource, created=False, original=_record_value(result.have_rich[resource])
                )
                count += 1
        ownership.save(state.ownership_file, safefile)
        return count


def _log(message: str, severity: str = "notice") -> None:
    from dsrctl.monitoring import log

    log(message, severity)


def _supersede(ctx: Context, by: str, dead: str) -> None:
    append_record(ctx.state_dir, by, "superseded", target=dead)

    clear_inflight(ctx.state_dir, dead)


def _verify(ctx: Context) -> None:
    left = make_plan(ctx, report_strays=False).plan
    if not left.empty:
        names = ", ".join(f"{s.resource} ({s.show(s.before)!r})" for s in left.steps[:5])
        raise VerificationError(f"after apply the host still differs from the spec: {names}")


def _differences_from(ctx: Context, before: PlanResult) -> list[str]:
    """What differs, after a rollback, from the host as observed before apply."""
    then, now = before.have_plain, make_plan(ctx, report_strays=False).have_plain
    return [
        f"{resource} is {now.get(resource)!r}, was {then.get(resource)!r}"
        for resource in sorted(set(then) | set(now))
        if then.get(resource) != now.get(resource)
    ]


def _record_ownership(ctx: Context, result: PlanResult) -> None:
    ctx.ownership = next_ownership(ctx.ownership, result)
    ctx.ownership.save(ctx.state_dir.ownership_file, safefile)


def next_ownership(ownership: Ownership, result: PlanResult) -> Ownership:
    """The records after a successful apply: what dsrctl took charge of is remembered,
    what it let go is forgotten."""
    changed = {step.resource: step.before for step in result.plan.steps}
    records = Ownership(dict(ownership.records))
    for resource in sorted(result.spec_resources):
        before = changed[resource] if resource in changed else result.have_rich.get(resource)
        records.remember(resource, created=before is None, original=_record_value(before))
    for resource in list(records.records):
        if resource not in result.spec_resources:
            records.forget(resource)
    return records


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
