"""The MSS clamp of tunnel-mode DSR: the arithmetic, its refusals, and what to write.

A balancer that encapsulates adds the tunnel's overhead to every client packet and
neither fragments nor lets PMTUD work (the replies take another path), so a full-size
client segment vanishes. The clamp (``nft:mss``, dsrctl/kinds/mss.py) lowers the MSS the
server advertises in its SYN-ACKs from the VIPs, per IP version of the VIPs:

    MSS = uplink MTU - the tunnel's overhead - 40 (IPv4: TCP + IP) or 60 (IPv6)

taking the smallest over the tunnels that can carry that IP version (ipip and gue carry
IPv4, ip6ip6 IPv6, gre, ip6gre and vxlan-gpe both). The uplink is the tunnel's
``uplink`` or the device of the main table's default route of its outer IP version (of a
multipath route, the next hop's device with the smallest MTU). A tunnel's ``mss``
replaces its default and may not exceed it; it is an MSS of its outer IP version's
connections: for the other version (a gre tunnel carrying IPv6 VIPs, say) the same
packet size holds 20 bytes less (or more) of TCP payload.

The host answers plain questions (its uplinks and their MTUs, providers/linux/uplinks.py;
whether nft is installed); the verdicts, the notes and the files are dsrctl's. Called by
the spec checks (validate, plan, apply) and by the planner, for a spec with tunnels only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from dsrctl.errors import MISSING, SpecError
from dsrctl.kinds.mss import RESOURCE, TABLE
from dsrctl.model import (
    DIRECTORY,
    ClampRule,
    FileState,
    MssClamp,
    dir_id,
    file_id,
    symlink_id,
    under_root,
)
from dsrctl.tunnels import TunnelSpec

if TYPE_CHECKING:
    from dsrctl.kinds.base import Desired
    from dsrctl.spec import Spec
    from providers.linux.persist import Detection
    from providers.linux.uplinks import Uplinks

TCP_IP = {4: 40, 6: 60}  # TCP and IP headers without options
WHY = "PMTUD cannot work on the asymmetric path"


class MssHost(Protocol):
    def detect_persistence(self, root: str, interface: str) -> Detection: ...


class MssCheckHost(MssHost, Protocol):
    def nft_path(self) -> str | None: ...


@dataclass(frozen=True)
class TunnelLimit:
    """What one tunnel allows: its uplink, the MTU there and the MSS that fits."""

    index: int  # in the spec's [[tunnel]] array
    tunnel: TunnelSpec
    uplink: str
    mtu: int

    @property
    def default(self) -> int:
        return self.mtu - self.tunnel.overhead - TCP_IP[self.tunnel.family]

    @property
    def mss(self) -> int:
        return self.tunnel.mss if self.tunnel.mss is not None else self.default

    def mss_for(self, version: int) -> int:
        """The MSS of connections of IP ``version`` that fit the same packets."""
        return self.mss + TCP_IP[self.tunnel.family] - TCP_IP[version]

    def arithmetic(self) -> str:
        return (
            f"{self.uplink} MTU {self.mtu} - {self.tunnel.overhead} {self.tunnel.kind} - "
            f"{TCP_IP[self.tunnel.family]} = {self.default}"
        )

    def reason(self) -> str:
        given = f" (tunnel[{self.index}].mss = {self.tunnel.mss})" if self.tunnel.mss else ""
        return (
            f"{self.tunnel.kind} adds {self.tunnel.overhead} bytes on {self.uplink} "
            f"(MTU {self.mtu}){given}"
        )


def tunnel_limits(spec: Spec, uplinks: Uplinks) -> list[TunnelLimit]:
    """Each tunnel's uplink and MSS; SpecError for an uplink that is not there or an
    ``mss`` above what the uplink carries. A default route over several devices (ECMP)
    gives the smallest MTU among them: the encapsulated packets may arrive on any."""
    limits = []
    for index, tunnel in enumerate(spec.tunnels):
        key = f"tunnel[{index}].uplink"
        if tunnel.uplink is not None:
            uplink = uplinks.named(tunnel.uplink)
            if uplink is None:
                raise SpecError(spec.path, key, tunnel.uplink, "no such interface on this host")
        else:
            uplink = uplinks.narrowest(tunnel.family)
        if uplink is None:
            raise SpecError(
                spec.path,
                key,
                MISSING,
                f"this host has no IPv{tunnel.family} default route in the main table to "
                "find the uplink by (the MSS clamp starts from its MTU); name the interface "
                "the encapsulated packets arrive on",
            )
        limit = TunnelLimit(index, tunnel, uplink.name, uplink.mtu)
        if tunnel.mss is not None and tunnel.mss > limit.default:
            raise SpecError(
                spec.path,
                f"tunnel[{index}].mss",
                tunnel.mss,
                f"above what the uplink carries ({limit.arithmetic()})",
            )
        limits.append(limit)
    return limits


def check_mss(spec: Spec, host: MssCheckHost, uplinks: Uplinks) -> None:
    """validate/plan refuse a tunnel spec whose clamp cannot be made."""
    from providers.linux.nft import SBIN

    if not spec.tunnels:
        return
    if host.nft_path() is None:
        raise SpecError(
            spec.path,
            "tunnel[0].kind",
            spec.tunnels[0].kind,
            "tunnel mode clamps the MSS of the VIPs' SYN-ACKs with nftables, and nft is not "
            f"installed (not on PATH, nor in {' or '.join(SBIN)}): install nftables",
        )
    tunnel_limits(spec, uplinks)


def clamp_for(spec: Spec, limits: list[TunnelLimit]) -> tuple[MssClamp | None, str]:
    """The table for the spec's VIPs (None: no VIP comes through a tunnel) and why."""
    from providers.linux.nft import collapse

    rules: dict[int, ClampRule] = {}
    reasons: list[str] = []
    for version in (4, 6):
        carrying = [limit for limit in limits if version in limit.tunnel.inner]
        sources = collapse((vip.cidr for vip in spec.vips if vip.version == version), version)
        if not carrying or not sources:
            continue
        lowest = min(carrying, key=lambda limit: limit.mss_for(version))
        rules[version] = ClampRule(lowest.mss_for(version), sources)
        if lowest.reason() not in reasons:
            reasons.append(lowest.reason())
    if not rules:
        return None, ""
    values = (
        str(next(iter(rules.values())).mss)
        if len(rules) == 1
        else ", ".join(f"{rule.mss} (IPv{version})" for version, rule in rules.items())
    )
    why = f"clamp the MSS of SYN-ACKs from the VIPs to {values}: {' and '.join(reasons)}, and {WHY}"
    return MssClamp(rules.get(4), rules.get(6)), why


