"""sysctl.d files that would undo dsrctl's sysctl file at boot.

systemd-sysctl (and ``sysctl --system``) read every ``*.conf`` in /etc/sysctl.d,
/run/sysctl.d, /usr/local/lib/sysctl.d and /usr/lib/sysctl.d (and /lib/sysctl.d where /usr
is not merged), one file per name (/etc first), all of them sorted by name; for a key set
twice, the last assignment wins. So a ``99-*.conf`` that sets ``arp_ignore = 0`` quietly
puts back ARP flux at the next boot, although ``drift`` sees nothing wrong until then.
dsrctl does not own those files and does not change them; it says so in every plan.

``/etc/sysctl.conf`` counts where it is still read at boot: through a link in sysctl.d
(``99-sysctl.conf -> ../sysctl.conf``, which Debian before 13, Ubuntu and RHEL ship), at
that link's place in the order; and, on a host that systemd does not boot, after
everything else, since procps' ``sysctl --system`` (what its boot script runs) reads it
last. Debian 13's systemd reads neither.

Keys are compared in sysctl(8)'s dotted form (a key written with slashes is converted),
a leading ``-`` (ignore errors) is dropped. Glob keys (``net.ipv4.conf.*.rp_filter``,
systemd 245 and later) follow sysctl.d(5): a glob writes every key it matches *except*
keys that any file assigns explicitly, and a ``-key`` line without ``=`` only excludes
that key from the globs; for one key (or one glob) assigned twice, the later file wins.
So under systemd a glob line never overrides a key of dsrctl's file. procps' ``sysctl
--system`` (a host that systemd does not boot) applies the lines in order, globs
included, so there a later glob does.

The same reading answers `show`'s question "which file and line sets this key at boot"
(:func:`boot_sources`). Per-interface keys (``net.ipv4.conf.<dev>.*``) are applied again
by systemd-sysctl when udev sees the device appear (99-systemd.rules runs
``systemd-sysctl --prefix=/net/ipv4/conf/$name`` on ``add``), with the same rules, so a
device created after boot gets its line too; until then it has conf.default's value.
"""

from __future__ import annotations

import fnmatch
import posixpath
from dataclasses import dataclass
from typing import Any

from providers.linux.persist.tree import Tree, boots_with_systemd, first_by_name
from providers.linux.sysctl_keys import ARP_ANNOUNCE_KEY, ARP_IGNORE_KEY, canonical_key, split_key
from providers.model import SysctlValue

SYSCTL_DIRS = (
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
)
SYSCTL_CONF = "/etc/sysctl.conf"
_GLOB = frozenset("*?[")


@dataclass(frozen=True)
class Assignment:
    """One line of a sysctl.d file."""

    path: str  # as described: a link names its target
    line: int  # 1-based
    key: str  # dotted form; may be a glob
    value: str | None  # None: a ``-key`` line without ``=`` (excluded from the globs)

    @property
    def glob(self) -> bool:
        return any(c in _GLOB for c in self.key)

    def where(self) -> str:
        """``/etc/sysctl.d/99-x.conf line 3``; a glob line adds itself."""
        where = f"{self.path} line {self.line}"
        return f"{where} ({self.key} = {self.value})" if self.glob else where

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "line": self.line,
            "key": self.key,
            "value": self.value,
            "glob": self.glob,
        }


def assignments(path: str, text: str) -> list[Assignment]:
    """The assignments of one file, keys in dotted form, values whitespace-normalised."""
    found = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep and not key.startswith("-"):
            continue  # not an assignment: systemd-sysctl logs and skips it
        key = key[1:].strip() if key.startswith("-") else key
        if "/" in key and ("." not in key or key.index("/") < key.index(".")):
            key = key.translate(str.maketrans("./", "/."))  # sysctl(8): slashes separate
        shown = " ".join(value.split()) if sep else None
        found.append(Assignment(path, number, key, shown))
    return found


def parse(text: str) -> list[tuple[str, str]]:
    """(key, value) of each assignment, keys in dotted form."""
    return [(a.key, a.value) for a in assignments("", text) if a.value is not None]


def matches(pattern: str, key: str) -> bool:
    """Whether a sysctl.d key (maybe a glob) names ``key``: glob(7) on the /proc/sys path,
    so ``*`` never crosses a component (it matches ``eth0.100`` but not ``a.b`` parts)."""
    if not any(c in _GLOB for c in pattern):
        return canonical_key(pattern) == canonical_key(key)
    have, want = split_key(key), split_key(pattern)
    return len(have) == len(want) and all(map(fnmatch.fnmatchcase, have, want))


def applied(files: list[tuple[str, str]], key: str, systemd: bool = True) -> Assignment | None:
    """The line that sets ``key`` at boot, or None. ``files``: (path, text) in the order
    they are read; ``systemd``: systemd-sysctl's rules, else procps' (module docstring)."""
    key = canonical_key(key)
    lines = [a for path, text in files for a in assignments(path, text)]
    if not systemd:
        found = None
        for a in lines:
            if a.value is not None and (a.key == key or (a.glob and matches(a.key, key))):
                found = a
        return found
    options: dict[str, Assignment] = {}  # in the order of their last change, like systemd's
    for a in lines:
        name = a.key if a.glob else canonical_key(a.key)
        earlier = options.get(name)
        if earlier is not None:
            if earlier.value == a.value:
                continue  # systemd keeps the first of two equal assignments
            del options[name]
        options[name] = a
    if key in options:  # explicit: no glob touches it; a bare "-key" sets nothing
        explicit = options[key]
        return explicit if explicit.value is not None else None
    found = None
    for a in options.values():  # globs are written in that order: the last match wins
        if a.glob and a.value is not None and matches(a.key, key):
            found = a
    return found


