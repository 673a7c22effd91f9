"""Canonical host data: what providers read and what steps write.

Providers turn the host into these objects at the boundary (addresses as compressed
strings with int prefixes, file bytes with their mode), so that everything after them
compares plain values. Plain data and the standard library only: this module imports
nothing of ``dsrctl``; ``dsrctl.model`` re-exports these names and adds the resource ids.
"""

from __future__ import annotations

import base64
import hashlib
import os
import posixpath
from dataclasses import dataclass, field
from typing import Any

from providers.errors import HostError

SysctlValue = int | str
LINK_MODE = 0o777  # what lstat reports for a symbolic link on Linux


@dataclass(frozen=True)
class AddressState:
    """One address on an interface, as the kernel reports it."""

    address: str  # compressed form
    prefix: int
    label: str | None = None  # IPv4 only
    deprecated: bool = False  # IPv6: preferred lifetime 0
    nodad: bool = False  # IPv6: IFA_F_NODAD

    @property
    def version(self) -> int:
        return 6 if ":" in self.address else 4

    @property
    def cidr(self) -> str:
        return f"{self.address}/{self.prefix}"

    def attributes(self) -> dict[str, Any]:
        """The attributes dsrctl manages for this address (what the diff compares)."""
        if self.version == 4:
            return {"label": self.label}
        return {"deprecated": self.deprecated, "nodad": self.nodad}

    def to_record(self) -> dict[str, Any]:
        return {"address": self.address, "prefix": self.prefix, **self.attributes()}


@dataclass(frozen=True)
class RouteState:
    """One route, as the kernel reports it; dsrctl manages local routes in table local
    (``local 198.18.5.0/24 dev lo table local``: AnyIP, a whole range of VIPs)."""

    destination: str  # cidr, compressed
    device: str
    table: str = "local"  # "local", "main" or the table's number
    type: str = "local"  # "local", "unicast"...
    # The metric, as observed: kept to remove or restore exactly this route, but never
    # compared (not even by ==): each boot tool and each family picks its own default.
    priority: int | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        """``local:local:198.18.5.0/24``: the route's id without its kind."""
        return f"{self.table}:{self.type}:{self.destination}"

    @property
    def version(self) -> int:
        return 6 if ":" in self.destination else 4

    def attributes(self) -> dict[str, Any]:
        """What the diff compares (the rest of what dsrctl manages is in the key)."""
        return {"device": self.device}

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "destination": self.destination,
            "table": self.table,
            "type": self.type,
            **self.attributes(),
        }
        if self.priority is not None:
            record["priority"] = self.priority
        return record


@dataclass(frozen=True)
class FileState:
    """A file's bytes and permission bits, or a symbolic link. ``None`` stands for an
    absent file.

    A managed path can be a link (Debian's ``/etc/sysctl.d/99-sysctl.conf ->
    ../sysctl.conf``). Then ``link`` is its target, ``content`` is empty and ``mode`` is
    0o777 (what lstat says): the link is the observed value, so that the plan shows it
    and rollback puts the same link back; dsrctl never reads or writes through it.
    """

    content: bytes
    mode: int = 0o644
    link: str | None = None

    @classmethod
    def symlink(cls, target: str) -> FileState:
        return cls(content=b"", mode=LINK_MODE, link=target)

    @property
    def sha256(self) -> str:
        """Digest of the content; for a link, of its target (marked, so that a link never
        has the digest of any file's bytes and two links differ when their targets do)."""
        if self.link is not None:
            return hashlib.sha256(
                b"symlink\0" + self.link.encode("utf-8", "surrogateescape")
            ).hexdigest()
        return hashlib.sha256(self.content).hexdigest()

    def describe(self) -> str:
        """One line for humans (what `plan` prints): ``symlink to ../sysctl.conf``, or
        ``mode 0644, 3 line(s), sha256 ...`` for a regular file."""
        if self.link is not None:
            return f"symlink to {self.link}"
        lines = self.content.count(b"\n")
        return f"mode {self.mode:04o}, {lines} line(s), sha256 {self.sha256[:12]}"

    def summary(self) -> dict[str, Any]:
        if self.link is not None:
            return {"symlink": self.link, "sha256": self.sha256}
        return {
            "mode": f"{self.mode:04o}",
            "sha256": self.sha256,
            "content": self.content.decode("utf-8", errors="replace"),
        }

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "mode": self.mode,
            "b64": base64.b64encode(self.content).decode("ascii"),
        }
        if self.link is not None:
            record["link"] = self.link
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> FileState:
        """The inverse of to_record(); records written before links were kept (no
        ``link`` key) are regular files. ValueError for a record of the wrong shape."""
        if not isinstance(record, dict):
            raise ValueError(f"a file value must be an object, not {type(record).__name__}")
        link = record.get("link")
        if link is not None:
            if not isinstance(link, str) or not link or "\0" in link:
                raise ValueError(f"a file value's link must be a non-empty string, not {link!r}")
            return cls.symlink(link)
        return cls(content=base64.b64decode(record["b64"]), mode=int(record["mode"]))


