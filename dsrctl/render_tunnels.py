"""`show`'s tunnel section as text (dsrctl.linux.decap_side gives the data): the decap
devices, the fou ports, the kernel modules of the tunnel kinds and dsrctl's MSS clamp,
each with whether dsrctl manages and created it. Imported only when there is a tunnel
side to show."""

from __future__ import annotations

from typing import Any, Protocol


class Lines(Protocol):
    """Where the lines go: dsrctl.render.Output (not imported: render imports this)."""

    def line(self, text: str = "", style: str | None = None) -> None: ...


HEADING = (
    "Tunnel mode (decap devices, fou ports, kernel modules, MSS clamp) on the host and in "
    "dsrctl's records:"
)
MSS_TABLE = "MSS clamp (nftables table inet dsrctl)"


def managed_text(entry: dict[str, Any], verb: str = "created", before: str = "there") -> str:
    """``managed by dsrctl, created by dsrctl: yes``, as for the VIP ranges."""
    if not entry["managed"]:
        return "not managed by dsrctl"
    if entry[f"{verb}_by_dsrctl"]:
        return f"managed by dsrctl, {verb} by dsrctl: yes"
    return f"managed by dsrctl, {verb} by dsrctl: no ({before} before dsrctl)"


def device_text(entry: dict[str, Any]) -> str:
    """``vxlan-gpe external, up``; ``ipip fallback, down``."""
    if not entry["on_host"]:
        return "missing from the host"
    flavour = " external" if entry["external"] else " fallback" if entry["fallback"] else ""
    return f"{entry['kind']}{flavour}, {'up' if entry['up'] else 'down'}"


def module_text(entry: dict[str, Any]) -> str:
    """``loaded, built in, in use by dsrgpe0``; ``not loaded``."""
    if not entry["loaded"]:
        return "not loaded"
    parts = ["loaded, built in" if entry["builtin"] else "loaded"]
    if entry["users"]:
        parts.append("in use by " + ", ".join(entry["users"]))
    return ", ".join(parts)


def render_tunnels(out: Lines, report: dict[str, Any]) -> None:
    out.line(HEADING, "bold")
    if report["devices"]:
        out.line("  decap devices:")
        for entry in report["devices"]:
            style = None if entry["on_host"] else "yellow"
            out.line(f"    {entry['name']}  {device_text(entry)}, {managed_text(entry)}", style)
    if report["fou_ports"] or report["fou_note"]:
        out.line("  fou ports (IPv4):")
        for entry in report["fou_ports"]:
            if entry["on_host"] is None:
                what = "not read"
            elif entry["on_host"]:
                what = str(entry["type"])
            else:
                what = "missing from the host"
            out.line(f"    {entry['port']}  {what}, {managed_text(entry)}")
        if report["fou_note"]:
            out.line(f"    ! {report['fou_note']}", "yellow")
    if report["modules"]:
        out.line("  kernel modules:")
        for entry in report["modules"]:
            status = managed_text(entry, "loaded", "loaded")
            out.line(f"    {entry['name']}  {module_text(entry)}, {status}")
    render_clamp(out, report["mss"])


def render_clamp(out: Lines, mss: dict[str, Any]) -> None:
    if mss["on_host"] is None:
        out.line(f"  {MSS_TABLE}: {mss['note']}; {managed_text(mss)}", "yellow")
        return
    if not mss["on_host"]:
        style = "yellow" if mss["managed"] else None
        where = "missing from the host" if mss["managed"] else "absent"
        out.line(f"  {MSS_TABLE}: {where}, {managed_text(mss)}", style)
        return
    out.line(f"  {MSS_TABLE}: {managed_text(mss)}")
    for family, key in (("IPv4", "ipv4"), ("IPv6", "ipv6")):
        rule = mss[key]
        if rule is None:
            out.line(f"    {family}  absent")
        else:
            out.line(f"    {family}  MSS {rule['mss']}  for {', '.join(rule['sources'])}")
    for item in mss["other"]:
        out.line(f"    other (not dsrctl's): {item}", "yellow")
