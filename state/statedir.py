"""Location, creation and trust checks of the state directory (default /var/lib/dsrctl).

The state directory decides what dsrctl deletes and restores as root: a forged ownership
record makes apply delete an address, a forged journal makes rollback "restore" values an
attacker chose. So the directory and every file in it must belong to the user running
dsrctl (root may also own what a non-root reader reads) and must not be writable by group
or others; files are never opened through a symbolic link. Anything else is refused with
the path and the command that fixes it.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from dataclasses import dataclass

from state.errors import StateError, StatePermissionError
from state.writer import FileWriter

__all__ = [
    "DEFAULT_STATE_DIR",
    "StateDir",
    "check_trusted",
    "open_no_follow",
    "open_state_file",
    "open_state_file_for",
    "read_state_file",
    "state_file_name",
]

DEFAULT_STATE_DIR = "/var/lib/dsrctl"

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


@dataclass(frozen=True)
class StateDir:
    path: str
    # What every state file is written through: providers.safefile, given by dsrctl.
    writer: FileWriter

    @property
    def ownership_file(self) -> str:
        return os.path.join(self.path, "ownership.json")

    @property
    def journal_file(self) -> str:
        return os.path.join(self.path, "journal.jsonl")

    @property
    def lock_file(self) -> str:
        return os.path.join(self.path, "lock")

    @property
    def inflight_file(self) -> str:
        """Present while an apply or rollback runs; left behind by one that died."""
        return os.path.join(self.path, "inflight.json")

    @property
    def pending_file(self) -> str:
        """An apply waiting for `dsrctl confirm` (apply --confirm-timeout)."""
        return os.path.join(self.path, "pending-confirm.json")

    @property
    def watchdog_log(self) -> str:
        return os.path.join(self.path, "watchdog.log")

    def ensure(self) -> None:
        """Create the directory (mode 0700) for a command that writes state, and check that
        it can be trusted."""
        try:
            os.makedirs(self.path, mode=0o700, exist_ok=True)
        except FileExistsError:
            pass  # a file or a dangling link where the directory should be: said below
        except OSError as exc:
            raise StateError(
                f"cannot create state directory {self.path}: {_reason(exc)}{_FIX_STATE_DIR}"
            ) from None
        self.verify(writing=True)

    def verify(self, writing: bool = False) -> bool:
        """Check the directory before anything in it is read; False if it does not exist.

        ``writing``: the directory must belong to the running user. Otherwise root may own
        it too (a non-root `plan` reads root's records)."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            if writing:
                raise StateError(f"state directory {self.path} does not exist") from None
            return False
        except NotADirectoryError:
            raise StateError(
                f"--state-dir {self.path}: a parent of it is a file, not a directory"
                f"{_FIX_STATE_DIR}"
            ) from None
        except PermissionError:
            raise StatePermissionError(
                f"cannot read state directory {self.path}: permission denied (run as root)",
                self.path,
            ) from None
        if not stat.S_ISDIR(info.st_mode):
            raise StateError(
                f"--state-dir {self.path} is not a directory (it is a "
                f"{_kind(info.st_mode)}){_FIX_STATE_DIR}"
            )
        check_trusted(self.path, info, writing=writing, directory=True)
        if writing and not os.access(self.path, os.W_OK):
            raise StateError(f"state directory {self.path} is not writable")
        return True


_FIX_STATE_DIR = "; give --state-dir (or DSRCTL_STATE_DIR) a directory of its own"


def check_trusted(
    path: str, info: os.stat_result, writing: bool = False, directory: bool = False
) -> None:
    """Refuse a state directory or file that someone else could have written."""
    if sys.platform == "win32":  # pragma: no cover - no POSIX owners and modes there
        return
    me = os.geteuid()
    owners = (me,) if writing or me == 0 else (me, 0)
    what = "state directory" if directory else "state file"
    if info.st_uid not in owners:
        raise StateError(
            f"{what} {path} belongs to uid {info.st_uid}, not to the user running dsrctl "
            f"(uid {me}): its records cannot be trusted; `chown {me} {path}` if they are "
            "yours, or use another --state-dir"
        )
    if info.st_mode & 0o022:
        raise StateError(
            f"{what} {path} is writable by group or others (mode "
            f"{stat.S_IMODE(info.st_mode):04o}): anyone could forge its records; "
            f"`chmod go-w {path}` after checking its contents"
        )


def open_no_follow(path: str, flags: int, mode: int = 0o600) -> int:
    """os.open that refuses a symbolic link at ``path`` (ELOOP) and anything but a regular
    file: for state files, which an attacker must never redirect."""
    # O_NONBLOCK: a FIFO planted at the path must not hang the open.
    fd = os.open(path, flags | _NOFOLLOW | _CLOEXEC | _NONBLOCK, mode)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(
                errno.EISDIR if stat.S_ISDIR(info.st_mode) else errno.EINVAL, "not a regular file"
            )
        if _NONBLOCK:
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_state_file(path: str, flags: int, writing: bool = True) -> int:
    """Open a file in the state directory: never through a link, only a regular file that
    the running user owns and nobody else can write."""
    try:
        fd = open_no_follow(path, flags, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StateError(
                f"state file {path} is a symbolic link: dsrctl never follows links in its "
                f"state directory; remove it (`rm {path}`) after checking who made it"
            ) from None
        raise
    try:
        check_trusted(path, os.fstat(fd), writing=writing)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_state_file_for(path: str, flags: int, what: str) -> int:
    """open_state_file() for a writer, its failures as state errors naming ``what``."""
    try:
        return open_state_file(path, flags)
    except PermissionError:
        raise StatePermissionError(
            f"cannot open {what} {path}: permission denied (run as root)", path, "open"
        ) from None
    except OSError as exc:
        raise StateError(f"cannot open {what} {path}: {exc.strerror}") from None


def read_state_file(path: str) -> bytes | None:
    """The bytes of a state file, None if it does not exist."""
    try:
        fd = open_state_file(path, os.O_RDONLY, writing=False)
    except FileNotFoundError:
        return None
    except PermissionError:
        raise StatePermissionError(
            f"cannot read {path}: permission denied (run as root)", path
        ) from None
    except OSError as exc:
        raise StateError(f"cannot read state file {path}: {_reason(exc)}") from None
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise StateError(f"cannot read state file {path}: {_reason(exc)}") from None
    finally:
        os.close(fd)


# What the operator calls each file of the state directory, for messages.
STATE_FILE_NAMES = {
    "ownership.json": "the ownership records",
    "journal.jsonl": "the journal",
    "lock": "the lock file",
    "inflight.json": "the in-flight marker",
    "pending-confirm.json": "the pending confirmation",
    "watchdog.log": "the watchdog log",
}


def state_file_name(path: str) -> str:
    """``the journal`` for .../journal.jsonl; ``the state directory`` for anything else."""
    return STATE_FILE_NAMES.get(os.path.basename(path), "the state directory")


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "regular file"
    if stat.S_ISLNK(mode):
        return "symbolic link"
    return "special file"


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
