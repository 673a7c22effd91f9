"""`dsrctl install-timer`: schedule `dsrctl drift` with a systemd timer or cron.d.

The files are rendered here and shipped, rendered with the defaults, in contrib/ (a test
keeps the two identical). Runs never overlap: systemd does not start a oneshot service
that is still running, and the cron line runs under `flock -n`. A randomised delay
spreads a fleet's checks so that they do not all hit monitoring at the same second.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass

from dsrctl import DEFAULT_SPEC_PATH
from dsrctl.errors import DsrctlError, ProviderError
from dsrctl.model import FileState
from providers.linux import files as host_files

SERVICE = "dsrctl-drift.service"
TIMER = "dsrctl-drift.timer"
CRON_FILE = "etc/cron.d/dsrctl"
UNIT_DIR = "etc/systemd/system"
WANTS_DIR = "etc/systemd/system/timers.target.wants"
DEFAULT_EXECUTABLE = "/usr/local/bin/dsrctl"
DEFAULT_SPEC = DEFAULT_SPEC_PATH
_INTERVAL = re.compile(r"^([1-9][0-9]*)(min|h)$")


@dataclass(frozen=True)
class TimerOptions:
    every: str = "15min"
    spec: str = DEFAULT_SPEC
    executable: str = DEFAULT_EXECUTABLE
    prometheus: str | None = None
    fix: bool = False
    delay: str = "5min"

    def words(self) -> list[str]:
        # The unit and the cron job run from "/": paths are made absolute here.
        words = [self.executable, "drift"]
        if self.prometheus:
            words += ["--prometheus", os.path.abspath(self.prometheus)]
        if self.fix:
            words.append("--fix")
        words.append(os.path.abspath(self.spec))
        return words

    def command(self) -> str:
        """The command line for a shell (the cron job's ``sh -c``)."""
        return shlex.join(self.words())

    def exec_start(self) -> str:
        """The command line in systemd's own syntax (ExecStart=)."""
        return " ".join(systemd_word(word) for word in self.words())


_PLAIN_WORD = re.compile(r"^[A-Za-z0-9/._+,:=@-]+$")


def systemd_word(word: str) -> str:
    """One word of an ExecStart= line as systemd reads it back: quoted with C escapes
    where needed, and with ``%`` specifiers and ``$`` variables escaped (systemd expands
    both on ExecStart= lines; a spec path must reach dsrctl as written)."""
    if not _PLAIN_WORD.match(word):
        escaped = word.replace("\\", "\\\\").replace('"', '\\"')
        word = f'"{escaped}"'
    return word.replace("%", "%%").replace("$", "$$")


def interval_minutes(text: str, option: str = "--every") -> int:
    match = _INTERVAL.match(text)
    if match is None:
        raise DsrctlError(f"{option} {text!r}: give minutes or hours, such as 15min or 1h")
    value = int(match.group(1))
    return value * 60 if match.group(2) == "h" else value


def service_unit(options: TimerOptions) -> str:
    return f"""\
# Installed by `dsrctl install-timer`.
[Unit]
Description=dsrctl drift check of the DSR real-server configuration
After=network.target

[Service]
Type=oneshot
ExecStart={options.exec_start()}
# Exit 2 means "drift found": a result, reported through syslog and metrics, not a failure
# of the unit. Exit 1 (the check itself failed) marks the unit failed.
SuccessExitStatus=2
Nice=10
"""


def timer_unit(options: TimerOptions) -> str:
    interval_minutes(options.every)
    interval_minutes(options.delay, "--delay")
    return f"""\
# Installed by `dsrctl install-timer`.
[Unit]
Description=Run dsrctl drift every {options.every}

[Timer]
OnBootSec=2min
OnUnitActiveSec={options.every}
# Spread a fleet's checks; a run still in progress is never started twice.
RandomizedDelaySec={options.delay}
AccuracySec=1min

[Install]
WantedBy=timers.target
"""


def cron_file(options: TimerOptions) -> str:
    minutes = interval_minutes(options.every)
    delay = interval_minutes(options.delay, "--delay") * 60
    if minutes < 60:
        schedule = f"*/{minutes} * * * *"
    elif minutes % 60 == 0 and minutes < 24 * 60:
        schedule = f"0 */{minutes // 60} * * *"
    else:
        raise DsrctlError(f"--every {options.every}: cron takes whole hours below a day")
    inner = f"sleep $(shuf -i 0-{delay} -n 1); {options.command()}"
    # cron turns an unescaped % of the command into a newline (and what follows into
    # the command's standard input).
    line = f"sh -c {shlex.quote(inner)}".replace("%", "\\%")
    return f"""\
# Installed by `dsrctl install-timer --cron`: dsrctl drift every {options.every}.
# flock -n skips a run while the previous one still holds the lock: runs never overlap.
SHELL=/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
{schedule} root flock -n /run/lock/dsrctl-drift.lock {line} >/dev/null 2>&1
"""


def install(options: TimerOptions, root: str = "/", cron: bool = False) -> list[str]:
    """Write the files under ``root``; returns what was done, a line each."""
    done: list[str] = []
    if cron:
        done.append(_write(os.path.join(root, CRON_FILE), cron_file(options)))
        return done
    unit_dir = os.path.join(root, UNIT_DIR)
    done.append(_write(os.path.join(unit_dir, SERVICE), service_unit(options)))
    done.append(_write(os.path.join(unit_dir, TIMER), timer_unit(options)))
    wants = os.path.join(root, WANTS_DIR)
    _ensure_dirs(wants)
    link = os.path.join(wants, TIMER)
    target = os.path.join("/", UNIT_DIR, TIMER)
    if _current_link(link) == target:
        done.append(f"unchanged {link}")
    else:
        host_files.write_symlink(link, target)
        done.append(f"enabled {TIMER} ({link} -> {target})")
    if os.path.realpath(root) == "/" and os.path.isdir("/run/systemd/system"):
        systemctl = shutil.which("systemctl") or "systemctl"
        for args in (["daemon-reload"], ["start", TIMER]):
            result = subprocess.run([systemctl, *args], capture_output=True, text=True)
            if result.returncode != 0:
                raise DsrctlError(f"systemctl {' '.join(args)} failed: {result.stderr.strip()}")
        done.append(f"systemctl daemon-reload; systemctl start {TIMER}")
    return done


def _write(path: str, text: str) -> str:
    # Read and written without following a link on the way (providers.linux.files): a
    # --root or a unit directory others can write must not redirect root's writes.
    data = text.encode()
    current = host_files.read_file(path) if os.path.lexists(path) else None
    if current is not None and current.link is None and current.content == data:
        return f"unchanged {path}"
    _ensure_dirs(os.path.dirname(path))
    host_files.write_file(path, FileState(data, 0o644))
    return f"wrote {path}"


def _current_link(path: str) -> str | None:
    try:
        return host_files.read_symlink(path)
    except ProviderError:
        return None  # a file or directory stands there: replaced by the link


def _ensure_dirs(path: str) -> None:
    """Create the missing directories of ``path``; a link where one should be is refused."""
    missing = []
    while host_files.read_dir(path) is None:
        missing.append(path)
        path = os.path.dirname(path)
    for directory in reversed(missing):
        host_files.make_dir(directory)
