"""The ``[[tunnel]]`` tables of the spec: the decap side of tunnel-mode DSR.

Pure, like the rest of the spec. Whether this kernel has the kind's modules is a host
question, asked at validate/plan (``dsrctl/linux/checks.py``).

A tunnel's device is either the fallback device that loading the kind's module creates
(``tunl0``, ``gre0``, ``ip6tnl0``, ``ip6gre0``: dsrctl loads the module and sets the
device up) or, under any other name, a collect-metadata (``external``) device that dsrctl
creates. The kernel allows one collect-metadata device per kind and namespace, and GUE
hands its inner IPIP packet to the ipip external device if there is one, else to
``tunl0``: hence the refusals of :func:`parse_tunnels`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dsrctl.schema import Table

KINDS = ("ipip", "ip6ip6", "gre", "ip6gre", "gue", "vxlan-gpe")
# The device each kind decapsulates into unless the spec names one.
DEFAULT_NAMES = {
    "ipip": "tunl0",
    "ip6ip6": "ip6tnl0",
    "gre": "gre0",
    "ip6gre": "ip6gre0",
    "gue": "tunl0",  # GUE carries IPIP: the inner packet goes to the ipip device
    "vxlan-gpe": "dsrgpe0",
}
# The device the kind's module creates in every namespace, down (vxlan has none).
FALLBACK_NAMES = {
    "ipip": "tunl0",
    "ip6ip6": "ip6tnl0",
    "gre": "gre0",
    "ip6gre": "ip6gre0",
    "gue": "tunl0",
}
# Other fallback devices of these modules: a device of dsrctl's cannot take these names.
_MODULE_DEVICES = {
    "tunl0": "ipip",
    "gre0": "ip_gre",
    "gretap0": "ip_gre",
    "erspan0": "ip_gre",
    "ip6tnl0": "ip6_tunnel",
    "ip6gre0": "ip6_gre",
    "sit0": "sit",
}
# The bytes the balancer adds in front of the client's packet (DOMAIN.md section 5): the
# outer IP header, and what each kind adds after it (GRE 4; UDP 8 + GUE 4; UDP 8 +
# VXLAN-GPE 8).
IP_HEADER = {4: 20, 6: 40}
ENCAP_HEADER = {"ipip": 0, "gre": 4, "gue": 12, "vxlan-gpe": 16, "ip6ip6": 0, "ip6gre": 4}
# The outer IP version of each kind; vxlan-gpe's may be given (``outer = 6``): its
# collect-metadata device listens on both.
OUTER = {"ipip": 4, "gre": 4, "gue": 4, "vxlan-gpe": 4, "ip6ip6": 6, "ip6gre": 6}
# The IP versions of the packets each kind carries inside.
INNER = {
    "ipip": (4,),
    "gue": (4,),  # GUE as dsrctl sets it up carries IPIP
    "ip6ip6": (6,),
    "gre": (4, 6),
    "ip6gre": (4, 6),
    "vxlan-gpe": (4, 6),
}
MODULES = {
    "ipip": ("ipip",),
    "gre": ("ip_gre",),
    "ip6ip6": ("ip6_tunnel",),
    "ip6gre": ("ip6_gre",),
    "gue": ("fou", "ipip"),
    "vxlan-gpe": ("vxlan",),
}
# The kernel device type behind each kind: two tunnels on one type would need two
# collect-metadata devices (the kernel allows one per namespace) or would share a device.
DEVICE_TYPES = {
    "ipip": "ipip",
    "gue": "ipip",
    "gre": "gre",
    "ip6ip6": "ip6tnl",
    "ip6gre": "ip6gre",
    "vxlan-gpe": "vxlan",
}
GUE_PORT = 19523  # GitHub GLB's documented port
VXLAN_GPE_PORT = 4790  # IANA's VXLAN-GPE port
TUNNEL_ON_WINDOWS = (
    "[[tunnel]] is Linux only (tunnel-mode DSR decapsulates in the Linux kernel); "
    "remove the [[tunnel]] tables from a spec for Windows"
)
MSS_RANGE = (536, 65495)  # RFC 879's minimum; the largest an IPv4 MTU of 65535 carries


@dataclass(frozen=True)
class TunnelSpec:
    kind: str  # one of KINDS
    name: str  # the decap device
    port: int | None  # gue only
    mss: int | None  # None: computed from the uplink's MTU
    uplink: str | None  # None: the device of the outer family's default route
    outer: int = 0  # the outer IP version; 0: the kind's (OUTER)

    @property
    def family(self) -> int:
        """The outer IP version the balancer sends."""
        return self.outer or OUTER[self.kind]

    @property
    def inner(self) -> tuple[int, ...]:
        """The IP versions of the packets the tunnel carries."""
        return INNER[self.kind]

    @property
    def fallback(self) -> bool:
        """The device is the one the kind's module creates (dsrctl only sets it up)."""
        return FALLBACK_NAMES.get(self.kind) == self.name

    @property
    def overhead(self) -> int:
        return IP_HEADER[self.family] + ENCAP_HEADER[self.kind]

    @property
    def modules(self) -> tuple[str, ...]:
        return MODULES[self.kind]

    @property
    def device_type(self) -> str:
        """The kernel's link kind of the device (IFLA_INFO_KIND)."""
        return DEVICE_TYPES[self.kind]


