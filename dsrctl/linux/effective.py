"""Per-interface sysctls that decide what the kernel does with the spec's values.

The kernel acts on max(conf.all, conf.<dev>) for arp_ignore, arp_announce and rp_filter
(net/ipv4/devinet.c, IN_DEV_MAXCONF), and a device created later starts from
conf.default. So:

- rp_filter: a decap device without an IPv4 address drops every decapsulated packet
  unless max(all, dev) is 0; loose (2) drops too (measured, DOMAIN.md section 5). For
  every tunnel of the spec that carries IPv4 inside (every kind but ip6ip6: ip6gre's IPv4
  packets are filtered on the ip6gre device, measured in the VM lab) dsrctl wants
  ``all = 0`` and ``<dev> = 0``: the smallest
  change that works. Lowering ``all`` would also lower the filter of the uplink (whose own
  value is often 0), so the uplink keeps the value it had through its own key.
- arp_ignore/arp_announce: a per-interface value can only raise the effective value, but
  raising is not always safer: arp_ignore 3 answers ARP for a VIP on lo (scope global),
  4-7 are treated like 0, 8 and above 8 answer nothing or everything; arp_announce above
  2 is treated like 0 (the kernel's ``default:`` case). Such a value on an uplink defeats
  the spec, so dsrctl sets the uplink's key to the spec's value.

A key computed from the host stays managed once dsrctl recorded it (else the next plan,
seeing the repaired value, would drop it and restore the old one). Pure: plain data in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dsrctl.model import SysctlValue, sysctl_id

if TYPE_CHECKING:
    from dsrctl.spec import Spec
    from providers.linux.host import LinuxHost
    from providers.linux.persist.sysctl_conflicts import Assignment
    from state.ownership import Ownership

RP_ALL = "net.ipv4.conf.all.rp_filter"
ARP_LEAVES = ("arp_ignore", "arp_announce")
SHOWN_LEAVES = ("arp_ignore", "arp_announce", "rp_filter")


def conf_key(device: str, leaf: str) -> str:
    """``net.ipv4.conf.<device>.<leaf>``; a dot in a device name is written as a slash."""
    return f"net.ipv4.conf.{device.replace('.', '/')}.{leaf}"


def decap_devices(spec: Spec) -> list[str]:
    """The decap devices of the spec's tunnels that receive IPv4 packets, whatever the
    outer header (an ip6gre device decapsulates IPv4 too); rp_filter has no IPv6
    counterpart."""
    found: list[str] = []
    for tunnel in spec.tunnels:
        if 4 in tunnel.inner and tunnel.name not in found:
            found.append(tunnel.name)
    return found


def rp_filter_reason(device: str) -> str:
    return (
        f"decapsulated packets arrive on {device}, which has no address: any rp_filter "
        "but 0 drops them"
    )


def tunnel_sysctls(spec: Spec) -> dict[str, SysctlValue]:
    """What the spec's tunnels need, before the spec's own keys (which win: a conflicting
    one is refused by :func:`rp_filter_conflict`)."""
    devices = decap_devices(spec)
    if not devices:
        return {}
    return {RP_ALL: 0, **{conf_key(device, "rp_filter"): 0 for device in devices}}


def tunnel_notes(spec: Spec) -> dict[str, str]:
    """The plan note of each step :func:`tunnel_sysctls` causes, by resource id."""
    devices = decap_devices(spec)
    notes = {
        sysctl_id(conf_key(device, "rp_filter")): rp_filter_reason(device) for device in devices
    }
    if devices:
        notes[sysctl_id(RP_ALL)] = (
            f"{rp_filter_reason(', '.join(devices))}, and the kernel uses max(all, device)"
        )
    return notes


def rp_filter_conflict(spec: Spec) -> tuple[str, SysctlValue, str] | None:
    """(key, value, reason) of a ``[linux.sysctl]`` key that sets rp_filter of ``all`` or
    of a decap device to anything but 0: the tunnel cannot work with it."""
    explicit = dict(spec.linux.sysctl)
    for key, value in tunnel_sysctls(spec).items():
        if key in explicit and explicit[key] != value:
            device = key.split(".")[3]
            devices = decap_devices(spec) if device == "all" else [device.replace("/", ".")]
            return (
                key,
                explicit[key],
                f"{rp_filter_reason(', '.join(devices))}; set 0 or leave the key out "
                "(dsrctl sets 0 for [[tunnel]])",
            )
    return None


def arp_defeat(leaf: str, value: SysctlValue | None, wanted: int) -> str | None:
    """Why a per-interface ARP value defeats the spec's ``all`` value, or None."""
    if not isinstance(value, int) or value <= wanted:
        return None  # max(all, iface) is the spec's value
    if leaf == "arp_ignore":
        if value == 2:
            return None  # stricter than 1 and still safe
        if value == 3:
            return "3 only skips scope-host addresses, so the host answers ARP for its VIPs"
        if value == 8:
            return "8 answers no ARP at all, for the host's own addresses too"
        return f"the kernel treats {value} like 0: the host answers ARP for its VIPs"
    return f"the kernel treats {value} like 0: the VIP can be the source of ARP requests"


