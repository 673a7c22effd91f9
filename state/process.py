"""Is the process that wrote a marker still running? Pids are reused and hosts reboot, so
a marker names its writer by pid, the kernel's start time of that pid, and the boot id."""

from __future__ import annotations

import sys

BOOT_ID = "/proc/sys/kernel/random/boot_id"


def process_token(pid: int) -> str:
    """The kernel's start time of ``pid`` (in clock ticks since boot), or "" if unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return ""
    # fields[0] is the state (field 3 of stat); the start time is field 22.
    return fields[19] if len(fields) > 19 else ""


def process_alive(pid: int, token: str = "") -> bool:
    """Is ``pid`` still the process that wrote ``token``? A zombie is not alive."""
    if sys.platform == "win32":  # pragma: no cover - os.kill(pid, 0) would kill it there
        return _windows_process_alive(pid)
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        return True  # cannot tell: assume it runs, never undo a live run's work
    if fields[0] in ("Z", "X"):
        return False
    return not token or (len(fields) > 19 and fields[19] == token)


def _windows_process_alive(pid: int) -> bool:  # pragma: no cover - Windows only
    import ctypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined,unused-ignore]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return False
    code = ctypes.c_ulong()
    kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
    kernel32.CloseHandle(handle)
    return code.value == 259  # STILL_ACTIVE


def boot_id() -> str:
    try:
        with open(BOOT_ID, encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return ""
