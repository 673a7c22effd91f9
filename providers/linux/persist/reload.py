"""Telling a running daemon that a file it reads has changed.

A reload is part of the change of a file, not a resource (package docstring). The rule is
a pure function of the path as the live host sees it and of what runs there, so that the
plan can name the reload and the provider runs exactly that after the write. A path
under another root never matches (``/srv/image/etc/...`` is not ``/etc/...``), so no
daemon of this host hears about files written for an image or a test tree.

- /etc/systemd/system: ``systemctl daemon-reload`` (what ``systemctl enable`` does);
- /etc/systemd/network: ``networkctl reload``, so that networkd knows the VIPs before
  anything makes it reconfigure the link (it would drop them otherwise);
- /etc/NetworkManager/system-connections: ``nmcli connection reload`` (profiles only;
  nothing is reapplied);
- /etc/netplan: ``netplan generate`` (the files in /run), then ``networkctl reload``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from providers.errors import HostError
from providers.linux import files
from providers.model import FileState

Command = tuple[str, ...]

_RULES: tuple[tuple[str, str, Command], ...] = (
    ("/etc/systemd/system/", "systemd", ("systemctl", "daemon-reload")),
    ("/etc/systemd/network/", "networkd", ("networkctl", "reload")),
    (
        "/etc/NetworkManager/system-connections/",
        "networkmanager",
        ("nmcli", "connection", "reload"),
    ),
    ("/etc/netplan/", "systemd", ("netplan", "generate")),
    ("/etc/netplan/", "networkd", ("networkctl", "reload")),
)
TIMEOUT = 60


def commands_for(path: str, running: frozenset[str]) -> list[Command]:
    return [
        command
        for prefix, daemon, command in _RULES
        if path.startswith(prefix) and daemon in running
    ]


def describe(commands: list[Command]) -> str:
    return "; ".join(" ".join(command) for command in commands)


def run(commands: list[Command]) -> None:
    import subprocess  # only apply runs commands

    for command in commands:
        try:
            result = subprocess.run(
                list(command), capture_output=True, text=True, timeout=TIMEOUT, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise HostError(f"{' '.join(command)} failed: {exc}") from None
        if result.returncode != 0:
            said = (result.stderr or result.stdout).strip().splitlines()
            raise HostError(
                f"{' '.join(command)} failed (exit {result.returncode})"
                + (f": {said[-1]}" if said else "")
            )


Snapshot = tuple[str, object] | None


def snapshot(path: str) -> Snapshot:
    """What is at ``path`` now, to put back if the reload after a change fails."""
    if os.path.islink(path):
        return ("symlink", files.read_symlink(path))
    state = files.read_file(path)
    return ("file", state) if state is not None else None


def restore(path: str, previous: Snapshot) -> None:
    if previous is None:
        if os.path.islink(path):
            files.remove_symlink(path)
        else:
            files.remove_file(path)
    elif previous[0] == "symlink":
        files.write_symlink(path, str(previous[1]))
    else:
        state = previous[1]
        assert isinstance(state, FileState)
        files.write_file(path, state)


def change_and_reload(path: str, running: frozenset[str], change: Callable[[], None]) -> None:
    """Run ``change()``; then the reloads for ``path``. If a reload fails, put the path
    back as it was and raise, so that the step did nothing (the executor relies on it)."""
    commands = commands_for(path, running)
    if not commands:
        change()
        return
    previous = snapshot(path)
    change()
    try:
        run(commands)
    except HostError as exc:
        restore(path, previous)
        raise HostError(f"{exc}; {path} was put back as it was") from None