@dataclass
class Computed:
    """Sysctls computed from the host, with the note of each step and notes for the plan."""

    sysctls: dict[str, SysctlValue] = field(default_factory=dict)
    step_notes: dict[str, str] = field(default_factory=dict)  # resource id -> note
    notes: list[str] = field(default_factory=list)


def observed_keys(spec: Spec, uplinks: tuple[str, ...]) -> list[str]:
    """The per-interface keys :func:`computed` judges."""
    keys = [conf_key(dev, leaf) for dev in relevant_uplinks(spec, uplinks) for leaf in ARP_LEAVES]
    if decap_devices(spec):
        keys += [conf_key(dev, "rp_filter") for dev in relevant_uplinks(spec, uplinks)]
    return keys


def relevant_uplinks(spec: Spec, uplinks: tuple[str, ...]) -> list[str]:
    """The default-route devices (every next hop of a multipath route; LinuxHost.uplinks)
    and the tunnels' own uplinks, not lo nor a decap device."""
    names = [*uplinks, *(t.uplink for t in spec.tunnels if t.uplink is not None)]
    skip = {"lo", *(t.name for t in spec.tunnels)}
    found: list[str] = []
    for name in names:
        if name not in skip and name not in found:
            found.append(name)
    return found


def computed(
    spec: Spec,
    uplinks: tuple[str, ...],
    observed: dict[str, SysctlValue | None],
    current: dict[str, SysctlValue],
    ownership: Ownership,
) -> Computed:
    """The uplinks' keys dsrctl must set: ``observed`` holds their values
    (:func:`observed_keys`), ``current`` the host's values of the spec's keys."""
    result = Computed()
    explicit = spec.linux.all_sysctls()
    records = ownership.records
    spec_arp = {"arp_ignore": spec.linux.arp_ignore, "arp_announce": spec.linux.arp_announce}
    for device in relevant_uplinks(spec, uplinks):
        for leaf in ARP_LEAVES:
            key = conf_key(device, leaf)
            if key in explicit:
                continue
            value = observed.get(key)
            reason = arp_defeat(leaf, value, spec_arp[leaf])
            # Kept once it has the spec's value (repaired, or set so by hand): the next
            # plan, and the verification right after the repair, see no defeat any more.
            kept = value == spec_arp[leaf] or sysctl_id(key) in records
            if reason is None and not kept:
                continue
            result.sysctls[key] = spec_arp[leaf]
            result.step_notes[sysctl_id(key)] = (
                f"max(all, {device}) must be the spec's {spec_arp[leaf]}"
            )
            if reason is not None:
                result.notes.append(
                    f"{key} = {value} defeats linux.{leaf} = {spec_arp[leaf]}: the kernel uses "
                    f"max(conf.all, conf.{device}) = {value}, and {reason}; dsrctl sets "
                    f"{key} = {spec_arp[leaf]}"
                )
        if not decap_devices(spec):
            continue
        key = conf_key(device, "rp_filter")
        if key in explicit:
            continue
        # The uplink's filter as it was, max(all, uplink), before all went to 0: all's
        # value before dsrctl changed it (the records), else all's value now.
        record = records.get(sysctl_id(RP_ALL))
        before = record.original if record is not None else current.get(RP_ALL)
        value = observed.get(key)
        wanted = max(
            before if isinstance(before, int) else 0, value if isinstance(value, int) else 0
        )
        if wanted <= 0 and sysctl_id(key) not in records:
            continue  # no filter to keep
        result.sysctls[key] = wanted
        result.step_notes[sysctl_id(key)] = (
            f"keeps {device}'s reverse-path filter at {wanted}, max(all, {device}) before "
            "all goes to 0 for the tunnel"
        )
    return result


