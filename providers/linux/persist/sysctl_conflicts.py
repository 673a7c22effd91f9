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
a leading ``-`` (ignore errors) is dropped, and glob keys (``net.ipv4.conf.*.rp_filter``,
systemd 245 and later) are matched against dsrctl's keys.
"""

from __future__ import annotations

import fnmatch
import posixpath

from providers.linux.persist.tree import Tree, boots_with_systemd, first_by_name
from providers.linux.sysctl_keys import ARP_ANNOUNCE_KEY, ARP_IGNORE_KEY
from providers.model import SysctlValue

SYSCTL_DIRS = (
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
)
SYSCTL_CONF = "/etc/sysctl.conf"


def parse(text: str) -> list[tuple[str, str]]:
    """(key, value) of each assignment, keys in dotted form."""
    entries = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        key, sep, value = line.partition("=")
        if not sep:
            continue
        key = key.strip().lstrip("-")
        if "/" in key and ("." not in key or key.index("/") < key.index(".")):
            key = key.translate(str.maketrans("./", "/."))  # sysctl(8): slashes separate
        entries.append((key, " ".join(value.split())))
    return entries


def overrides(files: list[tuple[str, str]], own: str, wanted: dict[str, SysctlValue]) -> list[str]:
    """Warnings for keys of ``wanted`` that files read after ``own`` set to another value.

    ``files``: (path, text) in the order systemd-sysctl reads them, ``own`` among them."""
    names = [path for path, _ in files]
    if own not in names:
        return []
    last: dict[str, tuple[str, str]] = {}
    for path, text in files[names.index(own) + 1 :]:
        for pattern, value in parse(text):
            for key in wanted:
                if fnmatch.fnmatchcase(key, pattern):
                    last[key] = (path, value)
    warnings = []
    for key, (path, value) in last.items():
        ours = " ".join(str(wanted[key]).split())
        if value == ours:
            continue
        effect = (
            "the host would answer ARP for its VIPs after a reboot"
            if key in (ARP_IGNORE_KEY, ARP_ANNOUNCE_KEY)
            else "the value would change at the next boot"
        )
        remedy = "" if path.startswith(f"{SYSCTL_CONF} ") else " or rename one of the files"
        warnings.append(
            f"WARNING: {path} sets {key} = {value} and is read after {posixpath.basename(own)}, "
            f"so at boot it overrides dsrctl's {ours}: {effect}; remove that line{remedy}"
        )
    return warnings


def scan(root: str, sysctl_file: str, wanted: dict[str, SysctlValue]) -> list[str]:
    """Warnings for the sysctl file ``sysctl_file`` (as seen from ``root``)."""
    if posixpath.dirname(sysctl_file) not in SYSCTL_DIRS:
        return []  # not read at boot by systemd-sysctl at all: nothing to compare with
    tree = Tree(root)
    files = [  # systemd-sysctl's order; a link names what it points to
        (_describe(tree, path), text) for path, text in first_by_name(tree, SYSCTL_DIRS, ".conf")
    ]
    if not boots_with_systemd(root):
        text = tree.read(SYSCTL_CONF)
        if text is not None:
            files.append((f"{SYSCTL_CONF} (read last by 'sysctl --system')", text))
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
    return overrides(files, sysctl_file, wanted) + unreadable


def _describe(tree: Tree, path: str) -> str:
    target = tree.resolve(path)
    return path if target == path else f"{path} (a link to {target})"


def _order(described: str) -> str:
    """The name systemd-sysctl sorts a file by; /etc/sysctl.conf read by procps comes last."""
    if described.startswith(f"{SYSCTL_CONF} "):
        return "\U0010ffff"
    return posixpath.basename(described.split(" ")[0])
