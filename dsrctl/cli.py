"""The command line. Thin: parse options, call dsrctl.engine, render, map errors to exit codes.

Exit codes (docs/commands.md): 0 success / in sync / no changes; 1 error (nothing changed,
or a failed apply that was rolled back); 2 changes pending (plan --detailed-exitcode) or
drift found (drift).

Modules that only some commands need are imported inside those commands.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dsrctl.cli_app import (
    DEFAULT_SPEC,
    JsonOpt,
    SpecArg,
    app,
    ask_yes,
    one_line,
    print_json,
    root_options,
    run_command,
)
from dsrctl.errors import REPORTED, DsrctlError, ProviderError, StateError
from state.statedir import DEFAULT_STATE_DIR

if TYPE_CHECKING:
    from dsrctl.spec import Vip

EXIT_CHANGES = 2
# --confirm-timeout: at least a second, at most a day (a change window, not a lease).
CONFIRM_TIMEOUT_RANGE = (1.0, 86400.0)


def _trusted_spec(path: str, action: str | None, role: str = "spec") -> list[str]:
    """The trust check (dsrctl.trust) for a spec root acts on: ``action`` ("apply", ...)
    refuses an untrusted file; None returns the finding as notes for read-only commands.
    A FIFO, directory or device is refused either way, before anything opens it."""
    from dsrctl import trust

    trust.require_regular(path, f"{role} file")
    if action is not None:
        trust.refuse_untrusted(path, role, action)
        return []
    return trust.untrusted_notes(path, role, "apply")


def _check_out(out: str, what: str, spec: str | None = None) -> None:
    """Refuse an output file that cannot be written, before anything is read. dsrctl
    replaces the file by renaming a new one over it: over /dev/null or a FIFO that would
    put a regular file in its place, so only a regular file (or a new name) is accepted."""
    from dsrctl.trust import kind_of

    if any(ord(char) < 32 or ord(char) == 127 for char in out):
        raise DsrctlError(f"cannot write {what} to {out!r}: the name has control characters")
    directory = os.path.dirname(os.path.abspath(out))
    try:
        existing = os.stat(out)
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise DsrctlError(f"cannot write {what} to {out}: {exc.strerror}") from None
    if existing is not None and kind_of(existing) is not None:
        raise DsrctlError(
            f"cannot write {what} to {out}: it is {kind_of(existing)}, not a regular file"
        )
    if not os.path.isdir(directory):
        raise DsrctlError(f"cannot write {what} to {out}: directory {directory} does not exist")
    same = existing is not None and spec is not None and os.path.exists(spec)
    if same and spec is not None and os.path.samefile(out, spec):
        raise DsrctlError(f"{out} is the spec itself; write {what} to another file")


@app.command(short_help="Show what apply would change, without changing anything.")
def plan(
    ctx: typer.Context,
    spec: SpecArg = DEFAULT_SPEC,
    as_json: JsonOpt = False,
    detailed_exitcode: Annotated[
        bool,
        typer.Option("--detailed-exitcode", help="Exit 0 = no changes, 2 = changes, 1 = error."),
    ] = False,
    out: Annotated[
        str | None,
        typer.Option(
            "--out",
            metavar="FILE",
            help="Save the plan (mode 0600) for `dsrctl apply FILE` later.",
        ),
    ] = None,
    from_capture: Annotated[
        str | None,
        typer.Option(
            "--from-capture",
            metavar="FILE",
            help="Plan against a `dsrctl capture` file of a Windows host instead of this host.",
        ),
    ] = None,
) -> None:
    """Show what apply would change, without changing anything."""

    def body() -> int:
        from dsrctl import engine
        from dsrctl.render import Output, render_plan

        if out is not None:
            _check_out(out, "the plan", spec)
        notes = _trusted_spec(spec, None)
        if from_capture is not None:
            from dsrctl.capture import open_capture

            if out is not None:
                raise DsrctlError("--out and --from-capture: save the plan on the server itself")
            context = open_capture(from_capture, spec, root_options(ctx).state_dir)
        else:
            context = engine.open_context(
                spec, root_options(ctx).state_dir, root_options(ctx).platform
            )
        context.notes.extend(notes)
        result = engine.make_plan(context)
        refused: Exception | None = None
        if from_capture is None:
            # What apply would refuse before its first change fails the plan as well
            # (after showing it: the plan says what apply would do).
            try:
                engine.check_preconditions(context.provider, result.plan, "plan")
            except REPORTED as exc:
                refused = exc
            engine.note_privileges(context.provider, result)
        if out is not None and refused is None:
            from dsrctl.savedplan import save_plan

            save_plan(out, spec, context.spec.digest, context.provider.platform, result)
        if as_json:
            print_json(result.plan.to_json(context.spec.path))
        else:
            render_plan(Output(), result.plan, context.spec.path)
            if out is not None and refused is None:
                Output().line(
                    f"Saved this plan to {out}; apply exactly it with: dsrctl apply {out}"
                )
        if refused is not None:
            raise refused
        return EXIT_CHANGES if detailed_exitcode and not result.plan.empty else 0

    raise typer.Exit(run_command(ctx, body))


@app.command(short_help="Change the host to match the spec or a saved plan.")
def apply(
    ctx: typer.Context,
    spec: SpecArg = DEFAULT_SPEC,
    auto_approve: Annotated[
        bool, typer.Option("--auto-approve", help="Apply without asking (for unattended runs).")
    ] = False,
    confirm_timeout: Annotated[
        float | None,
        typer.Option(
            "--confirm-timeout",
            metavar="SECONDS",
            help="Revert automatically after SECONDS (1 to 86400) unless `dsrctl confirm` "
            "runs first.",
        ),
    ] = None,
) -> None:
    """Change the host to match the spec (or apply a saved plan), verify, roll back on failure.

    SPEC may be a plan saved with `dsrctl plan --out FILE`: it is applied without asking,
    and refused if the spec or the host changed since it was saved.
    """

    def body() -> int:
        from dsrctl import engine
        from dsrctl.plan import Plan
        from dsrctl.progress import for_terminal
        from dsrctl.render import Output, render_plan
        from dsrctl.savedplan import load_saved

        out = Output()
        options = root_options(ctx)
        if confirm_timeout is not None:
            _check_confirm_timeout(confirm_timeout)
        from dsrctl.trust import require_regular

        require_regular(spec, "spec file or saved plan")
        saved = load_saved(spec)
        if saved is None:
            _trusted_spec(spec, "apply")
        else:
            # The saved plan names the spec: who can edit the plan chooses the spec.
            _trusted_spec(spec, "apply", "saved plan")
            _trusted_spec(str(saved["spec"]), "apply")
        spec_path = spec if saved is None else str(saved["spec"])
        platform = options.platform if saved is None else str(saved["platform"])
        context = engine.open_context(spec_path, options.state_dir, platform)

        def confirm(planned: Plan) -> bool:
            render_plan(out, planned, context.spec.path)
            return ask_yes("Apply these changes?", "apply", auto_approve)

        outcome = engine.apply(
            context,
            confirm,
            command=" ".join(["dsrctl", *sys.argv[1:]]),
            saved=saved,
            saved_path=spec,
            confirm_timeout=confirm_timeout,
            progress=for_terminal(),
        )
        for note in outcome.notes:
            out.line(f"! {note}", "yellow")
        if outcome.applied == 0:
            for note in outcome.plan.notes:
                out.line(f"! {note}", "yellow")
            out.line(f"No changes. The host already matches {context.spec.path}.", "green")
            return 0
        if saved is not None:
            render_plan(out, outcome.plan, context.spec.path, heading=f"apply {spec}")
        manual = [step for step in outcome.plan.steps if step.kind == "manual"]
        done = outcome.applied - len(manual)
        out.line(f"Apply complete: {done} change(s) applied and verified.", "green")
        for step in manual:
            todo = step.to_json().get("instructions", step.note)
            out.line(f"! left to do by hand: {step.resource}: {todo}", "yellow")
        if outcome.pending is not None:
            import time

            when = time.strftime("%H:%M:%S %Z", time.localtime(outcome.pending.deadline))
            state = (
                ""
                if options.state_dir == DEFAULT_STATE_DIR
                else f" --state-dir {options.state_dir}"
            )
            out.line(
                f"These changes are reverted automatically at {when} unless confirmed. "
                f"From any shell run: dsrctl{state} confirm",
                "bold yellow",
            )
        return 0

    raise typer.Exit(run_command(ctx, body))


def _check_confirm_timeout(seconds: float) -> None:
    import math

    low, high = CONFIRM_TIMEOUT_RANGE
    if not math.isfinite(seconds) or not low <= seconds <= high:
        raise DsrctlError(
            f"--confirm-timeout {seconds:g}: must be a number of seconds from {low:g} to "
            f"{high:g}; nothing was changed"
        )


@app.command(short_help="Compare the host with the spec, read-only.")
def drift(
    ctx: typer.Context,
    spec: SpecArg = DEFAULT_SPEC,
    as_json: JsonOpt = False,
    prometheus: Annotated[
        str | None,
        typer.Option(
            "--prometheus",
            metavar="FILE",
            help="Also write node_exporter textfile metrics to FILE (replaced atomically).",
        ),
    ] = None,
    nagios: Annotated[
        bool,
        typer.Option(
            "--nagios", help="Print one plugin status line; exit 0 OK, 2 CRITICAL, 3 UNKNOWN."
        ),
    ] = False,
    fix: Annotated[
        bool,
        typer.Option("--fix", help="Repair drift with apply (journaled, locked). Off by default."),
    ] = False,
) -> None:
    """Compare the host with the spec, read-only. Exit 0 in sync, 2 drift, 1 error.

    Every run is logged to syslog (facility daemon, tag dsrctl). With --fix, drift is
    repaired at once through the same plan/apply path; the exit code still says whether
    drift was found (2).
    """

    def body() -> int:
        import time

        from dsrctl import engine, monitoring
        from dsrctl.progress import for_terminal

        if prometheus is not None:
            _check_out(prometheus, "the metrics", spec)
        run = monitoring.DriftRun(spec=os.path.abspath(spec), started=time.time(), duration=0.0)
        clock = time.perf_counter()
        try:
            # drift --fix (from cron, as root) writes what the spec says: refuse a spec
            # that others can edit; a read-only drift only notes it.
            notes = _trusted_spec(spec, "repair drift (--fix)" if fix else None)
            # Two phases (thousands of VIPs: the spec and records, then one dump of the
            # host's addresses and the comparison); a bar only after about a second.
            progress = for_terminal(as_json or nagios)
            try:
                progress.start(2, "drift: reading the spec and records")
                context = engine.open_context(
                    spec, root_options(ctx).state_dir, root_options(ctx).platform
                )
                progress.advance(1, "drift: reading the host and comparing")
                context.notes.extend(notes)
                result = engine.make_plan(context)
                progress.advance(1)
            finally:
                progress.close()
            run.items = engine.drift_items(result.plan)
            if fix and run.items:
                engine.apply(
                    context,
                    lambda planned: True,
                    command="dsrctl drift --fix",
                    action="drift --fix",
                    progress=for_terminal(as_json or nagios),
                )
                run.fixed = True
        except (DsrctlError, ProviderError, StateError) as exc:
            run.error = str(exc).replace("\n", " ")
            run.duration = time.perf_counter() - clock
            _report_drift(run, prometheus)
            if nagios:
                typer.echo(monitoring.nagios_line(run)[1])
                return monitoring.NAGIOS_UNKNOWN
            raise
        run.duration = time.perf_counter() - clock
        _report_drift(run, prometheus)
        if nagios:
            code, line = monitoring.nagios_line(run)
            typer.echo(line)
            return code
        if as_json:
            print_json(
                {
                    "format_version": 1,
                    "spec": context.spec.path,
                    "in_sync": not run.items,
                    "fixed": run.fixed,
                    "drift": run.items,
                    "notes": list(result.plan.notes),
                }
            )
        else:
            from dsrctl.render import Output, render_drift

            out = Output()
            render_drift(out, run.items, result.plan, context.spec.path)
            if run.fixed:
                out.line("fixed: the drift above was repaired and verified", "green")
        return EXIT_CHANGES if run.items else 0

    raise typer.Exit(run_command(ctx, body))


def _report_drift(run: Any, prometheus: str | None) -> None:
    from dsrctl import monitoring

    severity, message = monitoring.drift_message(run)
    monitoring.log(message, severity)
    if prometheus is not None:
        monitoring.write_prometheus(prometheus, run)


@app.command(short_help="Show the host's DSR state and dsrctl's records.")
def show(
    ctx: typer.Context,
    as_json: JsonOpt = False,
    root: Annotated[
        str,
        typer.Option(
            "--root",
            metavar="DIR",
            help="Look for the boot-time network configuration under DIR (Linux).",
        ),
    ] = "/",
) -> None:
    """Show the host's DSR-relevant state (addresses, ARP sysctls, who configures lo at
    boot, dsrctl records)."""

    def body() -> int:
        from dsrctl.platforms import get_provider
        from providers import safefile
        from providers.base import detect_platform
        from state.ownership import Ownership
        from state.statedir import StateDir

        options = root_options(ctx)
        where = {"root": root} if root != "/" else {}
        if not os.path.isdir(root):
            raise DsrctlError(f"--root {root}: no such directory")
        if where and (options.platform or detect_platform()) != "linux":
            raise DsrctlError("--root: only the Linux provider reads a boot configuration")
        provider = get_provider(options.platform, **where)
        report = provider.describe()
        if provider.platform == "linux":
            from dsrctl.linux.checks import describe_persistence
            from providers.linux.host import LinuxHost

            assert isinstance(provider, LinuxHost)
            report["persistence"] = describe_persistence(provider)
        state = StateDir(options.state_dir, safefile)
        state.verify()  # trusted before any record in it is read
        records = Ownership.load(state.ownership_file).records
        if provider.platform == "linux":
            from dsrctl.linux.effective import describe_effective

            assert isinstance(provider, LinuxHost)
            tunnels = [r.partition(":")[2] for r in records if r.startswith("tunnel:")]
            report["effective"] = describe_effective(provider, root, tunnels)
            from dsrctl.linux.ranges import describe_ranges

            report["ranges"] = describe_ranges(provider.local_ranges(), records)
            from dsrctl.linux.decap_side import has_tunnel_side, recorded

            if has_tunnel_side(records, provider.decap_devices()):  # else nothing is read
                from dsrctl.linux.decap_side import describe_decap_side

                side = provider.decap_side(recorded(records, "tunnel"), recorded(records, "module"))
                report["tunnels"] = describe_decap_side(side, records)
        from dsrctl.engine import state_notes

        report["dsrctl"] = {
            "state_dir": state.path,
            "notes": state_notes(state),
            "managed_resources": len(records),
            "created_by_dsrctl": sorted(r for r, rec in records.items() if rec.created),
        }
        if as_json:
            print_json(report)
        else:
            from dsrctl.render import Output, render_show

            render_show(Output(), report)
        return 0

    raise typer.Exit(run_command(ctx, body))


@app.command(short_help="Check a spec file (syntax, values, sysctls on this host).")
def validate(ctx: typer.Context, spec: SpecArg = DEFAULT_SPEC) -> None:
    """Check a spec file (syntax, values, and that its sysctls exist on this host)."""

    def body() -> int:
        from dsrctl.engine import check_preconditions, privilege_note
        from dsrctl.platforms import bind, check_spec, get_provider
        from dsrctl.spec import load_spec
        from state.ownership import Ownership

        notes = _trusted_spec(spec, None)
        loaded = load_spec(spec)
        provider = get_provider(root_options(ctx).platform)
        check_spec(loaded, provider)
        # What apply would refuse before its first change (a missing directory under
        # linux.persist.root) is a finding of validate too.
        planned = bind(provider).plan(loaded, Ownership()).plan
        check_preconditions(provider, planned, "validate")
        privileges = privilege_note(provider)
        firewall = planned.facts.get("firewall", [])  # the host firewall drops a tunnel's
        for note in [*notes, *loaded.warnings, *firewall, *([privileges] if privileges else [])]:
            typer.echo(f"! {note}")
        typer.echo(f"{spec}: valid ({vip_count(loaded.vips)})")
        return 0

    raise typer.Exit(run_command(ctx, body))


def vip_count(vips: Sequence[Vip]) -> str:
    """``3 VIP(s)``; with ranges ``2 VIP(s), 1 range(s)``: a range is one resource however
    many addresses it serves."""
    ranges = sum(1 for vip in vips if vip.is_range)
    single = len(vips) - ranges
    return f"{single} VIP(s), {ranges} range(s)" if ranges else f"{single} VIP(s)"


@app.command(short_help="Windows: save netsh output for `plan --from-capture`.")
def capture(
    ctx: typer.Context,
    spec: SpecArg = DEFAULT_SPEC,
    output: Annotated[
        str, typer.Option("--output", "-o", metavar="FILE", help="Where to save the capture.")
    ] = "dsrctl-capture.json",
) -> None:
    """Windows: save the raw output of every read command, for `plan --from-capture`."""

    def body() -> int:
        from providers.base import detect_platform

        options = root_options(ctx)
        if (options.platform or detect_platform()) != "windows":
            raise DsrctlError(
                "capture records netsh output: it runs on Windows hosts (or with --platform "
                "windows); on Linux, run `dsrctl plan` where the change is reviewed"
            )
        from dsrctl.capture import capture as record

        _trusted_spec(spec, None)
        _check_out(output, "the capture", spec)
        count, result = record(spec, options.state_dir, output)
        typer.echo(f"Captured the output of {count} command(s) to {output}.")
        typer.echo(f"{result.plan.summary()} Review it anywhere with:")
        typer.echo(f"  dsrctl plan --from-capture {output} {spec}")
        return 0

    raise typer.Exit(run_command(ctx, body))


def main() -> None:
    if os.environ.get("NO_COLOR"):
        os.environ.setdefault("TERM", "dumb")
    _usage_errors_exit_1()
    from dsrctl.cli_shell import PROG, completion_requested, register_completion

    if completion_requested():  # the shell asks for candidates (dsrctl completion)
        register_completion()
    app(prog_name=PROG)


def _usage_errors_exit_1() -> None:
    """A mistyped command line is an error (exit 1), never "changes pending" or "drift"
    (exit 2, click's default for usage errors): cron and monitoring read these codes.
    It is said in one line on stderr, like every other error."""
    from typer._click.exceptions import UsageError  # typer >= 0.26 vendors click

    UsageError.exit_code = 1
    UsageError.show = _show_usage_error  # type: ignore[method-assign]


def _show_usage_error(self: Any, file: Any = None) -> None:
    hint = ""
    if self.ctx is not None and self.ctx.command.get_help_option(self.ctx) is not None:
        hint = f" (see {self.ctx.command_path} {self.ctx.help_option_names[0]})"
    message = one_line(self.format_message())
    typer.echo(f"error: {message}{hint}", err=True)


# The change-window commands and `completion` live in their own modules; importing them
# registers them on cli_app.app. Imported last so that --help lists them after the commands
# above (cli_window first: the order of the import is the order in --help).
from dsrctl import cli_window  # noqa: E402,F401, I001
from dsrctl import cli_completion  # noqa: E402,F401
