"""The persistence backends: what each one is (the ``Backend`` Protocol) and the one
registry of their names.

A backend is a module of this package. The spec's allowed names for
``linux.persist.addresses`` are the registry's (plus ``auto``, ``none`` and the aliases);
the modules are imported on use only, so that loading a spec stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Protocol, cast

if TYPE_CHECKING:
    from providers.linux.persist import Decap, Detection, Rendered, RenderRequest
    from providers.model import AddressState, TunnelState

# name -> module, in the order the spec's "known: ..." lists them
BACKENDS: dict[str, str] = {
    "systemd-unit": "providers.linux.persist.systemd_unit",
    "systemd-networkd": "providers.linux.persist.networkd",
    "networkmanager": "providers.linux.persist.networkmanager",
    "ifupdown": "providers.linux.persist.ifupdown",
    "netplan": "providers.linux.persist.netplan",
    "ifcfg": "providers.linux.persist.ifcfg",
}
# Other names a spec may use; the spec keeps the canonical one (old specs keep working).
ALIASES: dict[str, str] = {"networkd": "systemd-networkd"}


class Backend(Protocol):
    """One backend module. The last four are optional: a module that has nothing to say
    binds the defaults of providers.linux.persist (``no_notes``, ``no_labels``,
    ``no_check``, ``all_to_unit``)."""

    def requirement(self, detection: Detection) -> str | None:
        """Why this backend cannot work on the detected host; None if it can."""
        ...

    def limits(self, state: AddressState, interface: str) -> str | None:
        """Why it cannot bring ``state`` back exactly as dsrctl adds it; None if it can."""
        ...

    def render(self, request: RenderRequest) -> Rendered:
        """The files (as seen from the root) that bring the VIPs back at boot."""
        ...

    def notes(self, detection: Detection) -> list[str]:
        """What to tell the operator about using it on the detected host."""
        ...

    def labels(self, request: RenderRequest) -> dict[str, str]:
        """cidr -> the label it brings an unlabelled VIP back with (none: unchanged)."""
        ...

    def check(self, request: RenderRequest) -> str | None:
        """Why it cannot keep these VIPs together across a reboot; None if it can."""
        ...

    def unit_part(
        self, tunnels: tuple[tuple[str, TunnelState], ...], ports: tuple[int, ...]
    ) -> Decap:
        """What of the [[tunnel]] decap side (devices, GUE ports) it leaves to
        dsrctl-tunnels.service (providers.linux.persist.decap); its render brings back the
        rest."""
        ...


def backend(name: str) -> Backend:
    """The module of backend ``name`` (a key of BACKENDS)."""
    return cast("Backend", importlib.import_module(BACKENDS[name]))


if TYPE_CHECKING:  # mypy checks every backend module against the Protocol here
    from providers.linux.persist import (
        ifcfg,
        ifupdown,
        netplan,
        networkd,
        networkmanager,
        systemd_unit,
    )

    _CHECKED: tuple[Backend, ...] = (systemd_unit, networkd, networkmanager, ifupdown)
    _CHECKED_TOO: tuple[Backend, ...] = (netplan, ifcfg)
