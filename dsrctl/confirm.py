"""Confirm or revert: `apply --confirm-timeout SECONDS`, `dsrctl confirm`.

After such an apply, ``<state-dir>/pending-confirm.json`` names the transaction and its
deadline, and a watchdog process is started in its own session (setsid), detached from
the terminal: it outlives the applying process, its terminal and the SSH connection. At
the deadline it rolls the apply back unless `dsrctl confirm` (or an early
`dsrctl rollback`) removed the pending record first. A change that cuts the operator off
therefore undoes itself.

Limit: the watchdog is a process; a reboot before the deadline ends it. The pending
record survives, and every later command reports the unconfirmed apply.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from dsrctl.errors import REPORTED, DsrctlError
from providers import safefile
from state.errors import LockError
from state.pending import Pending, clear_pending, read_pending, write_pending
from state.statedir import StateDir, open_state_file

if TYPE_CHECKING:
    from state.lock import ApplyLock  # imported where locked: drift's pending_note needs none

POLL_SECONDS = 0.25
LOCK_REPORT_SECONDS = 60.0


def pending_note(state: StateDir) -> str | None:
    pending = read_pending(state)
    if pending is None:
        return None
    if pending.watchdog_alive():
        return pending.describe()
    if time.time() < pending.deadline:
        return (
            f"apply {pending.txn} is waiting for `dsrctl confirm`, but its watchdog is gone "
            "(a reboot?): no automatic revert will come; run `dsrctl confirm` or "
            "`dsrctl rollback`"
        )
    return (
        f"apply {pending.txn} was never confirmed and its automatic revert did not run "
        "(the watchdog is gone, e.g. after a reboot): run `dsrctl rollback` or `dsrctl confirm`"
    )


SYSTEMD_RUNTIME = "/run/systemd/system"


def start_watchdog(state: StateDir, txn: str, deadline: float, platform: str) -> Pending:
    """Start the detached process that reverts ``txn`` at ``deadline`` unless confirmed.

    On a host that systemd runs, the watchdog is a transient service (systemd-run): it
    lives in system.slice, outside the operator's login session, so even logind's
    KillUserProcesses=yes cannot take it down with the SSH session. Elsewhere (or if
    systemd-run fails) it is a process in a session of its own (setsid).
    """
    import sys

    argv = [sys.executable, "-m", "dsrctl", "--state-dir", os.path.abspath(state.path)]
    argv += ["--platform", platform, "revert-unless-confirmed", txn]
    log_path = state.watchdog_log
    os.close(open_state_file(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT))
    pid = _start_as_service(argv, txn, log_path) if _systemd_running() else None
    if pid is None:
        pid = _start_detached(argv, log_path)
    from state.process import boot_id, process_token

    pending = Pending(
        txn=txn,
        deadline=deadline,
        watchdog_pid=pid,
        platform=platform,
        watchdog=f"{boot_id()}/{process_token(pid)}",
    )
    write_pending(state, pending)
    return pending


def _systemd_running() -> bool:
    """systemd runs this host, and we are in its network namespace: a service that systemd
    starts would otherwise revert in another namespace than the one applied to."""
    if not os.path.isdir(SYSTEMD_RUNTIME):
        return False
    try:
        return os.readlink("/proc/self/ns/net") == os.readlink("/proc/1/ns/net")
    except OSError:
        return False


def _start_as_service(argv: list[str], txn: str, log_path: str) -> int | None:
    """The watchdog as a transient systemd service; its main pid, or None to fall back."""
    import shutil
    import subprocess

    run, ctl = shutil.which("systemd-run"), shutil.which("systemctl")
    if run is None or ctl is None:
        return None
    unit = f"dsrctl-revert-{txn}.service"
    started = subprocess.run(
        [
            run,
            f"--unit={unit}",
            "--collect",
            "--quiet",
            "--property=Type=exec",
            f"--property=StandardOutput=append:{log_path}",
            f"--property=StandardError=append:{log_path}",
            "--",
            *argv,
        ],
        capture_output=True,
        text=True,
    )
    if started.returncode != 0:
        return None
    shown = subprocess.run(
        [ctl, "show", "--property=MainPID", "--value", unit], capture_output=True, text=True
    )
    value = shown.stdout.strip()
    return int(value) if shown.returncode == 0 and value.isdigit() and value != "0" else None


def _start_detached(argv: list[str], log_path: str) -> int:
    import subprocess
    import sys

    # Opened without following links and checked: the child writes into it as root.
    log = os.fdopen(open_state_file(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT), "ab")
    # Windows has no sessions: a detached process in its own group outlives the console.
    flags = 0x00000008 | 0x00000200 if sys.platform == "win32" else 0
    try:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # its own session: a hang-up of ours never reaches it
            # The test hook that pauses an apply must not pause the revert it arms.
            env={k: v for k, v in os.environ.items() if k != "DSRCTL_TEST_PAUSE_AFTER_GROUP"},
            close_fds=True,
            creationflags=flags,
        )
    finally:
        log.close()
    return child.pid


def confirm(state: StateDir, command: str) -> Pending:
    from state.journal import append_record
    from state.lock import ApplyLock

    state.ensure()
    with ApplyLock(state.lock_file, command, safefile):
        pending = read_pending(state)
        if pending is None:
            raise DsrctlError("no apply is waiting for confirmation")
        clear_pending(state, pending.txn)
        append_record(state, pending.txn, "confirmed", target=pending.txn)
        from dsrctl.monitoring import log

        log(f"confirm: apply {pending.txn} confirmed; automatic revert cancelled", "notice")
        return pending


def _say(txn: str, message: str) -> None:
    """A timestamped line in watchdog.log (the watchdog's stderr) and in syslog."""
    import sys

    from dsrctl.monitoring import log

    sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} {txn}: {message}\n")
    sys.stderr.flush()
    log(f"watchdog for apply {txn}: {message}", "warning")


