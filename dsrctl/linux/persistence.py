"""VIP persistence, pure: from the spec and the detected host to the resources to write.

``linux.persist.addresses`` names a backend, or ``auto``: the one tool that claims the
interface at boot (see providers.linux.persist.detect), else a systemd unit when systemd
boots the root, else ifupdown when it brings up the uplink of a host that systemd does
not boot, else nothing (with a note). When several tools claim it, ``auto``
refuses with exit 1 in every command, ``plan``, ``drift`` and ``validate`` included,
and names them: a plan that cannot say what apply would write is no plan, and a silent
``drift`` would hide that the VIPs may not come back after a reboot. The same holds for a
backend that cannot work on this host or cannot keep a VIP exactly as dsrctl adds it.

Everything the backends render is given as seen from ``linux.persist.root`` and mapped
to paths on this host here, by providers.model.under_root (normalised, ".." refused, links
in parent directories followed inside the root, never on this host); the resource ids
carry the host path. The root is a spec key,
not a command-line option, because it decides which files the resources are: plan,
apply, drift and rollback must agree on it, and tests put it in every spec so that
detection reads, and apply writes, a temporary tree instead of this host's /etc.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from dsrctl.errors import SpecError
from dsrctl.model import (
    DIRECTORY,
    AddressState,
    FileState,
    RouteState,
    dir_id,
    file_id,
    symlink_id,
    under_root,
)
from dsrctl.spec import Spec
from providers.linux.persist import (
    Claim,
    Decap,
    Detection,
    Rendered,
    RenderRequest,
    decap,
    default_label,
    reload,
)
from providers.linux.persist.backends import BACKENDS, Backend, backend


def backend_module(name: str) -> Backend:
    """The backend named ``name`` (providers.linux.persist.backends.BACKENDS)."""
    return backend(name)


@dataclass
class Persistence:
    """What the chosen backend wants on disk, keyed by host path."""

    backend: str
    files: dict[str, FileState] = field(default_factory=dict)
    symlinks: dict[str, str] = field(default_factory=dict)
    dirs: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    running: frozenset[str] = frozenset()
    # cidr -> the label the backend brings the VIP back with, where the spec gives none
    labels: dict[str, str] = field(default_factory=dict)

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
    notes += module.notes(detection)
    # networkd's drop-in extends the file that netplan renders: that claim is no rival.
    extended = detection.networkd_network if backend == "systemd-networkd" else None
    for claim in detection.active_claims():
        if claim.backend != backend and claim.path != extended:
            notes += rival_notes(claim, backend, detection, spec)
    return backend, notes


def rival_notes(claim: Claim, backend: str, detection: Detection, spec: Spec) -> list[str]:
    """What another tool that configures the interface at boot may do to the VIPs."""
    from providers.linux.persist import networkd

    interface = detection.interface
    if claim.backend == "systemd-networkd":
        keep = detection.networkd_keep
        # an IPv6 VIP is deprecated, which networkd counts as dynamic; a range has no lifetime
        ipv6 = any(vip.version == 6 and not vip.is_range for vip in spec.vips)
        if keep in networkd.KEEPS_ALL or (keep == "static" and not ipv6):
            return [
                f"{claim.describe()} also configures {interface} at boot; it keeps addresses "
                f"it did not configure (KeepConfiguration={keep}), so the VIPs stay"
            ]
        return [
            f"WARNING: {claim.describe()}: systemd-networkd manages {interface} and removes "
            f"the addresses it was not told about whenever it configures the link "
            f"(KeepConfiguration={keep or 'no'}), so it may remove the VIPs that {backend} "
            "adds; choose linux.persist.addresses = 'systemd-networkd', or set "
            "KeepConfiguration=yes in that file"
        ]
    if claim.backend == "networkmanager":
        return [
            f"WARNING: {claim.describe()}: NetworkManager gives {interface} the addresses of "
            f"this active loopback profile whenever it activates or reapplies it, and may "
            f"remove the VIPs that {backend} adds; choose linux.persist.addresses = "
            "'networkmanager', or remove the profile"
        ]
    if claim.backend == "ifcfg":
        labelled = [str(vip.label) for vip in spec.vips if vip.label and vip.label != interface]
        if not labelled:
            return []  # ifup-aliases flushes labelled aliases only; the others stay
        return [
            f"WARNING: {claim.describe()}: at boot the network-scripts' ifup-aliases removes "
            f"every {interface}:* alias that has no ifcfg-{interface}:<name> file, so the "
            f"labelled VIPs ({', '.join(labelled)}) that {backend} adds would go; choose "
            "linux.persist.addresses = 'ifcfg', or drop the labels"
        ]
    return [
        f"WARNING: {claim.describe()} also configures {interface} at boot "
        f"and may remove the VIPs that {backend} adds"
    ]


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
    why = f"no tool configures {detection.interface} at boot and systemd does not boot {where}"
    for claim in detection.uplink_claims:
        if claim.active and claim.backend == "ifupdown" and detection.ifupdown_sources_dropins:
            return "ifupdown", (
                f"{why}; ifupdown brings up the uplink {detection.uplink} at boot "
                f"({claim.describe()}) and reads /etc/network/interfaces.d"
            )
    return "none", why


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
    routes: list[RouteState] | None = None,
    dropped_routes: frozenset[str] = frozenset(),
) -> Persistence:
    """``routes``: the local routes of the VIP ranges; ``dropped_routes``: the ranges
    (cidr) whose route dsrctl added and the spec no longer names."""
    backend, notes = choose_backend(spec, detection)
    check_vips(spec, backend, states)
    result = Persistence(backend, notes=notes, running=detection.running)
    if backend == "none":
        add_decap(result, spec, detection, Rendered())
        return result
    module = backend_module(backend)
    tunnels, ports = decap_of(spec)
    request = RenderRequest(
        states=tuple(states),
        interface=spec.linux.interface,
        spec_path=os.path.abspath(spec.path),
        detection=detection,
        dropped=dropped,
        routes=tuple(routes or ()),
        dropped_routes=dropped_routes,
        tunnels=tunnels,
        fou_ports=ports,
    )
    labels = module.labels(request)  # the backend decides the label of unlabelled VIPs
    if labels:
        result.labels = {
            state.cidr: labels[state.cidr]
            for state in states
            if state.cidr in labels and default_label(state, request.interface)
        }
        relabelled = tuple(
            dataclasses.replace(state, label=labels.get(state.cidr, state.label))
            for state in states
        )
        request = dataclasses.replace(request, states=relabelled)
    problem = module.check(request)
    if problem:
        raise _error(spec, f"{backend} cannot keep the VIPs across a reboot: {problem}")
    add_decap(result, spec, detection, module.render(request))
    return result


def unit_part(backend: str, tunnels: tuple[decap.Tunnel, ...], ports: tuple[int, ...]) -> Decap:
    """What of the decap side dsrctl-tunnels.service brings back under ``backend``: what
    the backend does not (``none``: all of it)."""
    if backend not in BACKENDS:
        return tunnels, ports
    return backend_module(backend).unit_part(tunnels, ports)


def decap_of(spec: Spec) -> Decap:
    """The spec's decap devices (name, state) and GUE ports, in spec order."""
    if not spec.tunnels:
        return (), ()  # and plan and drift of a spec without tunnels load no tunnel code
    from dsrctl.linux.tunnels import tunnel_state

    tunnels = tuple((tunnel.name, tunnel_state(tunnel)) for tunnel in spec.tunnels)
    ports = tuple(tunnel.port for tunnel in spec.tunnels if tunnel.port is not None)
    return tunnels, ports


