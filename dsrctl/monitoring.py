"""Drift results for monitoring: Prometheus textfile, Nagios plugin line, syslog.

Kept free of typer and rich; the CLI decides which outputs a run produces.
"""

from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from providers.safefile import write_atomic

NAGIOS_OK, NAGIOS_CRITICAL, NAGIOS_UNKNOWN = 0, 2, 3
KINDS = ("sysctl", "address", "route", "file")  # always exported, 0 when in sync
SYSLOG_SOCKET = "/dev/log"
LOG_DAEMON = 3
SEVERITY = {"err": 3, "warning": 4, "notice": 5, "info": 6}


@dataclass
class DriftRun:
    """The outcome of one drift check, successful or not."""

    spec: str
    started: float
    duration: float
    items: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    fixed: bool = False

    @property
    def in_sync(self) -> bool:
        return self.error is None and not self.items

    def by_kind(self) -> dict[str, int]:
        counts = dict.fromkeys(KINDS, 0)
        for item in self.items:
            counts[item["kind"]] = counts.get(item["kind"], 0) + 1
        return counts


# -- Prometheus node_exporter textfile collector ---------------------------------------
def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


_LAST_SUCCESS = re.compile(
    r'^dsrctl_drift_last_success_timestamp_seconds\{spec="(?P<spec>(?:[^"\\]|\\.)*)"\} (?P<v>\S+)$',
    re.M,
)


def prometheus_text(run: DriftRun, previous: str = "") -> str:
    """The textfile; on error the last-success timestamp is carried over from ``previous``."""
    spec = _label(run.spec)
    last_success: float | None = run.started + run.duration if run.error is None else None
    if last_success is None:
        for match in _LAST_SUCCESS.finditer(previous):
            if match.group("spec") == spec:
                last_success = float(match.group("v"))
    lines = [
        "# HELP dsrctl_drift_in_sync 1 if the host matched the spec at the last check, else 0.",
        "# TYPE dsrctl_drift_in_sync gauge",
        f'dsrctl_drift_in_sync{{spec="{spec}"}} {1 if run.in_sync else 0}',
        "# HELP dsrctl_drift_error 1 if the last check failed (its other values are stale).",
        "# TYPE dsrctl_drift_error gauge",
        f'dsrctl_drift_error{{spec="{spec}"}} {0 if run.error is None else 1}',
        "# HELP dsrctl_drift_items Drifted items found at the last check, by resource kind.",
        "# TYPE dsrctl_drift_items gauge",
    ]
    if run.error is None:
        lines += [
            f'dsrctl_drift_items{{spec="{spec}",kind="{kind}"}} {count}'
            for kind, count in sorted(run.by_kind().items())
        ]
    lines += [
        "# HELP dsrctl_drift_fixed 1 if the last check repaired the drift it found (--fix).",
        "# TYPE dsrctl_drift_fixed gauge",
        f'dsrctl_drift_fixed{{spec="{spec}"}} {1 if run.fixed else 0}',
        "# HELP dsrctl_drift_duration_seconds How long the last check took.",
        "# TYPE dsrctl_drift_duration_seconds gauge",
        f'dsrctl_drift_duration_seconds{{spec="{spec}"}} {run.duration:.6f}',
        "# HELP dsrctl_drift_last_run_timestamp_seconds When the last check ran.",
        "# TYPE dsrctl_drift_last_run_timestamp_seconds gauge",
        f'dsrctl_drift_last_run_timestamp_seconds{{spec="{spec}"}} {run.started:.3f}',
    ]
    if last_success is not None:
        lines += [
            "# HELP dsrctl_drift_last_success_timestamp_seconds When a check last succeeded.",
            "# TYPE dsrctl_drift_last_success_timestamp_seconds gauge",
            f'dsrctl_drift_last_success_timestamp_seconds{{spec="{spec}"}} {last_success:.3f}',
        ]
    return "\n".join(lines) + "\n"


def write_prometheus(path: str, run: DriftRun) -> None:
    """Replace the textfile atomically: node_exporter never reads half a file."""
    try:
        with open(path, encoding="utf-8") as handle:
            previous = handle.read()
    except (FileNotFoundError, UnicodeDecodeError):
        previous = ""
    write_atomic(path, prometheus_text(run, previous).encode(), 0o644)


# -- Nagios / Icinga plugin ------------------------------------------------------------
def nagios_line(run: DriftRun) -> tuple[int, str]:
    counts = run.by_kind()
    perf = " ".join(f"{kind}={count};;1;0" for kind, count in sorted(counts.items()))
    perf = f"drifted={len(run.items)};;1;0 {perf} duration={run.duration:.3f}s"
    if run.error is not None:
        return NAGIOS_UNKNOWN, f"DSRCTL UNKNOWN - {run.error} | duration={run.duration:.3f}s"
    if not run.items:
        return NAGIOS_OK, f"DSRCTL OK - host matches {run.spec} | {perf}"
    shown = ", ".join(_short(item) for item in run.items[:3])
    more = f" and {len(run.items) - 3} more" if len(run.items) > 3 else ""
    fixed = " (repaired by --fix)" if run.fixed else ""
    return (
        NAGIOS_CRITICAL,
        f"DSRCTL CRITICAL - {len(run.items)} item(s) drifted from {run.spec}{fixed}: "
        f"{shown}{more} | {perf}",
    )


def _short(item: dict[str, Any]) -> str:
    expected = "absent" if item["expected"] is None else _compact(item["expected"])
    actual = "missing" if item["actual"] is None else _compact(item["actual"])
    return f"{item['kind']} {item['name']} (expected {expected}, actual {actual})"


def _compact(value: Any) -> str:
    if isinstance(value, dict):
        if "sha256" in value:
            return f"sha256 {str(value['sha256'])[:12]}"
        return ",".join(f"{k}={v}" for k, v in value.items() if k not in ("address", "prefix"))
    return str(value)


# -- syslog / journald -----------------------------------------------------------------
def log(message: str, severity: str = "info") -> None:
    """One RFC 3164 message to the local syslog socket (journald listens there too).

    Facility daemon, tag ``dsrctl``. The socket is $DSRCTL_SYSLOG_SOCKET or /dev/log; a
    host without one (a minimal container) is silently skipped: logging never fails a run.
    """
    path = os.environ.get("DSRCTL_SYSLOG_SOCKET", SYSLOG_SOCKET)
    priority = LOG_DAEMON * 8 + SEVERITY.get(severity, 6)
    stamp = time.strftime("%b %d %H:%M:%S", time.localtime())
    text = message.replace("\n", " ")[:4000]
    data = f"<{priority}>{stamp} dsrctl[{os.getpid()}]: {text}".encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(path)
            sock.send(data)
    except OSError:
        pass


def drift_message(run: DriftRun) -> tuple[str, str]:
    if run.error is not None:
        return "err", f"drift check failed: spec={run.spec} error={run.error}"
    if not run.items:
        return "info", f"drift: in sync spec={run.spec} duration={run.duration:.3f}s"
    items = "; ".join(_short(item) for item in run.items[:20])
    verb = "repaired" if run.fixed else "found"
    return "warning", f"drift {verb}: {len(run.items)} item(s) spec={run.spec}: {items}"
