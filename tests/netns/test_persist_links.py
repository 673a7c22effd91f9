"""Symbolic links in the persistence tree through the real CLI (issue 9, finding 6): a
managed file that is a link is replaced and put back as the same link, never written
through; a linked parent directory never leads out of linux.persist.root."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.netns.namespaces import SPEC, Netns, write_spec

ADMIN = "# the admin's own file\nvm.swappiness = 10\n"


def test_a_linked_sysctl_file_is_planned_replaced_and_rolled_back_as_a_link(
    netns: Netns,
) -> None:
    etc = netns.workdir / "etc"
    (etc / "sysctl.conf").write_text(ADMIN)
    os.chmod(etc / "sysctl.conf", 0o640)
    link = etc / "sysctl.d/99-sysctl.conf"
    link.symlink_to("../sysctl.conf")
    spec = write_spec(netns, SPEC)
    spec.write_text(
        spec.read_text().replace(
            "[linux.persist]\n", '[linux.persist]\nsysctl_file = "/etc/sysctl.d/99-sysctl.conf"\n'
        )
    )
    planned = netns.dsrctl("plan", "--json", str(spec))
    assert planned.returncode == 0, planned.stderr
    (change,) = [c for c in json.loads(planned.stdout)["changes"] if c["kind"] == "file"]
    assert change["action"] == "update"
    assert change["before"]["symlink"] == "../sysctl.conf"
    assert "content" not in change["before"]

    applied = netns.dsrctl("apply", "--auto-approve", str(spec))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert not link.is_symlink() and "arp_ignore" in link.read_text()
    assert (etc / "sysctl.conf").read_text() == ADMIN
    assert (etc / "sysctl.conf").stat().st_mode & 0o777 == 0o640

    rolled = netns.dsrctl("rollback", "--auto-approve")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert os.readlink(link) == "../sysctl.conf"
    assert (etc / "sysctl.conf").read_text() == ADMIN


def test_a_linked_sysctl_directory_never_sends_the_file_out_of_the_root(
    netns: Netns, tmp_path: Path
) -> None:
    """<root>/etc/sysctl.d -> an absolute directory of this host (as on the live host it
    would be): the root's copy of that path is meant, which does not exist, so apply
    refuses and this host's directory stays empty."""
    outside = tmp_path / "this-hosts-sysctl.d"
    outside.mkdir()
    sysctl_d = netns.workdir / "etc/sysctl.d"
    sysctl_d.rmdir()
    sysctl_d.symlink_to(outside)
    spec = write_spec(
        netns, SPEC + f'\n[linux.persist]\nroot = "{netns.workdir}"\naddresses = "none"\n'
    )
    planned = netns.dsrctl("plan", str(spec))
    assert f"{netns.workdir}{outside}/90-dsrctl.conf" in planned.stdout, planned.stderr
    applied = netns.dsrctl("apply", "--auto-approve", str(spec))
    assert applied.returncode == 1
    assert "does not exist" in applied.stderr and "Traceback" not in applied.stderr
    assert list(outside.iterdir()) == []


def test_a_dot_dot_sysctl_file_is_refused_and_nothing_is_written_outside(
    netns: Netns, tmp_path: Path
) -> None:
    spec = write_spec(netns, SPEC)
    spec.write_text(
        spec.read_text().replace(
            "[linux.persist]\n", '[linux.persist]\nsysctl_file = "/../outside/evil.conf"\n'
        )
    )
    (netns.workdir.parent / "outside").mkdir()
    for command in (["plan"], ["apply", "--auto-approve"]):
        result = netns.dsrctl(*command, str(spec))
        assert result.returncode == 1, command
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert list((netns.workdir.parent / "outside").iterdir()) == []