def add_decap(result: Persistence, spec: Spec, detection: Detection, rendered: Rendered) -> None:
    """``rendered`` (the backend's files) and dsrctl-tunnels.service for the decap
    devices and ports the backend does not bring back itself, into ``result``."""
    tunnels, ports = unit_part(result.backend, *decap_of(spec))
    if tunnels or ports:
        if detection.systemd:
            decap.merge(rendered, decap.render_unit(tunnels, ports, os.path.abspath(spec.path)))
        else:
            where = "this host" if detection.live else detection.root
            names = ", ".join([name for name, _ in tunnels] + [f"fou port {p}" for p in ports])
            backend = "" if result.backend == "none" else f" ({result.backend} cannot)"
            result.notes.append(
                f"the tunnels' decap side ({names}) does not come back after a reboot by "
                f"itself: systemd does not boot {where}, so no dsrctl-tunnels.service brings "
                f"it back{backend}; create the devices, set them up and add the fou ports "
                "at boot yourself"
            )
    root = spec.linux.persist.root
    result.files = {under_root(root, path): state for path, state in rendered.files.items()}
    result.symlinks = {under_root(root, path): target for path, target in rendered.symlinks.items()}
    result.dirs = {under_root(root, path): DIRECTORY for path in rendered.dirs}


def _error(spec: Spec, reason: str) -> SpecError:
    return SpecError(spec.path, "linux.persist.addresses", spec.linux.persist.addresses, reason)