@dataclass
class MssPlan:
    """What the spec's tunnels want: the table and its files, by host path."""

    clamp: MssClamp | None
    note: str = ""  # the step's: why the clamp
    files: dict[str, FileState] = field(default_factory=dict)
    symlinks: dict[str, str] = field(default_factory=dict)
    dirs: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def resources(self) -> set[str]:
        return (
            ({RESOURCE} if self.clamp is not None else set())
            | {file_id(path) for path in self.files}
            | {symlink_id(path) for path in self.symlinks}
            | {dir_id(path) for path in self.dirs}
        )

    def add_to(self, desired: Desired) -> None:
        if self.clamp is not None:
            desired.mss[TABLE] = self.clamp
            desired.step_notes[RESOURCE] = self.note
        desired.files.update(self.files)
        desired.symlinks.update(self.symlinks)
        desired.dirs.update(self.dirs)
        desired.notes += self.notes


def plan_mss(spec: Spec, host: MssHost, uplinks: Uplinks) -> MssPlan | None:
    """None without tunnels (then the way back removes a table dsrctl made)."""
    from providers.linux.persist import mss_unit

    if not spec.tunnels:
        return None
    clamp, why = clamp_for(spec, tunnel_limits(spec, uplinks))
    result = MssPlan(clamp, note=why)
    persist = spec.linux.persist
    if clamp is None:
        result.notes.append(
            "no VIP of the spec can arrive through its tunnels (ipip and gue carry IPv4, "
            "ip6ip6 IPv6): no MSS clamp"
        )
        return result
    if not persist.enabled:
        return result
    detection = host.detect_persistence(persist.root, spec.linux.interface)
    rendered = mss_unit.render(clamp, os.path.abspath(spec.path), detection.systemd)
    if not detection.systemd:
        result.notes.append(
            f"the MSS clamp does not come back after a reboot by itself: systemd does not "
            f"boot {'this host' if detection.live else persist.root}, so dsrctl writes "
            f"{mss_unit.NFT_FILE} only; load it at boot (nft -f {mss_unit.NFT_FILE})"
        )
    root = persist.root
    result.files = {under_root(root, path): state for path, state in rendered.files.items()}
    result.symlinks = {under_root(root, path): to for path, to in rendered.symlinks.items()}
    result.dirs = {under_root(root, path): DIRECTORY for path in rendered.dirs}
    return result
