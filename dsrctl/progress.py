"""Progress of long work (apply, rollback, drift) as the commands report it.

The library reports through :class:`Progress` (``start(total)``, ``advance(n)``,
``close()``); the default, :data:`NO_PROGRESS`, does nothing. The command line passes a
bar (``dsrctl.progress_rich``, rich on stderr) only when both stdout and stderr are
terminals and the output is not machine-readable (``--json``, ``--nagios``): rich is
imported only then, so cron runs of `drift` stay light. The bar appears only once the
work has taken more than about a second (``DSRCTL_PROGRESS_AFTER`` seconds, default 1)
and is erased when the work ends.
"""

from __future__ import annotations

import os
import sys
from typing import Protocol

# Seconds of work before a bar appears (DSRCTL_PROGRESS_AFTER overrides it; tests use 0).
DEFAULT_AFTER = 1.0


class Progress(Protocol):
    """What long work reports: ``total`` units, ``advance(n)`` as they are done; a
    ``description`` names what is being done now (a phase)."""

    def start(self, total: int, description: str = "") -> None: ...

    def advance(self, n: int = 1, description: str | None = None) -> None: ...

    def close(self) -> None: ...


class NoProgress:
    """Reports nothing (not a terminal, --json, the library's default)."""

    def start(self, total: int, description: str = "") -> None:
        pass

    def advance(self, n: int = 1, description: str | None = None) -> None:
        pass

    def close(self) -> None:
        pass


NO_PROGRESS: Progress = NoProgress()


def show_after() -> float:
    """DSRCTL_PROGRESS_AFTER (seconds, 0 or more) or the default of one second."""
    try:
        seconds = float(os.environ.get("DSRCTL_PROGRESS_AFTER", DEFAULT_AFTER))
    except ValueError:
        return DEFAULT_AFTER
    return seconds if seconds >= 0 else DEFAULT_AFTER


def for_terminal(machine_readable: bool = False) -> Progress:
    """A bar on stderr when stdout and stderr are both terminals and the output is for
    people; otherwise :data:`NO_PROGRESS`."""
    if machine_readable or not (_isatty(sys.stdout) and _isatty(sys.stderr)):
        return NO_PROGRESS
    from dsrctl.progress_rich import DelayedBar

    return DelayedBar(show_after())


def _isatty(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (OSError, ValueError):  # a closed stream
        return False