@dataclass(frozen=True)
class ClampRule:
    """SYN-ACKs from ``sources`` (networks, canonical: collapsed, sorted) leave with an
    MSS of at most ``mss``."""

    mss: int
    sources: tuple[str, ...]

    def plain(self) -> dict[str, Any]:
        return {"mss": self.mss, "sources": list(self.sources)}


@dataclass(frozen=True)
class MssClamp:
    """dsrctl's nftables table (``table inet dsrctl``): one clamp per IP version, and
    whatever else someone put in the table (``other``: each as nft's JSON, sorted)."""

    ipv4: ClampRule | None = None
    ipv6: ClampRule | None = None
    other: tuple[str, ...] = ()

    def plain(self) -> dict[str, Any]:
        """What the diff compares: ``{"ipv4": {"mss": N, "sources": [...]}, "ipv6": ...}``."""
        data: dict[str, Any] = {
            name: rule.plain()
            for name, rule in (("ipv4", self.ipv4), ("ipv6", self.ipv6))
            if rule is not None
        }
        if self.other:
            data["other"] = list(self.other)
        return data

    to_record = plain

    @classmethod
    def from_record(cls, record: Any) -> MssClamp:
        """The inverse of to_record(); ValueError for a record of the wrong shape."""
        if not isinstance(record, dict) or set(record) - {"ipv4", "ipv6", "other"}:
            raise ValueError(f"not an MSS clamp record: {record!r}")

        def rule(value: Any) -> ClampRule | None:
            if value is None:
                return None
            mss, sources = value["mss"], value["sources"]
            if isinstance(mss, bool) or not isinstance(mss, int) or not isinstance(sources, list):
                raise ValueError(f"not an MSS clamp rule: {value!r}")
            return ClampRule(mss, tuple(str(source) for source in sources))

        other = record.get("other", [])
        if not isinstance(other, list):
            raise ValueError(f"not an MSS clamp record: {record!r}")
        return cls(rule(record.get("ipv4")), rule(record.get("ipv6")), tuple(map(str, other)))

    def __str__(self) -> str:
        parts = [
            f"IPv{version} MSS {rule.mss} for {', '.join(rule.sources)}"
            for version, rule in ((4, self.ipv4), (6, self.ipv6))
            if rule is not None
        ]
        if self.other:
            parts.append(f"{len(self.other)} other item(s) dsrctl did not write")
        return "; ".join(parts) or "empty"


@dataclass(frozen=True)
class TunnelState:
    """A decap device as the kernel reports it (``ip -d link``): its kind (the link kind,
    ``vxlan-gpe`` for a VXLAN device in GPE mode), whether it collects metadata
    (``external``: accepts from any balancer) and whether it is up."""

    kind: str  # "ipip", "gre", "ip6tnl", "ip6gre", "vxlan-gpe", "vxlan", ...
    external: bool
    up: bool

    def attributes(self) -> dict[str, Any]:
        return {"kind": self.kind, "external": self.external, "up": self.up}

    def describe(self) -> str:
        """One line for humans: ``vxlan-gpe external, up``."""
        return f"{self.kind}{' external' if self.external else ''}, {'up' if self.up else 'down'}"

    def to_record(self) -> dict[str, Any]:
        return self.attributes()

    @classmethod
    def from_record(cls, record: Any) -> TunnelState:
        """The inverse of to_record(); ValueError for a record of the wrong shape."""
        if not isinstance(record, dict) or not isinstance(record.get("kind"), str):
            raise ValueError(f"a tunnel value must be an object with a kind, not {record!r}")
        return cls(str(record["kind"]), bool(record["external"]), bool(record["up"]))


