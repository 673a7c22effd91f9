"""Canonical host data: what providers read and what steps write.

Providers turn the host into these objects at the boundary (addresses as compressed
strings with int prefixes, file bytes with their mode), so that everything after them
compares plain values. Imported by ``providers/``: no typer, no rich here.
"""

from __future__ import annotations

import base64
import hashlib
import posixpath
from dataclasses import dataclass, field
from typing import Any

SysctlValue = int | str


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
class FileState:
    """A file's bytes and permission bits. ``None`` stands for an absent file."""

    content: bytes
    mode: int = 0o644

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    def summary(self) -> dict[str, Any]:
        return {
            "mode": f"{self.mode:04o}",
            "sha256": self.sha256,
            "content": self.content.decode("utf-8", errors="replace"),
        }

    def to_record(self) -> dict[str, Any]:
        return {"mode": self.mode, "b64": base64.b64encode(self.content).decode("ascii")}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> FileState:
        return cls(content=base64.b64decode(record["b64"]), mode=int(record["mode"]))


@dataclass(frozen=True)
class ReadScope:
    """What a provider must read: only the resources the spec and the records name."""

    interface: str
    sysctl_keys: tuple[str, ...]
    files: tuple[str, ...]
    interfaces: tuple[str, ...] = ()  # other interfaces whose addresses are in scope
    symlinks: tuple[str, ...] = ()  # e.g. the wants link that enables a boot unit
    dirs: tuple[str, ...] = ()  # directories dsrctl may create (a drop-in directory)


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


# Resource identifiers: "<kind>:<name>". They key the diff, the steps, the journal and the
# ownership records, so they must be stable across versions.
def sysctl_id(key: str) -> str:
    return f"sysctl:{key}"


def address_id(interface: str, cidr: str) -> str:
    return f"address:{interface}:{cidr}"


def file_id(path: str) -> str:
    return f"file:{path}"


def symlink_id(path: str) -> str:
    return f"symlink:{path}"


def dir_id(path: str) -> str:
    return f"dir:{path}"


# The value of an existing directory resource (its mode and owner are not managed).
DIRECTORY = "directory"


def under_root(root: str, path: str) -> str:
    """``path`` as seen from ``root`` (linux.persist.root), as a path on this host."""
    return posixpath.join(root, path.lstrip("/"))


def split_id(resource: str) -> tuple[str, str]:
    kind, _, name = resource.partition(":")
    return kind, name


def split_address_id(resource: str) -> tuple[str, str]:
    """``address:lo:192.0.2.1/32`` -> ("lo", "192.0.2.1/32")."""
    _, name = split_id(resource)
    interface, _, cidr = name.partition(":")
    return interface, cidr
