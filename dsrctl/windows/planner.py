"""The Windows planner: desired state from the spec's [windows] table, current state from
WindowsHost, the same pure diff as on Linux (dsrctl.diff.changed_resources).

Both sides are flat maps ``resource id -> plain value`` (see dsrctl.windows.model for
the ids); each resource that differs becomes one step. ``plan_from_state`` is pure and
is tested with plain data; ``plan_windows`` only adds the read.

Ownership, as on Linux: a VIP or firewall rule dropped from the spec is removed only if
dsrctl created it; a setting or rule dsrctl changed is restored to the value it had
before dsrctl first changed it; an adapter is never removed by a plan.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Set
from dataclasses import dataclass, field
from typing import Any, Protocol

from dsrctl.diff import changed_resources
from dsrctl.errors import MISSING, SpecError
from dsrctl.model import split_address_id, split_id
from dsrctl.plan import Plan
from dsrctl.planning import PlanResult
from dsrctl.spec import Spec
from dsrctl.steps import Phase, Step
from dsrctl.windows import manual
from dsrctl.windows.model import (
    ADAPTER_PRESENT,
    FirewallRuleState,
    VipAddress,
    WindowsReadScope,
    WindowsState,
    adapter_id,
    observe,
    rule_id,
    setting_id,
    split_setting_id,
    vip_id,
)
from dsrctl.windows.spec import WindowsSpec
from dsrctl.windows.steps import (
    AdapterStep,
    DhcpStep,
    FirewallRuleStep,
    ManualStep,
    NetshSetStep,
    VipStep,
    sort_windows_steps,
)
from state.ownership import Ownership

# Settings put back to their value before dsrctl when the spec drops them. DHCP is not:
# turning it back on would drop every static address on the adapter.
RESTORABLE = ("weakhostsend", "weakhostreceive", "metric")


@dataclass
class WindowsDesired:
    rich: dict[str, Any] = field(default_factory=dict)  # resource -> value a step carries
    spec_resources: set[str] = field(default_factory=set)
    restores: set[str] = field(default_factory=set)  # back to the value before dsrctl
    managed: set[str] = field(default_factory=set)  # what the current map looks at
    interfaces: list[str] = field(default_factory=list)
    families: set[int] = field(default_factory=set)
    rules: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def want(self, resource: str, value: Any) -> None:
        self.rich[resource] = value
        self.managed.add(resource)

    def plain(self) -> dict[str, Any]:
        return {resource: plain_value(value) for resource, value in self.rich.items()}

    def read_scope(self, profile: str) -> WindowsReadScope:
        interfaces = tuple(dict.fromkeys(self.interfaces))
        families = tuple(sorted(self.families)) or (4,)
        return WindowsReadScope(profile, interfaces, families, tuple(dict.fromkeys(self.rules)))


def plain_value(value: Any) -> Any:
    return value.plain() if isinstance(value, VipAddress | FirewallRuleState) else value


def build_desired(spec: Spec, windows: WindowsSpec, ownership: Ownership) -> WindowsDesired:
    desired = WindowsDesired()
    loopback = windows.loopback
    desired.interfaces = [loopback, *windows.uplinks]
    desired.families = {vip.version for vip in spec.vips}
    desired.want(adapter_id(loopback), ADAPTER_PRESENT)
    for family in sorted(desired.families):
        if windows.legacy:
            desired.want(setting_id(family, loopback, "metric"), windows.metric)
            continue
        for uplink in windows.uplinks:
            desired.want(setting_id(family, uplink, "weakhostreceive"), "enabled")
        desired.want(setting_id(family, loopback, "weakhostreceive"), "enabled")
        desired.want(setting_id(family, loopback, "weakhostsend"), "enabled")
        desired.want(setting_id(family, loopback, "metric"), windows.metric)
    if 4 in desired.families:
        desired.want(setting_id(4, loopback, "dhcp"), "disabled")
    for vip in spec.vips:
        value = VipAddress(vip.address.compressed, vip.prefix, skipassource=not windows.legacy)
        desired.want(vip_id(loopback, vip.cidr), value)
    localip = tuple(vip.address.compressed for vip in spec.vips)
    for rule in windows.firewall:
        if windows.legacy:
            desired.notes.append(manual.firewall_2003(rule))
            continue
        ports = tuple(str(port) for port in rule.ports)
        desired.want(
            rule_id(rule.name),
            FirewallRuleState(protocol=rule.protocol, localip=localip, localport=ports),
        )
        desired.rules.append(rule.name)
    desired.spec_resources = set(desired.rich)
    _add_way_back(desired, ownership, loopback)
    return desired


def _add_way_back(desired: WindowsDesired, ownership: Ownership, loopback: str) -> None:
    """Records of resources the spec no longer names: delete, restore or leave in place."""
    named = {resource.lower() for resource in desired.spec_resources}
    for resource, record in sorted(ownership.records.items()):
        if resource.lower() in named:
            continue
        kind, name = split_id(resource)
        if kind == "netsh":
            family, interface, keyword = split_setting_id(resource)
            if keyword in RESTORABLE and record.original is not None:
                desired.want(resource, record.original)
                desired.restores.add(resource)
                desired.interfaces.append(interface)
                desired.families.add(family)
        elif kind == "address":
            interface, cidr = split_address_id(resource)
            if record.created:
                desired.managed.add(resource)  # absent from the wanted map: deleted
                desired.interfaces.append(interface)
                desired.families.add(6 if ":" in cidr else 4)
            elif interface.lower() != loopback.lower():
                # (On the loopback adapter itself it is reported as a foreign address.)
                desired.notes.append(
                    f"{cidr} on {interface} is no longer in the spec but was there before "
                    "dsrctl; it is left in place"
                )
        elif kind == "firewall":
            desired.rules.append(name)
            if record.created:
                desired.managed.add(resource)
            elif isinstance(record.original, dict):
                desired.want(resource, FirewallRuleState.from_record(record.original))
                desired.restores.add(resource)
        elif kind == "adapter":
            desired.notes.append(
                f"adapter {name} is no longer the spec's loopback adapter; dsrctl leaves it in "
                "place (remove it in Device Manager if it must go)"
            )


def current_maps(
    state: WindowsState, desired: WindowsDesired
) -> tuple[dict[str, Any], dict[str, Any]]:
    rich = {r: v for r in sorted(desired.managed) if (v := observe(state, r)) is not None}
    return {r: plain_value(v) for r, v in rich.items()}, rich


class WindowsPlannerHost(Protocol):
    """What the Windows planner asks of the host. WindowsHost fits it structurally; mypy
    checks that at ``dsrctl.windows.PLATFORM``."""

    def read_windows(self, scope: WindowsReadScope) -> WindowsState: ...

    @property
    def deferred_manual(self) -> Set[str]:
        """Manual steps the operator was told about in this run (ManualStep.apply)."""
        ...


def plan_windows(spec: Spec, provider: WindowsPlannerHost, ownership: Ownership) -> PlanResult:
    windows = spec.windows
    if windows is None:
        raise SpecError(spec.path, "windows", MISSING, "a [windows] table is required on Windows")
    desired = build_desired(spec, windows, ownership)
    state = provider.read_windows(desired.read_scope(windows.profile))
    return plan_from_state(spec, windows, desired, state, set(provider.deferred_manual))


def plan_from_state(
    spec: Spec,
    windows: WindowsSpec,
    desired: WindowsDesired,
    state: WindowsState,
    deferred: set[str] | None = None,
) -> PlanResult:
    have_plain, have = current_maps(state, desired)
    notes = list(desired.notes) + _host_notes(spec, windows, state)
    steps: list[Step] = _foreign_addresses(windows, desired, state)
    for resource in changed_resources(have_plain, desired.plain()):
        steps.append(
            _step(resource, have.get(resource), desired.rich.get(resource), windows, desired)
        )
    notes += _automatic_metric_notes(steps, state)
    for step in [s for s in steps if isinstance(s, ManualStep) and s.resource in (deferred or ())]:
        if not step.blocking:  # the operator was told in this run: not a difference to verify
            notes.append(f"left to do by hand: {step.resource}: {step.instructions}")
            steps.remove(step)
    facts = {"platform": "windows", "profile": windows.profile}
    return PlanResult(
        plan=Plan(steps=tuple(sort_windows_steps(steps)), notes=tuple(notes), facts=facts),
        spec_resources=set(desired.spec_resources),
        have_plain=have_plain,
        have_rich=have,
    )


def _step(
    resource: str, before: Any, after: Any, windows: WindowsSpec, desired: WindowsDesired
) -> Step:
    kind = split_id(resource)[0]
    if kind == "adapter":
        if windows.devcon is not None:
            note = f"devcon installs *MSLOOP; the new adapter is renamed {windows.loopback}"
            return AdapterStep(resource, before, after, Phase.ADAPTER, note, windows.devcon)
        return _manual(resource, before, after, Phase.ADAPTER, True, manual.create_adapter(windows))
    if kind == "netsh":
        keyword = split_setting_id(resource)[2]
        if keyword == "dhcp":
            ipv4 = [
                v for v in desired.rich.values() if isinstance(v, VipAddress) and v.version == 4
            ]
            note = "static addressing, no gateway"
            return DhcpStep(resource, before, after, Phase.ADD_ADDRESSES, note, ipv4[0].cidr)
        if keyword == "metric" and windows.legacy:
            instructions = manual.set_metric_2003(windows)
            return _manual(resource, before, after, Phase.HARDEN, False, instructions)
        if resource in desired.restores:
            note = "restore the value before dsrctl"
            return NetshSetStep(resource, before, after, Phase.RELAX, note)
        return NetshSetStep(resource, before, after, Phase.HARDEN)
    if kind == "address":
        if after is None:
            note = "added by dsrctl, no longer in the spec"
            return VipStep(resource, before, after, Phase.REMOVE_ADDRESSES, note)
        return VipStep(resource, before, after, Phase.ADD_ADDRESSES)
    if kind == "firewall":
        note = ""
        if after is None:
            note = "created by dsrctl, no longer in the spec"
        elif resource in desired.restores:
            note = "restore the rule as it was before dsrctl"
        return FirewallRuleStep(resource, before, after, Phase.FIREWALL, note)
    raise ValueError(f"unknown resource kind in {resource!r}")


def _manual(
    resource: str, before: Any, after: Any, phase: Phase, blocking: bool, instructions: str
) -> ManualStep:
    prefix = "MANUAL, apply stops before changing anything" if blocking else "MANUAL"
    return ManualStep(
        resource, before, after, phase, f"{prefix}: {instructions}", blocking, instructions
    )


def _foreign_addresses(
    windows: WindowsSpec, desired: WindowsDesired, state: WindowsState
) -> list[Step]:
    """Addresses on the loopback adapter that the spec does not name and dsrctl did not add
    (including one that was there before dsrctl and has left the spec): left in place, and
    reported until the operator removes it or puts it back into the spec."""
    known = {resource.lower() for resource in desired.managed}
    steps: list[Step] = []
    for (_, interface), held in sorted(state.addresses.items()):
        if interface != windows.loopback.lower():
            continue
        for cidr, vip in sorted(held.items()):
            resource = vip_id(windows.loopback, cidr)
            if resource.lower() in known or ipaddress.ip_address(vip.address).is_link_local:
                continue  # link-local: the autoconfiguration address of a DHCP adapter
            instructions = manual.foreign_address(windows, vip)
            steps.append(_manual(resource, vip, None, Phase.REMOVE_ADDRESSES, False, instructions))
    return steps


def _automatic_metric_notes(steps: list[Step], state: WindowsState) -> list[str]:
    notes = []
    for step in steps:
        if isinstance(step, NetshSetStep) and step.resource.endswith(":metric"):
            family, interface, _ = split_setting_id(step.resource)
            settings = state.settings.get((family, interface.lower()), {})
            if settings.get("automatic_metric") == "enabled":
                notes.append(
                    f"the IPv{family} metric of {interface} is automatic now: setting it turns "
                    "'Automatic metric' off, and netsh cannot turn it on again, so a rollback "
                    f"restores the number ({step.before}) with 'Automatic metric' still off"
                )
    return notes


def _host_notes(spec: Spec, windows: WindowsSpec, state: WindowsState) -> list[str]:
    notes = []
    if any(vip.label for vip in spec.vips):
        notes.append("VIP labels are a Linux feature; they are ignored on Windows")
    if windows.legacy and windows.uplinks:
        notes.append(
            "windows.uplinks has no effect with the 2003 profile: Windows Server 2003 uses the "
            "weak host model already"
        )
    for gateway in state.gateways.get(windows.loopback.lower(), ()):
        command = "ip" if windows.legacy else "ipv4"
        notes.append(
            f"WARNING: {windows.loopback} has the default gateway {gateway}; a loopback adapter "
            "must have none; dsrctl did not set it and leaves it: remove it by hand (netsh "
            f'interface {command} delete address name="{windows.loopback}" gateway={gateway})'
        )
    return notes
