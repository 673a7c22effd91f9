"""From a spec and the ownership records to the desired state and the read scope.

Pure: no host access. The desired state (``Desired``, in dsrctl.kinds.base) is the
spec's resources plus, for resources dsrctl once managed and the spec no longer names,
their way back: delete what dsrctl created, restore what it changed to the value
recorded before its first change. The way back and the read scope are each kind's
(dsrctl.kinds.registry).
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING

from dsrctl.kinds.base import Desired
from dsrctl.kinds.registry import BY_NAME, LINUX
from dsrctl.kinds.route import route_state
from dsrctl.linux.tunnels import add_tunnels
from dsrctl.model import (
    AddressState,
    FileState,
    ReadScope,
    RouteState,
    SysctlValue,
    address_id,
    file_id,
    route_id,
    split_address_id,
    split_id,
    symlink_id,
    sysctl_id,
    under_root,
)
from dsrctl.spec import Spec
from state.ownership import Ownership

if TYPE_CHECKING:
    from dsrctl.linux.mss import MssPlan
    from dsrctl.linux.persistence import Persistence

__all__ = [
    "SYSCTL_FILE_MODE",
    "Desired",
    "build_desired",
    "dropped_ranges",
    "dropped_vips",
    "range_states",
    "read_scope",
    "set_sysctl_file",
    "sysctl_file_content",
    "vip_state",
    "vip_states",
]

SYSCTL_FILE_MODE = 0o644


def build_desired(
    spec: Spec,
    ownership: Ownership,
    persistence: Persistence | None = None,
    mss: MssPlan | None = None,
) -> Desired:
    """``persistence``: what the VIP persistence backend wants on disk (dsrctl.linux.persistence);
    without it, only the sysctl file is persisted. ``mss``: the MSS clamp of the spec's
    tunnels and its files (dsrctl.linux.mss)."""
    from dsrctl.linux.effective import tunnel_notes, tunnel_sysctls

    desired = Desired()
    linux = spec.linux
    # rp_filter 0 for the tunnels' decap devices; the spec's own keys win (a conflicting
    # one is refused by dsrctl.linux.checks).
    desired.sysctls = linux.all_sysctls()
    for key, value in tunnel_sysctls(spec).items():
        desired.sysctls.setdefault(key, value)
    desired.step_notes.update(tunnel_notes(spec))
    desired.addresses[linux.interface] = {state.cidr: state for state in vip_states(spec)}
    desired.routes = {state.key: state for state in range_states(spec)}
    set_sysctl_file(desired, spec)
    if persistence is not None:
        for cidr, label in persistence.labels.items():  # e.g. ifcfg's alias lo:N
            state = desired.addresses[linux.interface][cidr]
            desired.addresses[linux.interface][cidr] = dataclasses.replace(state, label=label)
        desired.files.update(persistence.files)
        desired.symlinks.update(persistence.symlinks)
        desired.dirs.update(persistence.dirs)
        desired.notes += persistence.notes
    if mss is not None:
        mss.add_to(desired)
    desired.spec_resources = (
        {sysctl_id(key) for key in desired.sysctls}
        | {address_id(linux.interface, cidr) for cidr in desired.addresses[linux.interface]}
        | {route_id(key) for key in desired.routes}
        | {file_id(path) for path in desired.files}
        | (persistence.resources() if persistence is not None else set())
        | (mss.resources() if mss is not None else set())
    )
    desired.spec_resources |= add_tunnels(desired, spec)  # [[tunnel]]: dsrctl/linux/tunnels.py
    _add_way_back(desired, ownership)
    if persistence is not None:
        for resource in [*map(file_id, desired.files), *map(symlink_id, desired.symlinks)]:
            note = persistence.reload_note(split_id(resource)[1])
            if note:
                desired.step_notes[resource] = note
    return desired


def set_sysctl_file(desired: Desired, spec: Spec) -> None:
    """dsrctl's sysctl file with ``desired.sysctls`` (again after the planner adds keys
    computed from the host)."""
    persist = spec.linux.persist
    if persist.enabled:
        content = sysctl_file_content(os.path.abspath(spec.path), desired.sysctls)
        path = under_root(persist.root, persist.sysctl_file)
        desired.files[path] = FileState(content, SYSCTL_FILE_MODE)


def vip_states(spec: Spec) -> list[AddressState]:
    """The address state each single VIP of the spec must have, in spec order."""
    interface = spec.linux.interface
    return [
        vip_state(vip.address.compressed, vip.prefix, vip.label, interface)
        for vip in spec.vips
        if not vip.is_range
    ]


def range_states(spec: Spec) -> list[RouteState]:
    """The local route each VIP range of the spec must have, in spec order."""
    return [route_state(vip.cidr, spec.linux.interface) for vip in spec.vips if vip.is_range]


def dropped_ranges(spec: Spec, ownership: Ownership) -> frozenset[str]:
    """Ranges (cidr) whose route dsrctl added and the spec no longer names."""
    wanted = {state.key for state in range_states(spec)}
    return frozenset(
        resource.rsplit(":", 1)[-1]
        for resource, record in ownership.records.items()
        if resource.startswith("route:") and record.created
        if split_id(resource)[1] not in wanted
    )


def dropped_vips(spec: Spec, ownership: Ownership) -> frozenset[str]:
    """VIPs (cidr) on the spec's interface that dsrctl added and the spec no longer names."""
    wanted = {vip.cidr for vip in spec.vips if not vip.is_range}
    return frozenset(
        cidr
        for resource, record in ownership.records.items()
        if resource.startswith("address:") and record.created
        for interface, cidr in [split_address_id(resource)]
        if interface == spec.linux.interface and cidr not in wanted
    )


def vip_state(address: str, prefix: int, label: str | None, interface: str) -> AddressState:
    if ":" in address:
        # Deprecated (preferred_lft 0) so the host never picks the VIP as a source address;
        # no DAD, so it is usable at once.
        return AddressState(address, prefix, deprecated=True, nodad=True)
    # The kernel labels an address with the interface name when none is given.
    return AddressState(address, prefix, label=label or interface)


def sysctl_file_content(spec_path: str, values: dict[str, SysctlValue]) -> bytes:
    from providers.linux.persist import comment_text

    # The spec refuses such paths; the header escapes them anyway (a line break in it
    # would start a sysctl line of its own).
    lines = [
        f"# Managed by dsrctl from {comment_text(spec_path)}; edits here are reverted by "
        "'dsrctl apply'.",
        "# The ARP keys keep this host from answering ARP for its DSR VIPs (see dsrctl docs).",
    ]
    lines += [f"{key} = {value}" for key, value in values.items()]
    return ("\n".join(lines) + "\n").encode()


def _add_way_back(desired: Desired, ownership: Ownership) -> None:
    for resource, record in sorted(ownership.records.items()):
        if resource in desired.spec_resources:
            continue
        kind_name, _, name = resource.partition(":")
        kind = BY_NAME.get(kind_name)
        if kind is not None:
            kind.way_back(desired, name, record)


def read_scope(spec: Spec, desired: Desired, ownership: Ownership) -> ReadScope:
    scope = ReadScope(interface=spec.linux.interface, sysctl_keys=(), files=())
    for kind in LINUX:
        scope = kind.scope(scope, desired, ownership)
    return scope
