"""The one exception hierarchy of dsrctl.

Every error the user can cause or meet derives from :class:`DsrctlError`, or from the
roots of the ground floor's own errors: :class:`ProviderError` (``providers/errors.py``:
``HostError``, ``PrivilegeError``, re-exported here) and :class:`StateError`
(``state/errors.py``). ``REPORTED`` names the three; the CLI maps each class to a
one-line message on stderr and an exit code in a single place (``dsrctl.cli_app``); a
traceback is printed only with ``--debug``.

Planning code imports this module (the spec checks of ``dsrctl/linux/checks.py`` and
``dsrctl/windows/checks.py`` raise ``SpecError``), so it must stay free of typer and rich.
"""

from __future__ import annotations

import json

# The providers' and the state directory's errors are their own (providers/ and state/
# import nothing from dsrctl); they are reported like dsrctl's: REPORTED is what the CLI
# turns into one line and an exit code.
from providers.errors import HostError, PrivilegeError, ProviderError
from state.errors import LockError, StateError, StatePermissionError

__all__ = [
    "MISSING",
    "REPORTED",
    "AbortedAtPrompt",
    "AbortedByUser",
    "ApplyFailed",
    "DsrctlError",
    "HostError",
    "LockError",
    "PrivilegeError",
    "ProviderError",
    "SpecError",
    "StateError",
    "StatePermissionError",
    "VerificationError",
    "toml_literal",
]


class DsrctlError(Exception):
    """Root of every error dsrctl reports. Exit code 1 unless a subclass says otherwise."""

    exit_code = 1


class SpecError(DsrctlError):
    """The spec file is wrong: the user fixes the file. Names the file, key path and value."""

    def __init__(self, path: str, key: str, value: object, reason: str) -> None:
        self.path = path
        self.key = key
        self.value = value
        self.reason = reason
        shown = _show_value(value)
        where = f"{path}: {key}" if key else path
        super().__init__(f"{where} = {shown}: {reason}" if shown else f"{where}: {reason}")


class VerificationError(DsrctlError):
    """After apply, the host still differs from the spec (something undid a change)."""


class ApplyFailed(DsrctlError):
    """A step or the verification failed; carries the original error and the rollback result.

    Rollback that fails is reported next to the original error, never instead of it.
    """

    def __init__(
        self,
        original: BaseException,
        rollback_errors: list[str],
        undone: int,
        action: str = "apply",
        unrecorded: str | None = None,
    ) -> None:
        self.original = original
        self.rollback_errors = rollback_errors
        self.undone = undone
        self.unrecorded = unrecorded
        if rollback_errors:
            rb = f"rollback FAILED ({len(rollback_errors)} error(s)): " + "; ".join(rollback_errors)
        else:
            rb = f"rolled back {undone} completed step(s); the host is as it was before {action}"
        reason = str(original) or _INTERRUPTS.get(type(original).__name__, type(original).__name__)
        message = f"{action} failed: {reason}\n{rb}"
        if unrecorded is not None:
            message += f"\nthe journal could not record this ({unrecorded}); " + (
                "it keeps what it had before this run"
                if not rollback_errors
                else "`dsrctl history` shows the run as unfinished"
            )
        super().__init__(message)


_INTERRUPTS = {"KeyboardInterrupt": "interrupted (Ctrl-C)"}


class AbortedByUser(DsrctlError):
    """The operator declined the confirmation prompt, or apply ran unattended without approval."""


class AbortedAtPrompt(AbortedByUser):
    """Ctrl-C (exit 130, as any interrupt) or end of input (exit 1) at the prompt, before the
    first change."""

    def __init__(self, message: str, exit_code: int = 130) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _show_value(value: object) -> str:
    """The value as it would be written in TOML, so the user recognises it from the file."""
    if value is _MISSING:
        return ""
    text = toml_literal(value)
    return text if len(text) <= 80 else text[:77] + "..."


def toml_literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_literal(item) for item in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{key} = {toml_literal(item)}" for key, item in value.items())
        return "{ " + inner + " }" if inner else "{}"
    return str(value)


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()
MISSING: object = _MISSING


# Every error the CLI reports in one line (a bug is any other exception).
REPORTED: tuple[type[Exception], ...] = (DsrctlError, ProviderError, StateError)


def nothing_changed(exc: Exception) -> Exception:
    """``exc`` with "; nothing was changed" added to its message: said by every failure
    that stops a transaction before its first change."""
    exc.args = (f"{exc}; nothing was changed",)
    return exc
