"""The diff engine: a pure function from (desired, current, ownership) to a plan.

Both sides are flattened into maps ``resource id -> plain value`` and compared key by
key; each top-level difference becomes one step. Nothing here touches the host, so it is
tested with plain data.

The comparison reports what DeepDiff(before, after) reported before it (a value that
differs in type, even if ==, is a change; tests/unit/test_diff_without_deepdiff.py checks
the two agree) without its cost: importing deepdiff takes 300+ ms (it pulls numpy and
pydantic when they are installed) and diffing 10,000 VIPs through it a few hundred more.
"""

from __future__ import annotations

from typing import Any

from dsrctl.desired import Desired
from dsrctl.model import (
    AddressState,
    FileState,
    HostState,
    address_id,
    dir_id,
    file_id,
    split_address_id,
    symlink_id,
    sysctl_id,
)
from dsrctl.plan import Plan
from dsrctl.steps import (
    AddressStep,
    DirStep,
    FileStep,
    Phase,
    Step,
    SymlinkStep,
    SysctlStep,
    sort_steps,
)
from state.ownership import Ownership

Rich = dict[str, Any]  # resource id -> the value a step carries


def desired_map(desired: Desired) -> tuple[dict[str, Any], Rich]:
    plain: dict[str, Any] = {}
    rich: Rich = {}
    for key, value in {**desired.restores, **desired.sysctls}.items():
        plain[sysctl_id(key)] = rich[sysctl_id(key)] = value
    for interface, addresses in desired.addresses.items():
        for cidr, state in addresses.items():
            resource = address_id(interface, cidr)
            plain[resource] = state.attributes()
            rich[resource] = state
    for path, file_state in desired.files.items():
        if file_state is not None:
            plain[file_id(path)] = _file_value(file_state)
            rich[file_id(path)] = file_state
    _add_plain_values(plain, rich, desired.symlinks, desired.dirs)
    return plain, rich


def _add_plain_values(
    plain: dict[str, Any],
    rich: Rich,
    symlinks: dict[str, str | None],
    dirs: dict[str, str | None],
) -> None:
    """Links (value: the target) and directories (value: DIRECTORY) that exist."""
    for resource, value in [
        *((symlink_id(path), target) for path, target in symlinks.items()),
        *((dir_id(path), state) for path, state in dirs.items()),
    ]:
        if value is not None:
            plain[resource] = rich[resource] = value


def current_map(
    current: HostState, desired: Desired, ownership: Ownership
) -> tuple[dict[str, Any], Rich]:
    """The host, restricted to what dsrctl manages: spec resources and owned ones."""
    plain: dict[str, Any] = {}
    rich: Rich = {}
    for key, value in current.sysctls.items():
        plain[sysctl_id(key)] = rich[sysctl_id(key)] = value
    # resource id -> (interface, cidr), without splitting 10,000 ids back apart
    managed = {
        address_id(iface, cidr): (iface, cidr)
        for iface, cidrs in desired.addresses.items()
        for cidr in cidrs
    }
    for resource in ownership.records:
        owned = resource.startswith("address:") and ownership.created(resource)
        if owned and resource not in managed:
            managed[resource] = split_address_id(resource)
    empty: dict[str, AddressState] = {}
    for resource in sorted(managed):
        interface, cidr = managed[resource]
        state = current.addresses.get(interface, empty).get(cidr)
        if state is not None:
            plain[resource] = state.attributes()
            rich[resource] = state
    for path, file_state in current.files.items():
        if file_state is not None:
            plain[file_id(path)] = _file_value(file_state)
            rich[file_id(path)] = file_state
    _add_plain_values(plain, rich, current.symlinks, current.dirs)
    return plain, rich


def _file_value(state: FileState) -> dict[str, Any]:
    return {"sha256": state.sha256, "mode": state.mode}


