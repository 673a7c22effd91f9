"""Resource identifiers, and the canonical host data of ``providers.model`` re-exported.

The host data (``AddressState``, ``FileState``, ``HostState``, ``ReadScope``, the paths
under linux.persist.root) is the providers' own, in ``providers/model.py``; the names
are re-exported here so that dsrctl code imports its model from one place. What is
dsrctl's only is here: the ids that key the diff, the steps, the journal and the
ownership records.
"""

from __future__ import annotations

from providers.model import (
    DIRECTORY,
    LINK_MODE,
    MAX_LINKS,
    AddressState,
    ClampRule,
    FileState,
    HostState,
    MssClamp,
    ReadScope,
    RouteState,
    SysctlValue,
    TunnelState,
    resolve_in_root,
    root_relative,
    under_root,
)

__all__ = [
    "DIRECTORY",
    "LINK_MODE",
    "MAX_LINKS",
    "AddressState",
    "ClampRule",
    "FileState",
    "HostState",
    "MssClamp",
    "ReadScope",
    "RouteState",
    "SysctlValue",
    "TunnelState",
    "address_id",
    "dir_id",
    "file_id",
    "resolve_in_root",
    "root_relative",
    "route_id",
    "split_address_id",
    "split_id",
    "symlink_id",
    "sysctl_id",
    "under_root",
]


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


def route_id(key: str) -> str:
    """``route:local:local:198.18.5.0/24`` from a RouteState.key."""
    return f"route:{key}"


def split_id(resource: str) -> tuple[str, str]:
    kind, _, name = resource.partition(":")
    return kind, name


def split_address_id(resource: str) -> tuple[str, str]:
    """``address:lo:192.0.2.1/32`` -> ("lo", "192.0.2.1/32")."""
    _, name = split_id(resource)
    interface, _, cidr = name.partition(":")
    return interface, cidr
