"""Issue 12 point 6: long work shows a progress bar on stderr, on a terminal only.

The real CLI runs in a namespace with stdout and stderr on two pseudo-terminals (so each
is a terminal and what was written to stderr can be told apart); DSRCTL_PROGRESS_AFTER=0
shows the bar at once instead of after a second. Without a terminal, or with --json,
stderr stays empty.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time

from tests.netns.namespaces import Netns, write_spec
from tests.netns.test_big_batches import spec_body, vips

# rich's bar: the line of the bar and its percentage column.
BAR = "━"
NOW = {"DSRCTL_PROGRESS_AFTER": "0"}


def on_terminals(
    ns: Netns, *args: str, env: dict[str, str] | None = None, stdout_tty: bool = True
) -> tuple[int, str, str]:
    """Run dsrctl in ``ns`` with stderr (and stdout, unless ``stdout_tty`` is False) on a
    pseudo-terminal of its own; return the exit code, stdout and stderr as written."""
    environment = {
        **os.environ,
        "DSRCTL_STATE_DIR": str(ns.state_dir),
        "TERM": "xterm-256color",
        "COLUMNS": "120",
        **(env or {}),
    }
    for name in ("DSRCTL_REQUIRE_NETNS", "NO_COLOR", "DSRCTL_PROGRESS_AFTER"):
        if env is None or name not in env:
            environment.pop(name, None)
    masters: dict[str, int] = {}
    ends: dict[str, int] = {}
    for name in ("stdout", "stderr") if stdout_tty else ("stderr",):
        masters[name], ends[name] = os.openpty()
    process = subprocess.Popen(
        ["ip", "netns", "exec", ns.name, sys.executable, "-m", "dsrctl", *args],
        stdin=subprocess.DEVNULL,
        stdout=ends["stdout"] if stdout_tty else subprocess.PIPE,
        stderr=ends["stderr"],
        env=environment,
    )
    for end in ends.values():
        os.close(end)
    output = {name: b"" for name in ("stdout", "stderr")}
    streams = {fd: name for name, fd in masters.items()}
    if not stdout_tty:
        assert process.stdout is not None
        streams[process.stdout.fileno()] = "stdout"
    deadline = time.monotonic() + 300
    try:
        while streams and time.monotonic() < deadline:
            ready, _, _ = select.select(list(streams), [], [], 1.0)
            for fd in ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # EIO: the terminal's other end is closed
                    chunk = b""
                if chunk:
                    output[streams[fd]] += chunk
                else:
                    del streams[fd]
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
        for fd in masters.values():
            os.close(fd)
        if process.stdout is not None:
            process.stdout.close()
    return code, output["stdout"].decode(errors="replace"), output["stderr"].decode()


def test_apply_rollback_and_drift_of_thousands_of_vips_show_a_bar_on_a_terminal(
    netns: Netns,
) -> None:
    spec = write_spec(netns, spec_body(netns, vips(3000)))
    code, out, err = on_terminals(netns, "apply", "--auto-approve", str(spec), env=NOW)
    assert code == 0, out + err
    assert "Apply complete" in out
    assert BAR in err and "%" in err and "apply" in err, err
    assert BAR not in out  # the bar is on stderr only

    code, out, err = on_terminals(netns, "drift", str(spec), env=NOW)
    assert code == 0, out + err
    assert BAR in err and "reading the host and comparing" in err, err

    code, out, err = on_terminals(netns, "drift", "--json", str(spec), env=NOW)
    assert code == 0, out + err
    assert err == ""
    assert '"in_sync": true' in out

    code, out, err = on_terminals(netns, "rollback", "--auto-approve", env=NOW)
    assert code == 0, out + err
    assert "Rollback complete" in out
    assert BAR in err and "rollback" in err, err


def test_no_bar_without_a_terminal(netns: Netns) -> None:
    spec = write_spec(netns, spec_body(netns, vips(3000)))
    netns.env.update(NOW)
    piped = netns.dsrctl("apply", "--auto-approve", str(spec))
    assert piped.returncode == 0, piped.stderr
    assert piped.stderr == ""
    drift = netns.dsrctl("drift", str(spec))
    assert drift.returncode == 0 and drift.stderr == ""
    # stderr on a terminal but stdout piped (dsrctl apply | tee log): no bar either.
    code, out, err = on_terminals(netns, "rollback", "--auto-approve", env=NOW, stdout_tty=False)
    assert code == 0, out + err
    assert "Rollback complete" in out
    assert err == ""


def test_quick_work_shows_no_bar(netns: Netns) -> None:
    """Below the threshold (a second by default) there is no bar at all."""
    spec = write_spec(netns, spec_body(netns, vips(2)))
    code, out, err = on_terminals(netns, "apply", "--auto-approve", str(spec))
    assert code == 0, out + err
    assert "Apply complete" in out
    assert err == ""