def parse_tunnels(root: Table, name_problem: Callable[[str], str | None]) -> tuple[TunnelSpec, ...]:
    """Every ``[[tunnel]]``; ``name_problem`` is the spec's interface-name check (passed in
    so that this module needs nothing of dsrctl.spec, which imports it)."""
    tunnels: list[TunnelSpec] = []
    names: dict[str, str] = {}  # device -> where
    types: dict[str, tuple[str, str]] = {}  # device type -> (kind, where)
    for table in root.tables("tunnel"):
        tunnel = _parse_tunnel(table, name_problem)
        where = table.keypath
        earlier = types.get(tunnel.device_type)
        if earlier is not None:
            raise table.error("kind", tunnel.kind, _same_type_reason(tunnel.kind, *earlier))
        if tunnel.name in names:
            raise table.error(
                "name",
                tunnel.name,
                f"duplicate tunnel device: already given at {names[tunnel.name]}",
            )
        names[tunnel.name] = where
        types[tunnel.device_type] = (tunnel.kind, where)
        tunnels.append(tunnel)
    return tuple(tunnels)


def _same_type_reason(kind: str, earlier_kind: str, where: str) -> str:
    if {kind, earlier_kind} == {"ipip", "gue"}:
        return (
            f"a gue tunnel and an ipip tunnel both decapsulate into an ipip device (GUE "
            f"carries IPIP), and {where} already declares one: the gue tunnel's device "
            "receives plain IPIP too, so declare only the gue tunnel"
        )
    return (
        f"a second {kind} tunnel (the first is at {where}): the kernel takes one "
        "collect-metadata device per kind, and it accepts packets from every balancer"
    )


def _parse_tunnel(table: Table, name_problem: Callable[[str], str | None]) -> TunnelSpec:
    kind = table.string("kind", required=True)
    if kind not in KINDS:
        known = ", ".join(f'"{k}"' for k in KINDS)
        raise table.error("kind", kind, f"unknown tunnel kind; known: {known}")
    name = table.string("name", DEFAULT_NAMES[kind])
    problem = name_problem(name) or _name_clash(kind, name)
    if problem:
        raise table.error("name", name, problem)
    port: int | None = None
    if table.has("port"):
        port = table.integer("port")
        if kind != "gue":
            why = (
                f"VXLAN-GPE always uses UDP port {VXLAN_GPE_PORT}"
                if kind == "vxlan-gpe"
                else f"{kind} is not carried in UDP"
            )
            raise table.error("port", port, f"only a gue tunnel has a port; {why}")
        if not 1 <= port <= 65535:
            raise table.error("port", port, "out of range: a UDP port is 1-65535")
    elif kind == "gue":
        port = GUE_PORT
    mss: int | None = None
    if table.has("mss"):
        mss = table.integer("mss")
        low, high = MSS_RANGE
        if not low <= mss <= high:
            raise table.error("mss", mss, f"out of range: a TCP MSS here is {low}-{high}")
    uplink = table.optional_string("uplink")
    if uplink is not None:
        problem = name_problem(uplink)
        if problem:
            raise table.error("uplink", uplink, problem)
        if uplink == name:
            raise table.error(
                "uplink",
                uplink,
                "the uplink receives the encapsulated packets; it cannot be the decap device",
            )
    outer = 0
    if table.has("outer"):
        outer = table.integer("outer")
        if kind != "vxlan-gpe":
            raise table.error(
                "outer",
                outer,
                f"only a vxlan-gpe tunnel has a choice of outer IP version; {kind}'s is "
                f"IPv{OUTER[kind]}",
            )
        if outer not in (4, 6):
            raise table.error("outer", outer, "an IP version: 4 or 6")
        if outer == OUTER[kind]:
            outer = 0  # the default, spelled out: the same spec
    table.finish()
    return TunnelSpec(kind=kind, name=name, port=port, mss=mss, uplink=uplink, outer=outer)


def _name_clash(kind: str, name: str) -> str | None:
    """A name another module's fallback device holds (or lo) cannot be this tunnel's."""
    if name == "lo":
        return "'lo' is the loopback device, not a tunnel"
    module = _MODULE_DEVICES.get(name)
    if module is None or FALLBACK_NAMES.get(kind) == name:
        return None
    return (
        f"'{name}' is the device the {module} module creates; give the {kind} tunnel "
        f"another name (or {FALLBACK_NAMES[kind]!r}, the kind's own fallback device)"
        if kind in FALLBACK_NAMES
        else f"'{name}' is the device the {module} module creates; give the tunnel another name"
    )
