"""Paths under linux.persist.root stay under it: '..' is refused, links in parent
directories are followed inside the root (never on this host), and the file writer
refuses a parent that became a link after the plan (docs/persistence/index.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dsrctl import model
from dsrctl.errors import HostError
from dsrctl.model import FileState, under_root
from providers.linux import files
from providers.linux.persist.tree import Tree


def inside(root: Path, path: str) -> bool:
    real_root = os.path.realpath(root)
    return os.path.commonpath([real_root, os.path.realpath(os.path.dirname(path))]) == real_root


@pytest.mark.parametrize(
    "path", ["/../outside/evil.conf", "/etc/../../evil.conf", "etc/sysctl.d/../../../x", ".."]
)
def test_dot_dot_is_refused_in_one_line(tmp_path: Path, path: str) -> None:
    with pytest.raises(HostError) as caught:
        under_root(str(tmp_path / "root"), path)
    assert "contains '..'" in str(caught.value) and "\n" not in str(caught.value)


def test_paths_are_normalised(tmp_path: Path) -> None:
    root = str(tmp_path)
    assert (
        under_root(root, "etc//sysctl.d/./90-dsrctl.conf")
        == f"{tmp_path}/etc/sysctl.d/90-dsrctl.conf"
    )
    assert under_root("/", "/etc/sysctl.d/90-dsrctl.conf") == "/etc/sysctl.d/90-dsrctl.conf"


@pytest.mark.parametrize("relative", [False, True])
def test_a_linked_parent_is_followed_inside_the_root_not_on_this_host(
    tmp_path: Path, relative: bool
) -> None:
    """root/etc/sysctl.d -> a directory of THIS host: the root's copy of that path is
    used, so nothing is written into this host's directory."""
    victim = tmp_path / "host-sysctl.d"  # stands for this host's /etc/sysctl.d
    victim.mkdir()
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    target = "../" * 12 + str(victim).lstrip("/") if relative else str(victim)
    (root / "etc/sysctl.d").symlink_to(target)
    path = under_root(str(root), "/etc/sysctl.d/90-dsrctl.conf")
    assert path == f"{root}{victim}/90-dsrctl.conf"
    assert inside(root, path)
    with pytest.raises(HostError, match="does not exist"):
        files.write_file(path, FileState(b"x\n"))
    assert list(victim.iterdir()) == []


def test_a_link_inside_the_root_is_followed_there(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr/lib/sysctl.d").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "etc/sysctl.d").symlink_to("/usr/lib/sysctl.d")
    path = under_root(str(root), "/etc/sysctl.d/90-dsrctl.conf")
    assert path == f"{root}/usr/lib/sysctl.d/90-dsrctl.conf"
    files.write_file(path, FileState(b"x\n"))
    assert (root / "usr/lib/sysctl.d/90-dsrctl.conf").read_bytes() == b"x\n"


def test_the_last_component_is_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc/sysctl.d").mkdir(parents=True)
    (root / "etc/sysctl.d/99-sysctl.conf").symlink_to("../sysctl.conf")
    assert under_root(str(root), "/etc/sysctl.d/99-sysctl.conf") == (
        f"{root}/etc/sysctl.d/99-sysctl.conf"
    )
    assert model.resolve_in_root(str(root), "/etc/sysctl.d/99-sysctl.conf", follow_last=True) == (
        "/etc/sysctl.conf"
    )


def test_a_loop_of_links_is_refused(tmp_path: Path) -> None:
    """root/etc/sysctl.d -> /etc/sysctl.d: on the live host that is this host's directory;
    inside the root it names itself."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/sysctl.d").symlink_to("/etc/sysctl.d")
    with pytest.raises(HostError, match="too many levels of symbolic links"):
        under_root(str(root), "/etc/sysctl.d/90-dsrctl.conf")


def test_a_parent_that_became_a_link_after_the_plan_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc/sysctl.d").mkdir(parents=True)
    path = under_root(str(root), "/etc/sysctl.d/90-dsrctl.conf")
    victim = tmp_path / "victim"
    victim.mkdir()
    os.rename(root / "etc/sysctl.d", root / "etc/old")
    (root / "etc/sysctl.d").symlink_to(victim)
    for change in (
        lambda: files.write_file(path, FileState(b"x\n")),
        lambda: files.write_file(path, FileState.symlink("elsewhere")),
        lambda: files.make_dir(path),
        lambda: files.check_parent(path),
    ):
        with pytest.raises(HostError, match=r"parent directory .*/etc/sysctl.d is a symbolic link"):
            change()
    with pytest.raises(HostError, match="is a symbolic link"):
        files.read_file(path)
    assert list(victim.iterdir()) == []


def test_make_dir_refuses_a_link_planted_where_the_directory_goes(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (tmp_path / "10-lo.network.d").symlink_to(victim)
    with pytest.raises(HostError, match="something else is there"):
        files.make_dir(str(tmp_path / "10-lo.network.d"))
    with pytest.raises(HostError, match="not a directory"):
        files.read_dir(str(tmp_path / "10-lo.network.d"))


def test_tree_reads_through_a_linked_parent_inside_the_root_only(tmp_path: Path) -> None:
    host_dir = tmp_path / "host-etc-sysctl.d"
    host_dir.mkdir()
    (host_dir / "10-host.conf").write_text("net.ipv4.conf.all.arp_ignore = 0\n")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/sysctl.d").symlink_to(host_dir)
    tree = Tree(str(root))
    assert tree.listdir("/etc/sysctl.d") == []
    assert tree.read("/etc/sysctl.d/10-host.conf") is None
    assert tree.glob("/etc/sysctl.d/*.conf") == []
    assert tree.glob("/etc/*/10-host.conf") == []
    # The root's own copy of that path is what is read.
    mirror = root / str(host_dir).lstrip("/")
    mirror.mkdir(parents=True)
    (mirror / "20-root.conf").write_text("x = 1\n")
    assert tree.listdir("/etc/sysctl.d") == ["20-root.conf"]
    assert tree.read("/etc/sysctl.d/20-root.conf") == "x = 1\n"
    assert tree.glob("/etc/sysctl.d/*.conf") == ["/etc/sysctl.d/20-root.conf"]


def test_tree_glob_keeps_link_names_and_follows_relative_sources(tmp_path: Path) -> None:
    root = tmp_path / "root"
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True)
    (wants / "networking.service").symlink_to("/lib/systemd/system/networking.service")
    tree = Tree(str(root))
    assert tree.glob("/etc/systemd/system/*.wants/networking.service") == [
        "/etc/systemd/system/multi-user.target.wants/networking.service"
    ]
    (root / "etc/network/interfaces.d").mkdir(parents=True)
    (root / "etc/network/interfaces.d/lo").write_text("auto lo\n")
    (root / "etc/network/interfaces.d/.hidden").write_text("x\n")
    assert tree.glob("/etc/network/../network/interfaces.d/*") == ["/etc/network/interfaces.d/lo"]
