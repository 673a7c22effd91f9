"""VIP ranges found on the host, for `show` and `import`.

A range is served by a local route in table local wider than one address (AnyIP:
``local 198.18.5.0/24 dev lo``). The kernel adds such routes itself too: one for every
address, and for an address on lo one for its whole prefix (127.0.0.1/8 gives ``local
127.0.0.0/8``, 198.18.7.1/24 on lo gives ``local 198.18.7.0/24``), all with protocol
``kernel``. A range someone added (``ip route add local ...``: protocol ``boot``;
networkd, NetworkManager or dsrctl: ``static``) has another protocol: those are the
ranges. The host reads the routes (``LinuxHost.local_ranges``); the judgement is here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dsrctl.model import route_id

if TYPE_CHECKING:
    from providers.linux.routes import LocalRange
    from state.ownership import OwnershipRecord


def added_ranges(found: Sequence[LocalRange]) -> list[LocalRange]:
    """The ranges someone added: not the kernel's own routes of addresses, never a
    loopback network."""
    return [
        item
        for item in found
        if item.protocol != "kernel"
        and not ipaddress.ip_network(item.route.destination, strict=False).is_loopback
    ]


def describe_ranges(
    found: Sequence[LocalRange], records: Mapping[str, OwnershipRecord]
) -> list[dict[str, Any]]:
    """`show`: every range on the host and every one dsrctl manages (also when it is
    missing from the host), whether dsrctl manages it and whether it created it."""
    managed = {resource: rec for resource, rec in records.items() if resource.startswith("route:")}
    on_host = {route_id(item.route.key): item for item in found}
    shown = {route_id(item.route.key): item for item in added_ranges(found)}
    shown.update({resource: on_host[resource] for resource in managed if resource in on_host})
    entries = []
    for resource, item in shown.items():
        record = managed.get(resource)
        entries.append(
            {
                "range": item.route.destination,
                "device": item.route.device,
                "table": item.route.table,
                "type": item.route.type,
                "protocol": item.protocol,
                "metric": item.route.priority,
                "on_host": True,
                "managed": record is not None,
                "created_by_dsrctl": record is not None and record.created,
            }
        )
    for resource, record in managed.items():
        if resource in shown:
            continue
        parts = resource.removeprefix("route:").split(":", 2)
        if len(parts) != 3:
            continue
        table, route_type, destination = parts
        entries.append(
            {
                "range": destination,
                "device": _device(record),
                "table": table,
                "type": route_type,
                "protocol": None,
                "metric": None,
                "on_host": False,
                "managed": True,
                "created_by_dsrctl": record.created,
            }
        )
    return sorted(entries, key=_order)


def _device(record: OwnershipRecord) -> str | None:
    original = record.original
    if isinstance(original, dict) and isinstance(original.get("device"), str):
        return str(original["device"])
    return None


def _order(entry: dict[str, Any]) -> tuple[int, int, int]:
    try:
        network = ipaddress.ip_network(entry["range"], strict=False)
    except ValueError:  # a record someone edited: shown last
        return (7, 0, 0)
    return (network.version, int(network.network_address), network.prefixlen)
