"""Unfinished transactions: decide that an apply or rollback died, say so, and learn from
it. The in-flight marker itself is state (state/inflight.py)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from state.inflight import Inflight, read_inflight
from state.ownership import Ownership
from state.statedir import StateDir

if TYPE_CHECKING:
    from state.journal import Transaction


def current_user() -> str:
    """Who ran the command: the sudo caller if any, for `dsrctl history`."""
    import getpass

    sudo = os.environ.get("SUDO_USER")
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{sudo} (as {user})" if sudo and sudo != user else user


def unfinished(state: StateDir, locked: bool = False) -> Inflight | None:
    """The transaction that died halfway, if any (not one that is still running).

    ``locked``: the caller holds the apply lock. Every run that writes the marker holds
    the lock while it runs, so a marker seen under the lock belongs to a dead run.
    """
    current = read_inflight(state)
    if current is None or (not locked and current.alive()):
        return None
    return current


def unfinished_note(state: StateDir) -> str | None:
    dead = unfinished(state)
    if dead is None:
        return None
    if dead.kind == "rollback":
        return (
            f"an unfinished {dead.describe()} was interrupted; run `dsrctl rollback` again "
            "to finish it"
        )
    return (
        f"an unfinished {dead.describe()} was interrupted; "
        "`dsrctl rollback` restores the state before it, `dsrctl apply` converges from here"
    )


def find_transaction(state: StateDir, txn: str) -> Transaction | None:
    from state.journal import transactions  # not needed by plan and drift

    return next((t for t in transactions(state.journal_file) if t.txn == txn), None)


def learn_ownership(ownership: Ownership, txn: Transaction) -> None:
    """Merge what an unfinished apply created or changed into the ownership records.

    Its records were never saved; without this, a VIP it added would look like the
    operator's own and never be removed.
    """
    for step in txn.steps():
        ownership.remember(
            step["resource"], created=step.get("before") is None, original=step.get("before")
        )
