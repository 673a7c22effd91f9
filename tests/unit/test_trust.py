"""The spec trust rules (dsrctl.trust): pure functions over stat results, then the walk
over real files owned by an unprivileged user (uid 65534, nobody)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dsrctl import trust
from dsrctl.errors import SpecError

ROOT, ME, NOBODY = 0, 1000, 65534


def st(mode: int, uid: int = ROOT, kind: int = stat.S_IFREG) -> os.stat_result:
    return os.stat_result((kind | mode, 1, 1, 1, uid, 0, 0, 0, 0, 0))


def directory(mode: int, uid: int = ROOT) -> os.stat_result:
    return st(mode, uid, stat.S_IFDIR)


def test_a_root_or_own_file_not_writable_by_others_is_trusted() -> None:
    assert trust.file_problems("/etc/dsrctl/spec.toml", st(0o644), ROOT) == []
    assert trust.file_problems("/etc/dsrctl/spec.toml", st(0o600, ME), ME) == []
    assert trust.file_problems("/etc/dsrctl/spec.toml", st(0o644), ME) == []  # root's file


@pytest.mark.parametrize(
    ("mode", "writers", "fix"),
    [
        (0o666, "group and others (mode 0666)", "chmod go-w"),
        (0o664, "group (mode 0664)", "chmod g-w"),
        (0o646, "others (mode 0646)", "chmod o-w"),
    ],
)
def test_a_file_writable_by_group_or_others_is_not(mode: int, writers: str, fix: str) -> None:
    (problem,) = trust.file_problems("/srv/spec.toml", st(mode), ROOT)
    assert problem.what == f"is writable by {writers}"
    assert problem.fix == f"{fix} /srv/spec.toml"


def test_a_file_owned_by_another_user_is_not() -> None:
    (problem,) = trust.file_problems("/srv/spec.toml", st(0o644, NOBODY), ROOT)
    assert problem.what == (
        "is a file owned by nobody (uid 65534), not by root or the running user"
    )
    assert problem.fix == "chown root /srv/spec.toml"
    # Another user's file, as seen by a third user (plan run unprivileged): also untrusted.
    assert trust.file_problems("/srv/spec.toml", st(0o644, ME), NOBODY) != []


def test_a_directory_writable_by_others_needs_the_sticky_bit() -> None:
    (problem,) = trust.directory_problems("/srv/specs", directory(0o777), ROOT)
    assert "without the sticky bit (mode 0777): they can replace any file" in problem.what
    assert problem.fix == "chmod go-w /srv/specs"
    assert trust.directory_problems("/tmp", directory(0o1777), ROOT) == []
    assert trust.directory_problems("/etc", directory(0o755), ROOT) == []
    (owner,) = trust.directory_problems("/home/bob", directory(0o755, NOBODY), ROOT)
    assert owner.what.startswith("is a directory owned by nobody (uid 65534)")


def test_kind_of_names_what_is_not_a_regular_file() -> None:
    assert trust.kind_of(st(0o644)) is None
    assert trust.kind_of(st(0o644, kind=stat.S_IFIFO)) == "a FIFO"
    assert trust.kind_of(st(0o666, kind=stat.S_IFCHR)) == "a character device"
    assert trust.kind_of(directory(0o755)) == "a directory"


def test_check_path_walks_the_real_files(tmp_path: Path) -> None:
    base = tmp_path / "specs"
    base.mkdir(mode=0o755)
    spec = base / "spec.toml"
    spec.write_text("version = 1\n")
    spec.chmod(0o644)
    assert trust.check_path(str(spec)) == []

    os.chown(spec, NOBODY, NOBODY)
    (problem,) = trust.check_path(str(spec))
    assert problem.path == str(spec) and "owned by nobody" in problem.what
    os.chown(spec, 0, 0)

    base.chmod(0o777)
    (problem,) = trust.check_path(str(spec))
    assert problem.path == str(base) and "without the sticky bit" in problem.what
    base.chmod(0o1777)
    assert trust.check_path(str(spec)) == []
    base.chmod(0o755)

    # A symlink to the spec: the link's directory, the link's owner and the target count.
    links = tmp_path / "links"
    links.mkdir(mode=0o755)
    link = links / "spec.toml"
    link.symlink_to(spec)
    assert trust.check_path(str(link)) == []
    os.lchown(link, NOBODY, NOBODY)
    (problem,) = trust.check_path(str(link))
    assert problem.path == str(link) and "is a symlink owned by nobody" in problem.what
    os.lchown(link, 0, 0)
    spec.chmod(0o666)
    (problem,) = trust.check_path(str(link))
    assert problem.path == str(spec) and problem.fix == f"chmod go-w {spec}"


def test_check_path_leaves_a_missing_file_to_the_loader(tmp_path: Path) -> None:
    assert trust.check_path(str(tmp_path / "missing.toml")) == []
    trust.require_regular(str(tmp_path / "missing.toml"))  # no error: the loader says it


def test_require_regular_refuses_a_fifo_before_opening_it(tmp_path: Path) -> None:
    fifo = tmp_path / "spec.toml"
    os.mkfifo(fifo)
    with pytest.raises(SpecError, match="is a FIFO, not a spec file"):
        trust.require_regular(str(fifo))


def test_refusal_names_the_path_the_problem_the_fix_and_that_nothing_changed(
    tmp_path: Path,
) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text("version = 1\n")
    spec.chmod(0o646)
    with pytest.raises(trust.UntrustedFile) as caught:
        trust.refuse_untrusted(str(spec), "spec", "apply")
    assert str(caught.value) == (
        f"refusing to apply: the spec {spec} can be changed by someone other than root and "
        f"the running user: {spec} is writable by others (mode 0646) "
        f"(fix: chmod o-w {spec}); nothing was changed"
    )
    (note,) = trust.untrusted_notes(str(spec), "spec", "apply")
    assert note.endswith("; apply will refuse it")
