"""The Linux spec against this host: refuse, before anything is read or changed, a spec
that names an interface or sysctl the host does not have, or a persistence dsrctl cannot
trust; and what `show` says ``auto`` would pick.

The provider answers the plain questions (does the interface exist, does the sysctl,
who configures the interface at boot); the verdicts and their messages are dsrctl's.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from dsrctl.errors import SpecError
from dsrctl.linux.mss import check_mss
from providers.linux.sysctl_keys import split_key

if TYPE_CHECKING:
    from dsrctl.spec import Spec
    from providers.linux.host import LinuxHost


def check_linux_spec(spec: Spec, host: LinuxHost) -> None:
    from dsrctl.linux.effective import rp_filter_conflict
    from dsrctl.spec import sysctl_key_path

    interface = spec.linux.interface
    if not host.has_interface(interface):
        raise SpecError(spec.path, "linux.interface", interface, "no such interface on this host")
    conflict = rp_filter_conflict(spec)
    if conflict is not None:
        raise SpecError(spec.path, sysctl_key_path(conflict[0]), conflict[1], conflict[2])
    # A device of a [[tunnel]] is created by the plan: its keys exist only after that.
    created = {tunnel.name for tunnel in spec.tunnels}
    for key, value in spec.linux.all_sysctls().items():
        parts = split_key(key)
        if len(parts) == 5 and parts[2] == "conf" and parts[3] in created:
            continue
        if not host.sysctl.exists(key):
            hint = ""
            if len(parts) == 5 and parts[2] == "conf":
                hint = f" (is there an interface named {parts[3]!r}?)"
            raise SpecError(
                spec.path, sysctl_key_path(key), value, f"no such sysctl on this host{hint}"
            )
    check_ranges(spec, host)
    check_tunnels(spec, host)
    check_persistence(spec, host)
    check_mss(spec, host)


def check_ranges(spec: Spec, host: LinuxHost) -> None:
    """A VIP range must not cover a subnet this host sits in: its local route would make
    every neighbour there, the router included, a local address, and cut the host off
    from them (the local table is looked up before the main table)."""
    import ipaddress

    ranges = [vip for vip in spec.vips if vip.is_range]
    if not ranges:
        return
    for interface, cidr in host.connected_networks(("lo", spec.linux.interface)):
        subnet = ipaddress.ip_interface(cidr).network
        for vip in ranges:
            if subnet.version == vip.version and subnet.overlaps(vip.network):
                raise SpecError(
                    spec.path,
                    "vip",
                    vip.cidr,
                    f"the range covers addresses of {subnet.compressed}, the subnet of "
                    f"{interface} ({cidr}): its local route would make those hosts, the "
                    f"router included, addresses of this server and cut it off from them",
                )


def check_tunnels(spec: Spec, host: LinuxHost) -> None:
    """Refuse a [[tunnel]] whose kind this kernel lacks (no module loaded, built in or
    installed), whose device name is taken by a device of another kind, or whose uplink
    does not exist."""
    from dsrctl.linux.tunnels import tunnel_state

    for index, tunnel in enumerate(spec.tunnels):
        where = f"tunnel[{index}]"
        for module in tunnel.modules:
            if not host.has_module(module):
                raise SpecError(
                    spec.path,
                    f"{where}.kind",
                    tunnel.kind,
                    f"this kernel ({host.kernel_release()}) has no {module} module",
                )
        found = host.link_kind(tunnel.name)
        wanted = tunnel_state(tunnel)
        if found is not None and (found.kind, found.external) != (wanted.kind, wanted.external):
            what = f"{found.kind}{' external' if found.external else ''}"
            raise SpecError(
                spec.path,
                f"{where}.name",
                tunnel.name,
                f"a {what} device of that name exists; dsrctl does not replace a device "
                "it did not create: delete it or give the tunnel another name",
            )
        if tunnel.uplink is not None and not host.has_interface(tunnel.uplink):
            raise SpecError(
                spec.path, f"{where}.uplink", tunnel.uplink, "no such interface on this host"
            )


def check_persistence(spec: Spec, host: LinuxHost) -> None:
    """Refuse, before anything is read or changed, a persistence dsrctl cannot trust."""
    from dsrctl.linux.desired import range_states, vip_states
    from dsrctl.linux.persistence import build

    persist = spec.linux.persist
    if not persist.enabled:
        return
    if not os.path.isdir(persist.root):
        raise SpecError(spec.path, "linux.persist.root", persist.root, "no such directory")
    if persist.addresses == "none":
        return
    detection = host.detect_persistence(persist.root, spec.linux.interface)
    build(spec, detection, vip_states(spec), routes=range_states(spec))


def describe_persistence(host: LinuxHost) -> dict[str, Any]:
    """Who configures lo at boot under the host's root, and what ``auto`` would pick
    (`dsrctl show`)."""
    from dsrctl.linux.persistence import auto_choice

    detection = host.detect_persistence(host.root, "lo")
    backend, why = auto_choice(detection)
    return {**detection.to_json(), "auto": backend, "auto_reason": why}