def _effect(key: str, ours: str) -> str:
    if key in (ARP_IGNORE_KEY, ARP_ANNOUNCE_KEY):
        return "the host would answer ARP for its VIPs after a reboot"
    parts = split_key(key)
    if parts[-1] == "rp_filter" and ours == "0":
        return "decapsulated tunnel packets would be dropped after a reboot"
    if parts[-1] in ("arp_ignore", "arp_announce"):
        return "the host could answer ARP for its VIPs after a reboot"
    return "the value would change at the next boot"


def overrides(
    files: list[tuple[str, str]],
    own: str,
    wanted: dict[str, SysctlValue],
    systemd: bool = True,
) -> list[str]:
    """Warnings for keys of ``wanted`` that another file sets to another value at boot.

    ``files``: (path, text) in the order systemd-sysctl reads them, ``own`` among them;
    ``own`` counts with the content dsrctl writes (``wanted``), whatever it holds now."""
    names = [path for path, _ in files]
    if own not in names:
        return []
    content = "\n".join(f"{key} = {value}" for key, value in wanted.items())
    files = [(path, content if path == own else text) for path, text in files]
    warnings = []
    for key, value in wanted.items():
        ours = " ".join(str(value).split())
        line = applied(files, key, systemd)
        if line is None or line.path == own or line.value == ours:
            continue
        remedy = "" if line.path.startswith(f"{SYSCTL_CONF} ") else " or rename one of the files"
        warnings.append(
            f"WARNING: {line.where()} sets {canonical_key(key)} = {line.value} and is read "
            f"after {posixpath.basename(own)}, so at boot it overrides dsrctl's {ours}: "
            f"{_effect(canonical_key(key), ours)}; remove that line{remedy}"
        )
    return warnings


def boot_files(tree: Tree) -> tuple[list[tuple[str, str]], bool]:
    """(path, text) of every file read at boot under the tree's root, in order, and
    whether systemd reads them (else procps' ``sysctl --system``)."""
    files = [  # systemd-sysctl's order; a link names what it points to
        (_describe(tree, path), text) for path, text in first_by_name(tree, SYSCTL_DIRS, ".conf")
    ]
    systemd = boots_with_systemd(tree.root)
    if not systemd:
        text = tree.read(SYSCTL_CONF)
        if text is not None:
            files.append((f"{SYSCTL_CONF} (read last by 'sysctl --system')", text))
    return files, systemd


def boot_sources(root: str, keys: list[str]) -> dict[str, Assignment | None]:
    """For each key, the line that sets it at boot under ``root``, or None."""
    files, systemd = boot_files(Tree(root))
    return {key: applied(files, key, systemd) for key in keys}


def scan(root: str, sysctl_file: str, wanted: dict[str, SysctlValue]) -> list[str]:
    """Warnings for the sysctl file ``sysctl_file`` (as seen from ``root``)."""
    if posixpath.dirname(sysctl_file) not in SYSCTL_DIRS:
        return []  # not read at boot by systemd-sysctl at all: nothing to compare with
    tree = Tree(root)
    files, systemd = boot_files(tree)
    unreadable = [
        f"cannot read {path} (permission denied): whether it overrides dsrctl's sysctls at "
        "boot is unknown; run as root"
        for path in tree.unreadable
    ]
    name = posixpath.basename(sysctl_file)
    taken = {posixpath.basename(path.split(" ")[0]): path for path, _ in files}
    if taken.get(name, sysctl_file) != sysctl_file:
        return [
            f"WARNING: {taken[name]} has the same name as {sysctl_file} and takes its place "
            "at boot, so systemd-sysctl never reads dsrctl's file; rename one of them"
        ]
    if name not in taken:  # not written yet: where it will be read
        position = sum(1 for path, _ in files if _order(path) < name)
        files.insert(position, (sysctl_file, ""))
    late = [key for key in wanted if _per_device(key)]
    if late and not systemd:
        unreadable.append(
            "systemd does not boot this host: procps' 'sysctl --system' applies "
            f"{', '.join(late)} once, early at boot, and only to devices that exist by then "
            "(no udev rule applies them when a device appears later); create those devices "
            "before it runs, or set the keys where they are created"
        )
    return overrides(files, sysctl_file, wanted, systemd) + unreadable


def _per_device(key: str) -> bool:
    parts = split_key(key)
    return len(parts) == 5 and parts[2] == "conf" and parts[3] not in ("all", "default")


def _describe(tree: Tree, path: str) -> str:
    target = tree.resolve(path)
    return path if target == path else f"{path} (a link to {target})"


def _order(described: str) -> str:
    """The name systemd-sysctl sorts a file by; /etc/sysctl.conf read by procps comes last."""
    if described.startswith(f"{SYSCTL_CONF} "):
        return "\U0010ffff"
    return posixpath.basename(described.split(" ")[0])