def changed_resources(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Top-level keys whose values differ: added, removed, or changed in value or type."""
    if before == after:
        return []
    changed = list(before.keys() ^ after.keys())
    changed += [
        key for key, value in before.items() if key in after and not _same(value, after[key])
    ]
    return sorted(str(key) for key in changed)


def _same(left: Any, right: Any) -> bool:
    """Equal, and of the same type all the way down (1 and True, 1 and 1.0 differ)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(_same(v, right[k]) for k, v in left.items())
    if isinstance(left, list | tuple):
        return len(left) == len(right) and all(map(_same, left, right))
    return bool(left == right)


def build_plan(desired: Desired, current: HostState, ownership: Ownership) -> Plan:
    return plan_with_current(desired, current, ownership)[0]


def plan_with_current(
    desired: Desired, current: HostState, ownership: Ownership
) -> tuple[Plan, dict[str, Any], Rich]:
    """The plan, and the host's managed resources it was made from (``current_map``)."""
    _leave_removed(desired, current)
    want_plain, want = desired_map(desired)
    have_plain, have = current_map(current, desired, ownership)
    steps: list[Step] = []
    for resource in changed_resources(have_plain, want_plain):
        steps.append(_step(resource, have.get(resource), want.get(resource), desired))
    notes = list(desired.notes)
    notes += _prefix_warnings(desired, current)
    plan = Plan(steps=tuple(sort_steps(steps)), notes=tuple(notes), facts=dict(current.facts))
    return plan, have_plain, have


def _step(resource: str, before: Any, after: Any, desired: Desired) -> Step:
    kind = resource.partition(":")[0]
    if kind == "sysctl":
        name = resource.partition(":")[2]
        if name in desired.sysctls:
            return SysctlStep(resource, before, after, Phase.HARDEN)
        return SysctlStep(
            resource, before, after, Phase.RELAX, note="restore the value before dsrctl"
        )
    if kind == "address":
        phase = Phase.REMOVE_ADDRESSES if after is None else Phase.ADD_ADDRESSES
        note = "added by dsrctl, no longer in the spec" if after is None else ""
        return AddressStep(resource, before, after, phase, note=note)
    if kind in ("file", "symlink", "dir"):
        notes = [desired.step_notes.get(resource, "")]
        if resource not in desired.spec_resources:
            what = "content" if kind == "file" else "link"
            notes.insert(0, f"restore the {what} before dsrctl" if after else "created by dsrctl")
        note = "; ".join(n for n in notes if n)
        if kind == "dir":
            # Created before the files that go in it, removed after them.
            phase = Phase.PERSIST if after is not None else Phase.PRUNE
            return DirStep(resource, before, after, phase, note=note)
        step_class = FileStep if kind == "file" else SymlinkStep
        return step_class(resource, before, after, Phase.PERSIST, note=note)
    raise ValueError(f"unknown resource kind in {resource!r}")


def _leave_removed(desired: Desired, current: HostState) -> None:
    """A file or link that dsrctl changed (it existed before) and no longer manages is put
    back as it was, unless someone has removed it since: dsrctl does not bring back what
    was deliberately deleted (an operator's NetworkManager profile, say); it lets it go,
    and the next apply forgets it."""
    for kind, wanted, found in (
        ("file", desired.files, current.files),
        ("symlink", desired.symlinks, current.symlinks),
    ):
        for path, value in list(wanted.items()):
            resource = file_id(path) if kind == "file" else symlink_id(path)
            if value is None or resource in desired.spec_resources or found.get(path) is not None:
                continue
            del wanted[path]
            desired.notes.append(
                f"{path} was there before dsrctl changed it and has been removed since; "
                "dsrctl leaves it removed"
            )


def _prefix_warnings(desired: Desired, current: HostState) -> list[str]:
    """A VIP held with a wider prefix captures a whole subnet: say so loudly."""
    warnings = []
    for interface, addresses in desired.addresses.items():
        wanted = {state.address for state in addresses.values()}
        for state in current.addresses.get(interface, {}).values():
            full = 32 if state.version == 4 else 128
            if state.address in wanted and state.prefix != full:
                warnings.append(
                    f"WARNING: {interface} holds {state.cidr}: a prefix wider than /{full} on "
                    f"{interface} captures the whole subnet; dsrctl did not add it and will not "
                    f"remove it; remove it by hand (ip addr del {state.cidr} dev {interface})"
                )
    return warnings
