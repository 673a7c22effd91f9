"""dsrctl as an operator meets it in a namespace: on a pseudo-terminal, answering its
prompt, and as an unprivileged user (uid 65534). Shared by the operator-output tests."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path

from tests.netns.namespaces import Netns

PROMPT = b"Only 'yes' is accepted: "
PYTHON_HOME = Path(sys.executable).resolve().parents[1]
CHECKOUT = Path(__file__).resolve().parents[2]


def read_until(fd: int, wanted: bytes, timeout: float = 30) -> bytes:
    """What ``fd`` gives until ``wanted`` appears, it closes, or ``timeout`` passes."""
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    return seen


def _signal_state(pid: int) -> str:
    """The signal lines of /proc/<pid>/status and the syscall it is in, for a report."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            lines = [line.strip() for line in handle if line.startswith(("SigBlk", "SigIgn"))]
        with open(f"/proc/{pid}/syscall", encoding="ascii") as handle:
            lines.append("syscall " + handle.read().strip())
    except OSError as exc:
        return f"no /proc entry ({exc})"
    return ", ".join(lines)


def waiting_in_read(pid: int, timeout: float = 30) -> None:
    """Return once process ``pid`` blocks in read(2) of its standard input (per
    /proc/<pid>/syscall: syscall 0, first argument 0; ``ip netns exec`` execs dsrctl in
    place, so the pid is dsrctl's), or after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/syscall", encoding="ascii") as handle:
                fields = handle.read().split()
        except OSError:
            return  # gone: the caller's wait() reports it
        if fields[:2] == ["0", "0x0"]:
            time.sleep(0.05)  # and still there a moment later (not a read of the prompt's)
            return
        time.sleep(0.05)


def _as_from_a_shell() -> None:
    """In the child: the terminal becomes its controlling terminal, and Ctrl-C and Ctrl-\\
    act as in an interactive shell. A test run started in the background by a
    non-interactive shell (``pytest &``) ignores SIGINT and SIGQUIT, and a child inherits
    that: Python would then never raise KeyboardInterrupt."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def at_the_prompt(netns: Netns, args: list[str], keys: bytes) -> tuple[int, str]:
    """Run dsrctl on a pseudo-terminal (its controlling terminal: Ctrl-C sends SIGINT); if
    it prompts, type ``keys`` as a person would. The exit code and everything it wrote."""
    env = {**os.environ, "DSRCTL_STATE_DIR": str(netns.state_dir), "NO_COLOR": "1"}
    env.pop("DSRCTL_REQUIRE_NETNS", None)
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        ["ip", "netns", "exec", netns.name, sys.executable, "-m", "dsrctl", *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
        start_new_session=True,
        preexec_fn=_as_from_a_shell,
    )
    os.close(follower)
    try:
        seen = read_until(leader, PROMPT)
        if PROMPT in seen and proc.poll() is None:
            # After the prompt, once dsrctl waits in read() of its terminal: a signal in
            # the microseconds between the prompt and read() is only seen at the next key,
            # and on a loaded machine a fixed pause is not enough.
            waiting_in_read(proc.pid)
            os.write(leader, keys)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            seen += read_until(leader, b"\x00", timeout=1)
            raise AssertionError(
                f"dsrctl {args} still runs 60 s after {keys!r} (prompt seen: {PROMPT in seen}); "
                f"{_signal_state(proc.pid)}; its output: {seen.decode('utf-8', 'replace')!r}"
            ) from None
        seen += read_until(leader, b"\x00", timeout=1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        os.close(leader)
    return code, seen.decode("utf-8", "replace").replace("\r\n", "\n")


def _python_reachable_by_nobody() -> str:
    """A shell snippet that, in a private mount namespace, makes the directory this Python
    lives in reachable for uid 65534 when an ancestor is not (/root is 0700 when Python is
    /root/.pyenv/...): a tmpfs over that ancestor, the needed child bound back into it."""
    path = PYTHON_HOME
    for parent in reversed(path.parents):
        if parent != Path("/") and not os.stat(parent).st_mode & 0o001:
            keep = path.parents[len(path.parents) - len(parent.parents) - 2]
            return (
                f'T=$(mktemp -d) && mount --bind "{keep}" "$T" && '
                f'mount -t tmpfs -o mode=0755 tmpfs "{parent}" && mkdir -p "{keep}" && '
                f'mount --bind "$T" "{keep}" || exit 99; '
            )
    return ""


def as_nobody(netns: Netns, *args: str) -> subprocess.CompletedProcess[str]:
    """dsrctl as uid/gid 65534 in the namespace, nothing changed outside it."""
    script = _python_reachable_by_nobody() + 'exec ip netns exec "$@"'
    env = {**os.environ, "DSRCTL_STATE_DIR": str(netns.state_dir), "NO_COLOR": "1", **netns.env}
    env.pop("DSRCTL_REQUIRE_NETNS", None)
    # This checkout's dsrctl, not whichever one is installed (cwd is / for nobody's sake).
    env["PYTHONPATH"] = str(CHECKOUT)
    command = [
        "unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
        netns.name, "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
        sys.executable, "-m", "dsrctl", *args,
    ]  # fmt: skip
    return subprocess.run(
        command, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, cwd="/"
    )