def _wait_for_lock(state: StateDir, txn: str, command: str) -> ApplyLock | None:
    """The lock, waited for as long as it takes (an operator's rollback prompt, say, or the
    apply that armed the watchdog): giving up would leave an unconfirmed change in place.
    None if the apply was confirmed or rolled back meanwhile."""
    from state.lock import ApplyLock

    next_report = time.monotonic()
    while True:
        lock = ApplyLock(state.lock_file, command, safefile)
        try:
            lock.acquire()
            return lock
        except LockError as exc:
            if time.monotonic() >= next_report:
                _say(txn, f"deadline passed; waiting for the lock: {exc}")
                next_report = time.monotonic() + LOCK_REPORT_SECONDS
            pending = read_pending(state)
            if pending is None or pending.txn != txn:
                return None
            time.sleep(POLL_SECONDS)


def revert_unless_confirmed(state: StateDir, txn: str, platform: str) -> str:
    """The watchdog's body: wait for the deadline, then roll back if still unconfirmed."""
    from dsrctl.platforms import get_provider

    command = f"dsrctl revert-unless-confirmed {txn}"
    while True:
        while True:
            pending = read_pending(state)
            if pending is None or pending.txn != txn:
                return "confirmed or rolled back in time; nothing to do"
            remaining = pending.deadline - time.time()
            if remaining <= 0:
                break
            time.sleep(min(POLL_SECONDS, remaining))
        lock = _wait_for_lock(state, txn, command)
        if lock is None:
            return "confirmed or rolled back while waiting for the lock; nothing to do"
        pending = read_pending(state)
        if pending is not None and pending.txn == txn and pending.deadline > time.time():
            # The apply that armed us held the lock until it finished, and moved the
            # deadline: the operator's window starts now. Wait again.
            lock.release()
            continue
        break
    try:
        pending = read_pending(state)
        if pending is None or pending.txn != txn:
            return "confirmed at the last moment; nothing to do"
        from dsrctl.rollback import execute_rollback, plan_rollback

        try:
            planned = plan_rollback(state, to=txn, locked=True)
            execute_rollback(state, get_provider(platform), planned, command)
        except REPORTED as exc:
            _say(txn, f"automatic revert FAILED: {exc}")
            raise
        clear_pending(state, txn)
        return f"not confirmed by the deadline: rolled back {txn}"
    finally:
        lock.release()