@dataclass(frozen=True)
class ModuleState:
    """A kernel module: loaded (or built in), its reference count, and what uses it: the
    modules that hold it (``module:<name>``, each one reference) and, in this network
    namespace, the devices of its link kinds other than its fallback devices and the fou
    ports (``fou:<port>``): unloading a module destroys every such device."""

    loaded: bool
    builtin: bool = False
    refcnt: int = 0
    users: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReadScope:
    """What a provider must read: only the resources the spec and the records name."""

    interface: str
    sysctl_keys: tuple[str, ...]
    files: tuple[str, ...]
    interfaces: tuple[str, ...] = ()  # other interfaces whose addresses are in scope
    symlinks: tuple[str, ...] = ()  # e.g. the wants link that enables a boot unit
    dirs: tuple[str, ...] = ()  # directories dsrctl may create (a drop-in directory)
    routes: tuple[str, ...] = ()  # route keys (RouteState.key) in scope; none: no route read
    mss: bool = False  # read dsrctl's nftables table (the MSS clamp of tunnel mode)
    # sysctls read to judge others (per-interface values behind an effective value), not
    # managed themselves: a key whose interface does not exist reads as None
    observed_sysctls: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()  # kernel modules ([[tunnel]])
    tunnels: tuple[str, ...] = ()  # decap device names
    fou_ports: tuple[int, ...] = ()  # fou/GUE receive ports


@dataclass
class HostState:
    """The DSR-relevant part of a host at one moment."""

    sysctls: dict[str, SysctlValue] = field(default_factory=dict)
    # interface name -> {cidr: AddressState}; an interface that does not exist is absent.
    addresses: dict[str, dict[str, AddressState]] = field(default_factory=dict)
    files: dict[str, FileState | None] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    symlinks: dict[str, str | None] = field(default_factory=dict)  # path -> target
    dirs: dict[str, str | None] = field(default_factory=dict)  # path -> DIRECTORY or None
    routes: dict[str, RouteState] = field(default_factory=dict)  # key -> route (in scope)
    mss: MssClamp | None = None  # dsrctl's nftables table; None: absent (or not read)
    observed_sysctls: dict[str, SysctlValue | None] = field(default_factory=dict)
    modules: dict[str, ModuleState] = field(default_factory=dict)  # every module in scope
    tunnels: dict[str, TunnelState] = field(default_factory=dict)  # those that exist
    fou_ports: dict[int, str] = field(default_factory=dict)  # IPv4 port -> "gue"/"direct"


# The value of an existing directory resource (its mode and owner are not managed).
DIRECTORY = "directory"


# Paths under linux.persist.root. The root is a tree seen from outside (an image, a
# test directory) or this host's "/". A path in the spec or a backend is a path as the
# root sees it; the host path is found the way a chroot would find it: ".." in a path is
# refused, and every link in a PARENT directory is followed inside the root (an absolute
# target is the root's, a ".." in a target stops at the root), never on this host. The
# last component is never followed: a managed path that is a link is managed as a link
# (see FileState). docs/persistence/index.md, "Paths and symbolic links".
MAX_LINKS = 40  # the kernel's limit too


def root_relative(path: str, root: str = "/") -> str:
    """``path`` as seen from the root, normalised: ``/etc//sysctl.d/./x`` ->
    ``/etc/sysctl.d/x``. HostError for a ".." component (it could leave the root)."""
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise HostError(
            f"path {path!r} under linux.persist.root {root} contains '..': dsrctl refuses "
            "paths that could leave the root; write it without '..'"
        )
    return "/" + "/".join(parts)


def resolve_in_root(root: str, path: str, *, follow_last: bool = False) -> str:
    """``path`` (as seen from ``root``) with the links in its parents followed inside the
    root, and the last component too if ``follow_last``. Returns a path as seen from the
    root; a component that does not exist ends the lookup (the rest is kept as written).
    HostError for ".." in ``path`` and for a loop of links."""
    base = os.path.realpath(root)
    pending = root_relative(path, root).split("/")[:0:-1]  # a stack: next component last
    done: list[str] = []
    links = 0
    while pending:
        part = pending.pop()
        if part in ("", "."):
            continue
        if part == "..":  # only from a link target; at the root it stays there (chroot)
            if done:
                done.pop()
            continue
        candidate = [*done, part]
        if pending or follow_last:
            try:
                target = os.readlink(posixpath.join(base, *candidate))
            except OSError:  # not a link, or nothing there
                target = None
            if target is not None:
                links += 1
                if links > MAX_LINKS:
                    raise HostError(
                        f"cannot find {path} under linux.persist.root {root}: too many levels "
                        "of symbolic links"
                    )
                if target.startswith("/"):
                    done = []
                pending.extend(reversed(target.split("/")))
                continue
        done = candidate
    return "/" + "/".join(done)


def under_root(root: str, path: str) -> str:
    """``path`` (as seen from ``root``, linux.persist.root) as a path on this host, always
    inside the root: normalised, ".." refused, links in its parent directories followed
    inside the root (see above). The result has no link in any parent directory, which
    is what the file writer checks again when it writes (providers.linux.files)."""
    resolved = resolve_in_root(root, path)
    return posixpath.join(os.path.realpath(root), resolved.lstrip("/"))
