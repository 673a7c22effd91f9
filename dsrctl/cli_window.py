"""Change-window commands: confirm, rollback, history, import (registered on dsrctl.cli_app.app).

Thin like the rest of the CLI: every module that does the work is imported inside the
command that needs it.
"""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

from dsrctl.cli_app import (
    DEFAULT_SPEC,
    JsonOpt,
    app,
    ask_yes,
    print_json,
    root_options,
    run_command,
)


@app.command(short_help="Keep an apply made with --confirm-timeout.")
def confirm(ctx: typer.Context) -> None:
    """Keep an apply made with --confirm-timeout (cancels its automatic revert)."""

    def body() -> int:
        from dsrctl.confirm import confirm as confirm_pending
        from providers import safefile
        from state.statedir import StateDir

        pending = confirm_pending(StateDir(root_options(ctx).state_dir, safefile), "dsrctl confirm")
        typer.echo(f"Confirmed apply {pending.txn}: the automatic revert is cancelled.")
        return 0

    raise typer.Exit(run_command(ctx, body))


@app.command(short_help="Undo the last apply (or --to ID) from the journal.")
def rollback(
    ctx: typer.Context,
    to: Annotated[
        str | None,
        typer.Option(
            "--to", metavar="ID", help="Undo this apply and every later one (ids: dsrctl history)."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be restored; change nothing.")
    ] = False,
    auto_approve: Annotated[bool, typer.Option("--auto-approve", help="Do not ask.")] = False,
) -> None:
    """Undo the last apply (or --to ID) from the journal, restoring the values seen before it."""

    def body() -> int:
        from dsrctl.errors import ProviderError
        from dsrctl.plan import Plan
        from dsrctl.platforms import get_provider
        from dsrctl.render import Output, render_rollback
        from dsrctl.rollback import RollbackPlan, plan_rollback, preview, run_rollback
        from providers import safefile
        from state.statedir import StateDir

        options = root_options(ctx)
        state = StateDir(options.state_dir, safefile)
        out = Output()
        provider = get_provider(options.platform)

        def show(planned: RollbackPlan, heading: str) -> None:
            # Under each step, what the host holds now (read as the rollback verifies).
            try:
                now = preview(planned, provider) if planned.plan.steps else []
            except ProviderError as exc:
                now = None
                note = f"cannot read the host now ({exc}): the values shown are the journal's"
                planned.plan = Plan(planned.plan.steps, (*planned.plan.notes, note))
            render_rollback(out, planned.plan, state.journal_file, heading, now)

        if dry_run:
            show(plan_rollback(state, to), "rollback (dry run)")
            return 0

        def ask(planned: RollbackPlan) -> bool:
            show(planned, "rollback")
            return ask_yes("Roll back these changes?", "roll back", auto_approve)

        from dsrctl.progress import for_terminal

        command = " ".join(["dsrctl", *sys.argv[1:]])
        planned = run_rollback(state, provider, to, ask, command, for_terminal())
        ids = ", ".join(t.txn for t in planned.targets)
        out.line(f"Rollback complete: {ids} undone, {len(planned.plan.steps)} step(s).", "green")
        return 0

    raise typer.Exit(run_command(ctx, body))


@app.command(short_help="List past applies and rollbacks.")
def history(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Past applies and rollbacks: time, user, spec digest, result."""

    def body() -> int:
        from providers import safefile
        from state.inflight import read_inflight
        from state.journal import read_history
        from state.pending import read_pending
        from state.statedir import StateDir

        state = StateDir(root_options(ctx).state_dir, safefile)
        state.verify()
        inflight = read_inflight(state)
        pending = read_pending(state)
        rows = []
        journal = read_history(state.journal_file)
        for problem in journal.problems:  # skipped, never a reason to lock the operator out
            typer.echo(f"warning: {problem}", err=True)
        for txn in journal.transactions:
            result = txn.result
            if result is None:
                alive = inflight is not None and inflight.txn == txn.txn and inflight.alive()
                result = "running" if alive else "unfinished"
            elif txn.kind == "rollback" and result == "applied":
                result = "done"
            command = str(txn.begin.get("command", ""))
            automatic = command.startswith("dsrctl revert-unless-confirmed")
            waiting = pending is not None and pending.txn == txn.txn
            until = int(pending.deadline) if pending is not None and waiting else None
            rows.append(
                {
                    "id": txn.txn,
                    "kind": "automatic revert" if automatic else txn.kind,
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(txn.started)),
                    "user": txn.begin.get("user", ""),
                    "command": command,
                    "spec": txn.begin.get("spec", ""),
                    "spec_sha256": txn.begin.get("spec_sha256", ""),
                    "steps": len(txn.steps()),
                    "result": result,
                    "reverts": txn.begin.get("reverts", []),
                    "reverted_by": txn.reverted_by,
                    "superseded_by": txn.superseded_by,
                    "confirmed": txn.confirmed,
                    "waiting_for_confirmation_until": until,
                }
            )
        if as_json:
            print_json(
                {"format_version": 1, "transactions": rows, "skipped_lines": journal.problems}
            )
            return 0
        if not rows:
            typer.echo("No applies or rollbacks recorded yet.")
        table = []
        for row in rows:
            digest = str(row["spec_sha256"])[:12] or "-"
            extra = ""
            if row["reverts"]:
                extra += f", reverts {', '.join(row['reverts'])}"
            if row["reverted_by"]:
                extra += f", reverted by {row['reverted_by']}"
            if row["superseded_by"]:
                extra += f", converged by {row['superseded_by']}"
            if row["confirmed"]:
                extra += ", confirmed"
            if row["waiting_for_confirmation_until"]:
                deadline = time.localtime(row["waiting_for_confirmation_until"])
                extra += f", waiting for confirmation until {time.strftime('%H:%M:%S', deadline)}"
            cells = (row["id"], row["time"], row["kind"], row["user"], digest, row["steps"])
            table.append([*map(str, cells), f"{row['result']}{extra}"])
        if table:
            from dsrctl.render import table_lines

            header = ["ID", "STARTED", "KIND", "USER", "SPEC SHA256", "STEPS", "RESULT"]
            for line in table_lines(header, table, right=frozenset({5})):
                typer.echo(line)
        return 0

    raise typer.Exit(run_command(ctx, body))


@app.command("import", short_help="Print a spec of this host's current DSR configuration.")
def import_(
    ctx: typer.Context,
    adopt: Annotated[
        bool,
        typer.Option("--adopt", help="Also record the found resources as managed by dsrctl."),
    ] = False,
    out: Annotated[
        str | None,
        typer.Option("--out", metavar="FILE", help="Write the spec here instead of stdout."),
    ] = None,
    interface: Annotated[
        str, typer.Option("--interface", metavar="NAME", help="Where the VIPs live.")
    ] = "lo",
    loopback: Annotated[
        str | None,
        typer.Option(
            "--loopback", metavar="NAME", help="Windows: the adapter that holds the VIPs."
        ),
    ] = None,
) -> None:
    """Print a spec describing this host's current DSR configuration (TOML)."""

    def body() -> int:
        import os

        from dsrctl.errors import DsrctlError
        from dsrctl.platforms import ImportRequest, bind, get_provider

        options = root_options(ctx)
        provider = get_provider(options.platform)
        platform = bind(provider)
        if platform.record.importer is None:
            raise DsrctlError(f"import is not available on {provider.platform} yet")
        windows = provider.platform == "windows"
        if windows and interface != "lo":
            raise DsrctlError("--interface is for Linux; on Windows use --loopback NAME")
        if not windows and loopback is not None:
            raise DsrctlError("--loopback is for Windows; on Linux use --interface NAME")
        default = "<imported spec>" if windows else DEFAULT_SPEC
        spec_path = os.path.abspath(out) if out else default
        if out and os.path.exists(out):
            raise DsrctlError(f"{out} exists; remove it or choose another --out")
        if out and not os.path.isdir(os.path.dirname(spec_path)):
            raise DsrctlError(
                f"cannot write {out}: directory {os.path.dirname(spec_path)} does not exist"
            )
        imported, text = platform.import_host(ImportRequest(interface, loopback, spec_path))
        adopted = None
        if adopt:
            from dsrctl.engine import adopt_spec

            adopted = adopt_spec(text, spec_path, options.state_dir, provider, "dsrctl import")
        if out:
            with open(out, "x", encoding="utf-8") as handle:
                handle.write(text)
            for note in imported.notes:
                typer.echo(f"! {note}", err=True)
            typer.echo(f"Wrote {out}", err=True)
        else:
            sys.stdout.write(text)
        if adopted is not None:
            typer.echo(
                f"Adopted {adopted} resource(s): managed by dsrctl from now on, never deleted "
                "by it (it did not create them).",
                err=True,
            )
        return 0

    raise typer.Exit(run_command(ctx, body))


@app.command("revert-unless-confirmed", hidden=True)
def revert_unless_confirmed(
    ctx: typer.Context, txn: Annotated[str, typer.Argument(metavar="ID")]
) -> None:
    """The watchdog started by apply --confirm-timeout (not for interactive use)."""

    def body() -> int:
        from dsrctl.confirm import revert_unless_confirmed as watch
        from providers import safefile
        from state.statedir import StateDir

        options = root_options(ctx)
        message = watch(StateDir(options.state_dir, safefile), txn, options.platform or "linux")
        typer.echo(f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} {txn}: {message}")
        return 0

    raise typer.Exit(run_command(ctx, body))


@app.command("install-timer", short_help="Schedule `dsrctl drift` (systemd timer or cron.d).")
def install_timer(
    ctx: typer.Context,
    spec: Annotated[
        str, typer.Option("--spec", metavar="SPEC", help="The spec drift checks.")
    ] = DEFAULT_SPEC,
    every: Annotated[
        str, typer.Option("--every", metavar="INTERVAL", help="Interval: 15min, 1h, ...")
    ] = "15min",
    delay: Annotated[
        str,
        typer.Option("--delay", metavar="INTERVAL", help="Random delay spreading a fleet's runs."),
    ] = "5min",
    prometheus: Annotated[
        str | None, typer.Option("--prometheus", metavar="FILE", help="Textfile to write.")
    ] = None,
    fix: Annotated[bool, typer.Option("--fix", help="Repair drift on each run.")] = False,
    cron: Annotated[bool, typer.Option("--cron", help="A cron.d file instead of systemd.")] = False,
    root: Annotated[
        str, typer.Option("--root", metavar="DIR", help="Install under this root.")
    ] = "/",
) -> None:
    """Schedule `dsrctl drift`: a systemd service and timer (or --cron, a cron.d file)."""

    def body() -> int:
        import shutil

        from dsrctl import trust
        from dsrctl.errors import DsrctlError
        from dsrctl.timer import DEFAULT_EXECUTABLE, TimerOptions, install

        for option, value in (("--spec", spec), ("--prometheus", prometheus or "")):
            if any(ord(char) < 32 or ord(char) == 127 for char in value):
                raise DsrctlError(f"{option} {value!r}: the path has control characters")
        # The timer runs drift as root: with --fix it writes what the spec says.
        notes = [] if fix else trust.untrusted_notes(spec, "spec", "drift --fix")
        if fix:
            trust.refuse_untrusted(spec, "spec", "install a timer that runs drift --fix")
        executable = shutil.which("dsrctl") or DEFAULT_EXECUTABLE
        options = TimerOptions(
            every=every,
            spec=spec,
            executable=executable,
            prometheus=prometheus,
            fix=fix,
            delay=delay,
        )
        for line in install(options, root=root, cron=cron):
            typer.echo(line)
        for note in notes:
            typer.echo(f"! {note}")
        return 0

    raise typer.Exit(run_command(ctx, body))
