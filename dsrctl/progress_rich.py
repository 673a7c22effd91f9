"""The progress bar of dsrctl.progress: rich's Progress on stderr, shown only after a delay.

rich's Progress has no delay of its own: the bar is started from a timer once the work has
taken ``after`` seconds (a single long step, such as a batch of thousands of addresses,
still shows it: rich repaints from its own thread). It is transient: erased at the end.
Imported only by dsrctl.progress.for_terminal, when both stdout and stderr are terminals.
"""

from __future__ import annotations

import contextlib
import threading

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)


class DelayedBar:
    """A :class:`dsrctl.progress.Progress` drawn by rich once ``after`` seconds passed."""

    def __init__(self, after: float) -> None:
        self.after = after
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
            # dsrctl writes to stdout itself; nothing is swapped behind its back.
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._task: TaskID | None = None
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._shown = False
        self._closed = False

    def start(self, total: int, description: str = "") -> None:
        with self._lock, contextlib.suppress(Exception):
            if self._task is None:
                self._task = self._bar.add_task(description, total=total)
            else:  # started again: the same bar, counted anew
                self._bar.reset(self._task, total=total, completed=0, description=description)
            if self._timer is None and not self._closed:
                self._timer = threading.Timer(self.after, self._show)
                self._timer.daemon = True
                self._timer.start()

    def advance(self, n: int = 1, description: str | None = None) -> None:
        if self._task is None:
            return
        with contextlib.suppress(Exception):  # a bar never stops the work (or its undo)
            self._bar.update(self._task, advance=n, description=description)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
            if self._shown:
                self._shown = False
                with contextlib.suppress(Exception):
                    self._bar.stop()
        if self._timer is not None:  # outside the lock: its _show may be waiting for it
            self._timer.join(timeout=1.0)

    def _show(self) -> None:
        with self._lock:
            if not self._closed and not self._shown:
                self._bar.start()
                self._shown = True
