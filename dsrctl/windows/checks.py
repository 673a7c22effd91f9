"""The Windows spec against this host: refuse, before anything is read or changed, a spec
whose names netsh cannot print in this console, whose uplinks are not adapters here, or
whose devcon is not found.

The provider answers the plain questions (the console's encoding, the adapters, where a
program is); the verdicts and their messages are dsrctl's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dsrctl.errors import MISSING, SpecError
from dsrctl.tunnels import TUNNEL_ON_WINDOWS

if TYPE_CHECKING:
    from dsrctl.spec import Spec
    from providers.windows.host import WindowsHost


def check_windows_spec(spec: Spec, host: WindowsHost) -> None:
    if spec.tunnels:
        raise SpecError(spec.path, "tunnel[0].kind", spec.tunnels[0].kind, TUNNEL_ON_WINDOWS)
    windows = spec.windows
    if windows is None:
        raise SpecError(
            spec.path,
            "windows",
            MISSING,
            "this host runs Windows: the spec needs a [windows] table with at least "
            "loopback and uplinks (see docs/windows.md)",
        )
    host.profile = windows.profile
    names = [("windows.loopback", windows.loopback)]
    names += [(f"windows.uplinks[{i}]", name) for i, name in enumerate(windows.uplinks)]
    names += [(f"windows.firewall[{i}].name", r.name) for i, r in enumerate(windows.firewall)]
    encoding = host.console_encoding()
    for key, name in names:
        try:
            name.encode(encoding)
        except UnicodeEncodeError:
            raise SpecError(
                spec.path,
                key,
                name,
                f"netsh prints in this console's code page ({encoding}), which cannot show "
                "this name, so dsrctl could not read it back; rename it",
            ) from None
    adapters = host.adapter_names()
    for index, uplink in enumerate(windows.uplinks):
        if uplink.lower() not in adapters:
            known = ", ".join(sorted(adapters.values())) or "none"
            raise SpecError(
                spec.path,
                f"windows.uplinks[{index}]",
                uplink,
                f"no network adapter of that name on this host (adapters: {known})",
            )
    if windows.devcon is not None and host.runner.find(windows.devcon) is None:
        raise SpecError(spec.path, "windows.devcon", windows.devcon, "not found on this host")