def boot_defeats(
    spec: Spec,
    uplinks: tuple[str, ...],
    managed: dict[str, SysctlValue],
    sources: dict[str, Assignment | None],
) -> list[str]:
    """Warnings for sysctl.d lines that give an uplink a defeating ARP value at boot, for
    the keys dsrctl does not manage (the conflict scan covers those). ``sources``: the
    line that sets each key of :func:`boot_keys` at boot."""
    warnings = []
    spec_arp = {"arp_ignore": spec.linux.arp_ignore, "arp_announce": spec.linux.arp_announce}
    for device in relevant_uplinks(spec, uplinks):
        for leaf in ARP_LEAVES:
            key = conf_key(device, leaf)
            line = sources.get(key)
            if key in managed or line is None or line.value is None:
                continue
            try:
                value = int(line.value)
            except ValueError:
                continue
            reason = arp_defeat(leaf, value, spec_arp[leaf])
            if reason is not None:
                warnings.append(
                    f"WARNING: {line.where()} sets {key} = {value} at boot, which defeats "
                    f"linux.{leaf} = {spec_arp[leaf]}: the kernel uses max(conf.all, "
                    f"conf.{device}) = {value}, and {reason}; remove that line (after a "
                    "reboot drift reports it and apply sets the spec's value)"
                )
    return warnings


def boot_keys(spec: Spec, uplinks: tuple[str, ...]) -> list[str]:
    """The keys whose boot-time line :func:`boot_defeats` judges."""
    return [conf_key(dev, leaf) for dev in relevant_uplinks(spec, uplinks) for leaf in ARP_LEAVES]


# -- show ---------------------------------------------------------------------------------


def describe_effective(host: LinuxHost, root: str, recorded: list[str]) -> dict[str, Any]:
    """`show`: for all, default, lo, the uplinks and the decap devices (those on the host
    and those dsrctl's records name), each key's own value, the effective value the kernel
    acts on, the sysctl.d line that sets it at boot (under ``root``) and what is wrong."""
    rows: list[tuple[str, str]] = [("all", "all"), ("default", "default"), ("lo", "loopback")]
    for name in host.uplinks().names():
        rows.append((name, "uplink"))
    for name in [*host.decap_devices(), *recorded]:
        if name not in [row[0] for row in rows]:
            rows.append((name, "decap"))
    keys = [conf_key(name, leaf) for name, _ in rows for leaf in SHOWN_LEAVES]
    boot = host.boot_sysctl_sources(root, keys)
    common = {leaf: host.try_sysctl(conf_key("all", leaf)) for leaf in SHOWN_LEAVES}
    interfaces = []
    for name, role in rows:
        values: dict[str, Any] = {}
        for leaf in SHOWN_LEAVES:
            key = conf_key(name, leaf)
            own = host.try_sysctl(key)
            effective = own
            if name not in ("all", "default"):
                effective = _max(own, common[leaf])
            line = boot[key]
            values[leaf] = {
                "own": own,
                "effective": effective,
                "boot": line.to_json() if line is not None else None,
                "boot_where": line.where() if line is not None else None,
                "problem": _problem(role, leaf, effective),
            }
        interfaces.append({"name": name, "role": role, "values": values})
    return {"root": root, "interfaces": interfaces}


def _max(own: SysctlValue | None, common: SysctlValue | None) -> SysctlValue | None:
    if isinstance(own, int) and isinstance(common, int):
        return max(own, common)
    return None


def _problem(role: str, leaf: str, effective: SysctlValue | None) -> str | None:
    """What the effective value means for DSR on an interface of this role, if wrong."""
    if not isinstance(effective, int):
        return None
    if role == "uplink" and leaf == "arp_ignore" and effective not in (1, 2):
        if effective == 8:
            return "answers no ARP at all, for the host's own addresses too"
        return "answers ARP for addresses on lo (the VIPs)"
    if role == "uplink" and leaf == "arp_announce" and effective != 2:
        return "a VIP can be the source of ARP requests"
    if role == "decap" and leaf == "rp_filter" and effective != 0:
        return "drops decapsulated packets (unless the device has an IPv4 address)"
    return None
