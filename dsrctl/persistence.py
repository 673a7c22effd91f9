"""VIP persistence, pure: from the spec and the detected host to the resources to write.

``linux.persist.addresses`` names a backend, or ``auto``: the one tool that claims the
interface at boot (see providers.linux.persist.detect), else a systemd unit when systemd
boots the root, else nothing (with a note). When several tools claim it, ``auto``
refuses with exit 1 in every command, ``plan``, ``drift`` and ``validate`` included,
and names them: a plan that cannot say what apply would write is no plan, and a silent
``drift`` would hide that the VIPs may not come back after a reboot. The same holds for a
backend that cannot work on this host or cannot keep a VIP exactly as dsrctl adds it.

Everything the backends render is given as seen from ``linux.persist.root`` and mapped
to paths on this host here; the resource ids carry the host path. The root is a spec key,
not a command-line option, because it decides which files the resources are: plan,
apply, drift and rollback must agree on it, and tests put it in every spec so that
detection reads, and apply writes, a temporary tree instead of this host's /etc.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from types import ModuleType

from dsrctl.errors import SpecError
from dsrctl.model import (
    DIRECTORY,
    AddressState,
    FileState,
    dir_id,
    file_id,
    symlink_id,
    under_root,
)
from dsrctl.spec import Spec
from providers.linux.persist import Detection, RenderRequest, reload


def backend_module(name: str) -> ModuleType:
    from providers.linux.persist import (
        ifupdown,
        netplan,
        networkd,
        networkmanager,
        systemd_unit,
    )

    return {
        "systemd-unit": systemd_unit,
        "networkd": networkd,
        "networkmanager": networkmanager,
        "ifupdown": ifupdown,
        "netplan": netplan,
    }[name]


@dataclass
class Persistence:
    """What the chosen backend wants on disk, keyed by host path."""

    backend: str
    files: dict[str, FileState] = field(default_factory=dict)
    symlinks: dict[str, str] = field(default_factory=dict)
    dirs: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    running: frozenset[str] = frozenset()

    def resources(self) -> set[str]:
        return (
            {file_id(path) for path in self.files}
            | {symlink_id(path) for path in self.symlinks}
            | {dir_id(path) for path in self.dirs}
        )

    def reload_note(self, path: str) -> str:
        commands = reload.commands_for(path, self.running)
        return f"then {reload.describe(commands)}" if commands else ""


def choose_backend(spec: Spec, detection: Detection) -> tuple[str, list[str]]:
    """The backend to use and the notes to show; SpecError when there is none to trust."""
    wanted = spec.linux.persist.addresses
    notes = list(detection.notes)
    if wanted == "none":
        return "none", notes
    if wanted == "auto":
        backend, why = auto_choice(detection)
        if backend is None:
            raise _error(spec, why)
        if backend == "none":
            notes.append(f"the VIPs are not persisted: {why}; add them at boot yourself")
            return "none", notes
    else:
        backend = wanted
    module = backend_module(backend)
    problem = module.requirement(detection)
    if problem:
        raise _error(spec, f"{backend}: {problem}" if wanted == "auto" else problem)
    # networkd's drop-in extends the file that netplan renders: that claim is no rival.
    extended = detection.networkd_network if backend == "networkd" else None
    for claim in detection.active_claims():
        if claim.backend != backend and claim.path != extended:
            notes.append(
                f"WARNING: {claim.describe()} also configures {detection.interface} at boot "
                f"and may remove the VIPs that {backend} adds"
            )
    return backend, notes


def auto_choice(detection: Detection) -> tuple[str | None, str]:
    """What ``auto`` picks and why; None when it cannot pick (the reason says why)."""
    claims = detection.active_claims()
    backends = sorted({claim.backend for claim in claims})
    if len(backends) > 1:
        found = "; ".join(claim.describe() for claim in claims)
        return None, (
            f"several tools configure {detection.interface} at boot: {found}; dsrctl cannot "
            "tell which one wins: set linux.persist.addresses to one of "
            f"{', '.join(repr(b) for b in backends)} (or 'none')"
        )
    if backends:
        return backends[0], "; ".join(claim.describe() for claim in claims)
    if detection.systemd:
        return "systemd-unit", f"no tool configures {detection.interface} at boot"
    where = "this host" if detection.live else detection.root
    return "none", (
        f"no tool configures {detection.interface} at boot and systemd does not boot {where}"
    )


def check_vips(spec: Spec, backend: str, states: list[AddressState]) -> None:
    if backend == "none":
        return
    module = backend_module(backend)
    for state in states:
        problem = module.limits(state, spec.linux.interface)
        if problem:
            raise _error(spec, f"{backend} cannot keep VIP {state.cidr} across a reboot: {problem}")


def build(
    spec: Spec,
    detection: Detection,
    states: list[AddressState],
    dropped: frozenset[str] = frozenset(),
) -> Persistence:
    backend, notes = choose_backend(spec, detection)
    check_vips(spec, backend, states)
    result = Persistence(backend, notes=notes, running=detection.running)
    if backend == "none":
        return result
    request = RenderRequest(
        states=tuple(states),
        interface=spec.linux.interface,
        spec_path=os.path.abspath(spec.path),
        detection=detection,
        dropped=dropped,
    )
    rendered = backend_module(backend).render(request)
    root = spec.linux.persist.root
    result.files = {under_root(root, path): state for path, state in rendered.files.items()}
    result.symlinks = {under_root(root, path): target for path, target in rendered.symlinks.items()}
    result.dirs = {under_root(root, path): DIRECTORY for path in rendered.dirs}
    return result


def _error(spec: Spec, reason: str) -> SpecError:
    return SpecError(spec.path, "linux.persist.addresses", spec.linux.persist.addresses, reason)
