"""A managed file that is a symbolic link (Debian's /etc/sysctl.d/99-sysctl.conf ->
../sysctl.conf): read as a link, shown as one, replaced by a rename and never written
through, and put back as the same link by the inverse step (rollback)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dsrctl.kinds.file import FileStep
from dsrctl.kinds.registry import step_from_record
from dsrctl.model import FileState
from dsrctl.steps import Phase
from providers.linux import files


class Host:
    def write_file(self, path: str, state: FileState) -> None:
        files.write_file(path, state)

    def remove_file(self, path: str) -> None:
        files.remove_file(path)


@pytest.fixture
def debian(tmp_path: Path) -> Path:
    (tmp_path / "etc/sysctl.d").mkdir(parents=True)
    (tmp_path / "etc/sysctl.conf").write_text("# the admin's file\nvm.swappiness = 10\n")
    os.chmod(tmp_path / "etc/sysctl.conf", 0o640)
    (tmp_path / "etc/sysctl.d/99-sysctl.conf").symlink_to("../sysctl.conf")
    return tmp_path


def test_a_link_is_read_as_a_link_not_as_its_target(debian: Path) -> None:
    state = files.read_file(str(debian / "etc/sysctl.d/99-sysctl.conf"))
    assert state == FileState.symlink("../sysctl.conf")
    assert state is not None and state.content == b""
    dangling = debian / "etc/sysctl.d/98-gone.conf"
    dangling.symlink_to("/nonexistent")
    assert files.read_file(str(dangling)) == FileState.symlink("/nonexistent")


def test_apply_replaces_the_link_and_the_inverse_puts_the_same_link_back(debian: Path) -> None:
    path = str(debian / "etc/sysctl.d/99-sysctl.conf")
    before = files.read_file(path)
    wanted = FileState(b"net.ipv4.conf.all.arp_ignore = 1\n", 0o644)
    step = FileStep(f"file:{path}", before, wanted, Phase.PERSIST)
    assert step.action == "update"
    assert step.to_json()["before"] == {"symlink": "../sysctl.conf", "sha256": before.sha256}  # type: ignore[union-attr]

    step.apply(Host())
    assert not os.path.islink(path) and files.read_file(path) == wanted
    target = debian / "etc/sysctl.conf"
    assert target.read_text() == "# the admin's file\nvm.swappiness = 10\n"
    assert oct(target.stat().st_mode & 0o777) == "0o640"

    # The journal keeps the link; the rollback read back from it recreates it.
    record = json.loads(json.dumps(step.to_record()))
    assert record["before"]["link"] == "../sysctl.conf"
    step_from_record(record).inverse().apply(Host())
    assert os.readlink(path) == "../sysctl.conf"
    assert target.read_text() == "# the admin's file\nvm.swappiness = 10\n"


def test_a_link_and_a_file_never_look_equal(debian: Path) -> None:
    link = FileState.symlink("../sysctl.conf")
    assert link != FileState(b"", 0o777)
    assert link.sha256 != FileState(b"").sha256
    assert link.sha256 != FileState.symlink("../other.conf").sha256
    assert link.describe() == "symlink to ../sysctl.conf"


def test_old_journal_records_are_regular_files() -> None:
    old = {"mode": 420, "b64": "YSA9IDEK"}
    assert FileState.from_record(old) == FileState(b"a = 1\n", 0o644)
    assert FileState.from_record(FileState(b"a = 1\n").to_record()) == FileState(b"a = 1\n")
    assert "link" not in FileState(b"a = 1\n").to_record()
    with pytest.raises(ValueError):
        FileState.from_record({"mode": 511, "b64": "", "link": 5})


def test_writing_a_link_value_never_touches_planted_temp_names(tmp_path: Path) -> None:
    """The old link writer unlinked ``.NAME.dsrctl-tmp-PID`` first (whatever was there)."""
    victim = tmp_path / "someone-elses-file"
    victim.write_text("keep\n")
    planted = tmp_path / f".link.dsrctl-tmp-{os.getpid()}"
    planted.symlink_to(victim)
    files.write_symlink(str(tmp_path / "link"), "target")
    assert os.readlink(tmp_path / "link") == "target"
    assert os.readlink(planted) == str(victim) and victim.read_text() == "keep\n"
    assert [p.name for p in tmp_path.iterdir() if "dsrctl-tmp" in p.name] == [planted.name]


def test_the_undo_of_a_failed_apply_puts_a_link_back_as_a_link(debian: Path) -> None:
    """The spare copies staged before an apply (LinuxHost.prepare_undo) must not turn a
    link into an empty 0777 regular file when the apply is undone."""
    from providers.linux.host import LinuxHost

    path = str(debian / "etc/sysctl.d/99-sysctl.conf")
    step = FileStep(f"file:{path}", files.read_file(path), FileState(b"a = 1\n"), Phase.PERSIST)
    host = LinuxHost()
    host._running = frozenset()  # no daemon to reload in a test tree
    host.prepare_undo([step])
    try:
        step.apply(host)
        step.inverse().apply(host)
    finally:
        host.release_undo()
    assert os.readlink(path) == "../sysctl.conf"
    assert [p.name for p in (debian / "etc/sysctl.d").iterdir()] == ["99-sysctl.conf"]
