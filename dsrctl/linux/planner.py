"""The Linux planner: desired state from the spec, host state from LinuxHost, pure diff."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Protocol

from dsrctl.diff import plan_with_current
from dsrctl.linux.desired import (
    Desired,
    build_desired,
    dropped_ranges,
    dropped_vips,
    range_states,
    read_scope,
    set_sysctl_file,
    vip_states,
)
from dsrctl.linux.effective import (
    Computed,
    boot_defeats,
    boot_keys,
    computed,
    observed_keys,
)
from dsrctl.linux.firewall import firewall_warnings
from dsrctl.linux.mss import plan_mss
from dsrctl.linux.persistence import Persistence, add_decap, build
from dsrctl.model import HostState, ReadScope, SysctlValue, sysctl_id
from dsrctl.plan import Plan
from dsrctl.planning import PlanResult
from dsrctl.spec import Spec
from providers.linux.persist import Detection, Rendered
from state.ownership import Ownership

if TYPE_CHECKING:
    from providers.linux.firewall import Ruleset
    from providers.linux.persist.sysctl_conflicts import Assignment
    from providers.linux.uplinks import Uplink


class LinuxPlannerHost(Protocol):
    """What the Linux planner asks of the host. LinuxHost fits it structurally; mypy
    checks that at ``dsrctl.linux.PLATFORM``."""

    def read(self, scope: ReadScope) -> HostState: ...

    def running_daemons(self) -> frozenset[str]: ...

    def detect_persistence(self, root: str, interface: str) -> Detection: ...

    def sysctl_conflicts(
        self, root: str, sysctl_file: str, wanted: dict[str, SysctlValue]
    ) -> list[str]: ...

    def uplink(self, version: int, name: str | None) -> Uplink | None: ...

    def nft_path(self) -> str | None: ...

    def input_firewall(self) -> tuple[Ruleset | None, tuple[str, ...]]: ...

    def uplinks(self) -> tuple[str, ...]: ...

    def boot_sysctl_sources(self, root: str, keys: list[str]) -> dict[str, Assignment | None]: ...


def plan_linux(spec: Spec, provider: LinuxPlannerHost, ownership: Ownership) -> PlanResult:
    persistence = persistence_for(spec, provider, ownership)
    desired = build_desired(spec, ownership, persistence, plan_mss(spec, provider))
    uplinks = provider.uplinks()
    scope = read_scope(spec, desired, ownership)
    scope = dataclasses.replace(scope, observed_sysctls=tuple(observed_keys(spec, uplinks)))
    current = provider.read(scope)
    add_computed(
        desired,
        current,
        computed(spec, uplinks, current.observed_sysctls, current.sysctls, ownership),
        spec,
    )
    persist = spec.linux.persist
    if persist.enabled:
        desired.notes += provider.sysctl_conflicts(
            persist.root, persist.sysctl_file, desired.sysctls
        )
        keys = boot_keys(spec, uplinks)
        if keys:
            sources = provider.boot_sysctl_sources(persist.root, keys)
            desired.notes += boot_defeats(spec, uplinks, desired.sysctls, sources)
    plan, have_plain, have_rich = plan_with_current(desired, current, ownership)
    firewall = firewall_warnings(spec, provider)  # nothing, and no nft run, without tunnels
    notes = tuple(spec.warnings) + tuple(current.facts.get("warnings", ())) + plan.notes
    facts = {**plan.facts, "firewall": firewall} if firewall else plan.facts
    return PlanResult(
        plan=Plan(steps=plan.steps, notes=notes + tuple(firewall), facts=facts),
        spec_resources=set(desired.spec_resources),
        have_plain=have_plain,
        have_rich=have_rich,
    )


def persistence_for(spec: Spec, provider: LinuxPlannerHost, ownership: Ownership) -> Persistence:
    """What must be on disk for the VIPs to come back after a reboot (docs/persistence)."""
    persist = spec.linux.persist
    if not persist.enabled or persist.addresses == "none":
        # No VIP files to write; those dsrctl wrote before go through the records.
        result = Persistence("none", running=provider.running_daemons())
        if persist.enabled and spec.tunnels:  # the decap side still comes back at boot
            detection = provider.detect_persistence(persist.root, spec.linux.interface)
            add_decap(result, spec, detection, Rendered())
    else:
        detection = provider.detect_persistence(persist.root, spec.linux.interface)
        result = build(
            spec,
            detection,
            vip_states(spec),
            dropped_vips(spec, ownership),
            range_states(spec),
            dropped_ranges(spec, ownership),
        )
    return result


def add_computed(desired: Desired, current: HostState, found: Computed, spec: Spec) -> None:
    """The keys computed from the host (dsrctl.linux.effective) join the spec's: managed,
    in dsrctl's sysctl file, compared with their values read as observed sysctls."""
    if not found.sysctls:
        return
    for key, value in found.sysctls.items():
        desired.sysctls.setdefault(key, value)
        desired.spec_resources.add(sysctl_id(key))
        seen = current.observed_sysctls.get(key)
        if seen is not None and key not in current.sysctls:
            current.sysctls[key] = seen
    desired.step_notes.update(found.step_notes)
    desired.notes += found.notes
    set_sysctl_file(desired, spec)
