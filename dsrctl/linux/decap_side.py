"""The tunnel side of `show`: decap devices, fou ports, kernel modules and the MSS clamp,
on the host and in dsrctl's records, with whether dsrctl manages and created each.

`show` takes no spec: it lists what the host has and what the records name (a device,
port, module or clamp dsrctl manages is listed also when it is missing from the host).
The host reads (``LinuxHost.decap_side``, providers/linux/decap_side.py); the judgement
is here, pure: plain data in. Nothing here is imported unless the host has a decap
device or the records name a tunnel resource (:func:`has_tunnel_side`), so a `show`
without tunnels reads and prints what it did before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from providers.linux.decap_side import DecapSide
    from state.ownership import OwnershipRecord

TUNNEL_RECORDS = ("tunnel", "module", "fou", "nft")
# The devices a module's loading creates (dsrctl.kinds.tunnel.FALLBACK_MODULES): dsrctl
# sets them up or down, never creates or deletes them.
FALLBACK_DEVICES = frozenset({"tunl0", "gre0", "ip6tnl0", "ip6gre0"})


def has_tunnel_side(records: Iterable[str], devices: Iterable[str]) -> bool:
    """Whether `show` has a tunnel side to list: a decap device on the host, or a record
    of a tunnel resource."""
    return any(True for _ in devices) or any(
        resource.partition(":")[0] in TUNNEL_RECORDS for resource in records
    )


def recorded(records: Iterable[str], kind: str) -> list[str]:
    """The names of the records of one kind (``tunnel:dsrgpe0`` -> ``dsrgpe0``)."""
    prefix = f"{kind}:"
    return [resource.removeprefix(prefix) for resource in records if resource.startswith(prefix)]


def describe_decap_side(side: DecapSide, records: Mapping[str, OwnershipRecord]) -> dict[str, Any]:
    """`show --json`'s ``tunnels``: ``devices``, ``fou_ports``, ``fou_note``,
    ``modules`` and ``mss``."""
    return {
        "devices": _devices(side, records),
        "fou_ports": _ports(side, records),
        "fou_note": side.fou_note,
        "modules": _modules(side, records),
        "mss": _mss(side, records),
    }


def _status(record: OwnershipRecord | None) -> dict[str, bool]:
    return {"managed": record is not None, "created_by_dsrctl": bool(record and record.created)}


def _devices(side: DecapSide, records: Mapping[str, OwnershipRecord]) -> list[dict[str, Any]]:
    entries = []
    for name in sorted(set(side.devices) | set(recorded(records, "tunnel"))):
        state = side.devices.get(name)
        record = records.get(f"tunnel:{name}")
        entries.append(
            {
                "name": name,
                "kind": state.kind if state is not None else _recorded_kind(record),
                "external": state.external if state is not None else None,
                "fallback": name in FALLBACK_DEVICES,
                "up": state.up if state is not None else None,
                "on_host": state is not None,
                **_status(record),
            }
        )
    return entries


def _recorded_kind(record: OwnershipRecord | None) -> str | None:
    """The kind a record kept (a device there before dsrctl); None for one dsrctl
    created."""
    original = record.original if record is not None else None
    if isinstance(original, dict) and isinstance(original.get("kind"), str):
        return str(original["kind"])
    return None


def _ports(side: DecapSide, records: Mapping[str, OwnershipRecord]) -> list[dict[str, Any]]:
    found = side.fou_ports or {}
    ports = set(found) | {int(port) for port in recorded(records, "fou") if port.isdigit()}
    return [
        {
            "port": port,
            "type": found.get(port),
            # None: the ports could not be read (fou_note says why)
            "on_host": None if side.fou_ports is None else port in found,
            **_status(records.get(f"fou:{port}")),
        }
        for port in sorted(ports)
    ]


def _modules(side: DecapSide, records: Mapping[str, OwnershipRecord]) -> list[dict[str, Any]]:
    managed = {name.replace("-", "_"): name for name in recorded(records, "module")}
    entries = []
    for name in sorted(set(side.modules) | set(managed)):
        state = side.modules.get(name)
        record = records.get(f"module:{managed.get(name, name)}")
        entries.append(
            {
                "name": name,
                "loaded": state is not None and state.loaded,
                "builtin": state is not None and state.builtin,
                "refcnt": state.refcnt if state is not None else 0,
                "users": list(state.users) if state is not None else [],
                "managed": record is not None,
                "loaded_by_dsrctl": bool(record and record.created),
            }
        )
    return entries


def _mss(side: DecapSide, records: Mapping[str, OwnershipRecord]) -> dict[str, Any]:
    clamp = side.mss
    return {
        # None: the table could not be read (note says why)
        "on_host": (clamp is not None) if side.mss_read else None,
        "ipv4": clamp.ipv4.plain() if clamp is not None and clamp.ipv4 is not None else None,
        "ipv6": clamp.ipv6.plain() if clamp is not None and clamp.ipv6 is not None else None,
        "other": list(clamp.other) if clamp is not None else [],
        "note": side.mss_note,
        **_status(records.get("nft:mss")),
    }
