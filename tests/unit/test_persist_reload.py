"""Daemon reloads ride on the change of the file the daemon reads, and keep steps atomic."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsrctl.errors import HostError
from dsrctl.model import FileState
from providers.linux.host import LinuxHost
from providers.linux.persist import reload

ALL = frozenset({"systemd", "networkd", "networkmanager"})


@pytest.mark.parametrize(
    ("path", "running", "commands"),
    [
        ("/etc/systemd/system/dsrctl-vips.service", ALL, [("systemctl", "daemon-reload")]),
        ("/etc/systemd/system/multi-user.target.wants/x", ALL, [("systemctl", "daemon-reload")]),
        ("/etc/systemd/network/10-lo.network.d/90-dsrctl.conf", ALL, [("networkctl", "reload")]),
        ("/etc/systemd/network/10-lo.network.d/90-dsrctl.conf", frozenset({"systemd"}), []),
        (
            "/etc/NetworkManager/system-connections/lo.nmconnection",
            ALL,
            [("nmcli", "connection", "reload")],
        ),
        ("/etc/netplan/90-dsrctl.yaml", ALL, [("netplan", "generate"), ("networkctl", "reload")]),
        ("/etc/network/interfaces.d/dsrctl", ALL, []),
        ("/etc/sysctl.d/90-dsrctl.conf", ALL, []),
        ("/srv/image/etc/systemd/system/dsrctl-vips.service", ALL, []),  # not this host's /etc
    ],
)
def test_which_reload_follows_which_path(
    path: str, running: frozenset[str], commands: list[tuple[str, ...]]
) -> None:
    assert reload.commands_for(path, running) == commands


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[list[tuple[str, ...]]] = []

    def __call__(self, commands: list[tuple[str, ...]]) -> None:
        self.calls.append(commands)
        if self.fail:
            raise HostError("networkctl reload failed (exit 1): Failed to reload network settings")


def host_at(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorder: Recorder) -> LinuxHost:
    """A provider that sees networkd running and reloads for files under tmp_path/etc."""
    monkeypatch.setattr(reload, "run", recorder)
    real = reload.commands_for
    monkeypatch.setattr(
        reload,
        "commands_for",
        lambda path, running: real(path.replace(str(tmp_path), "", 1), running),
    )
    host = LinuxHost()
    host._running = frozenset({"networkd"})
    return host


def test_a_successful_reload_follows_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder()
    host = host_at(tmp_path, monkeypatch, recorder)
    path = tmp_path / "etc/systemd/network/90-dsrctl.conf"
    path.parent.mkdir(parents=True)
    host.write_file(str(path), FileState(b"[Address]\n"))
    assert path.read_bytes() == b"[Address]\n"
    assert recorder.calls == [[("networkctl", "reload")]]
    host.remove_file(str(path))
    assert not path.exists()
    assert len(recorder.calls) == 2


def test_a_failed_reload_puts_the_file_back_and_fails_the_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = host_at(tmp_path, monkeypatch, Recorder(fail=True))
    path = tmp_path / "etc/systemd/network/90-dsrctl.conf"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"old\n")
    path.chmod(0o600)
    with pytest.raises(HostError, match=r"Failed to reload network settings; .* was put back"):
        host.write_file(str(path), FileState(b"new\n", 0o644))
    assert path.read_bytes() == b"old\n"
    assert path.stat().st_mode & 0o777 == 0o600
    new = tmp_path / "etc/systemd/network/new.conf"
    with pytest.raises(HostError):
        host.write_file(str(new), FileState(b"x\n"))
    assert not new.exists()


def test_a_failed_reload_after_a_link_change_restores_the_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = host_at(tmp_path, monkeypatch, Recorder(fail=True))
    link = tmp_path / "etc/systemd/network/x.link"
    link.parent.mkdir(parents=True)
    link.symlink_to("/old")
    with pytest.raises(HostError):
        host.write_symlink(str(link), "/new")
    assert str(link.readlink()) == "/old"
    with pytest.raises(HostError):
        host.remove_symlink(str(link))
    assert str(link.readlink()) == "/old"


def test_without_a_running_daemon_nothing_is_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder(fail=True)
    host = host_at(tmp_path, monkeypatch, recorder)
    host._running = frozenset()
    path = tmp_path / "etc/systemd/network/90-dsrctl.conf"
    path.parent.mkdir(parents=True)
    host.write_file(str(path), FileState(b"x\n"))
    assert recorder.calls == []


def test_run_reports_the_command_and_its_last_words(tmp_path: Path) -> None:
    reload.run([("true",)])
    with pytest.raises(HostError, match=r"^sh -c echo nope >&2; exit 3 failed \(exit 3\): nope$"):
        reload.run([("sh", "-c", "echo nope >&2; exit 3")])
    with pytest.raises(HostError, match="no-such-command-dsrctl failed"):
        reload.run([("no-such-command-dsrctl",)])
