"""The desired state of the spec's [[tunnel]] tables: the kernel modules (and the
modules-load.d file that loads them at boot), the decap devices and the fou ports.

Pure: no host access. The devices themselves come back at boot through the network
configuration backends, not here.
"""

from __future__ import annotations

import os

from dsrctl.kinds.base import Desired
from dsrctl.kinds.fou import fou_id
from dsrctl.kinds.module import LOADED, module_id
from dsrctl.kinds.tunnel import tunnel_id
from dsrctl.model import DIRECTORY, FileState, TunnelState, dir_id, file_id, under_root
from dsrctl.spec import Spec
from dsrctl.tunnels import TunnelSpec

MODULES_LOAD_DIR = "/etc/modules-load.d"
MODULES_LOAD_FILE = f"{MODULES_LOAD_DIR}/dsrctl.conf"
MODULES_LOAD_MODE = 0o644


def tunnel_state(tunnel: TunnelSpec) -> TunnelState:
    """What the decap device of ``tunnel`` must be: the fallback device as the module
    makes it, or a collect-metadata device; up either way."""
    kind = "vxlan-gpe" if tunnel.kind == "vxlan-gpe" else tunnel.device_type
    return TunnelState(kind=kind, external=not tunnel.fallback, up=True)


def spec_modules(spec: Spec) -> list[str]:
    """The kernel modules the spec's tunnels need, sorted, each once."""
    return sorted({module for tunnel in spec.tunnels for module in tunnel.modules})


def add_tunnels(desired: Desired, spec: Spec) -> set[str]:
    """Put the tunnels' modules, devices, fou ports and modules-load.d file in
    ``desired``; return their resource ids (the spec's own resources)."""
    if not spec.tunnels:
        return set()
    resources = set()
    for module in spec_modules(spec):
        desired.modules[module] = LOADED
        resources.add(module_id(module))
    for tunnel in spec.tunnels:
        desired.tunnels[tunnel.name] = tunnel_state(tunnel)
        resources.add(tunnel_id(tunnel.name))
        if tunnel.port is not None:
            desired.fou_ports[tunnel.port] = "gue"
            resources.add(fou_id(tunnel.port))
    persist = spec.linux.persist
    if persist.enabled:
        directory = under_root(persist.root, MODULES_LOAD_DIR)
        path = under_root(persist.root, MODULES_LOAD_FILE)
        desired.dirs[directory] = DIRECTORY
        desired.files[path] = FileState(modules_load_content(spec), MODULES_LOAD_MODE)
        resources |= {dir_id(directory), file_id(path)}
    return resources


def modules_load_content(spec: Spec) -> bytes:
    from providers.linux.persist import comment_text

    lines = [
        f"# Managed by dsrctl from {comment_text(os.path.abspath(spec.path))}; edits here are "
        "reverted by 'dsrctl apply'.",
        "# The kernel modules of the [[tunnel]] decap devices, loaded at boot by "
        "systemd-modules-load.",
        *spec_modules(spec),
    ]
    return ("\n".join(lines) + "\n").encode()
