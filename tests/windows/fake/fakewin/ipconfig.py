"""A stand-in for ipconfig.exe: ``ipconfig /all`` with each adapter's device description.

netsh never says which device an adapter is; ``ipconfig /all`` does ("Description"), and
that is how ``dsrctl import`` finds the loopback adapter. The description of an adapter
comes from the devcon device bound to it (``devices[].adapter``), else from the adapter's
own ``description`` (a physical NIC by default). English output only: the fake's other
languages are refused earlier, by the netsh reads.
"""

from __future__ import annotations

import ipaddress

from fakewin.host import emit, load, save

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from fakewin.host import State

NIC = "Intel(R) 82574L Gigabit Network Connection"


def run(argv: list[str]) -> int:
    state = load()
    state.setdefault("log", []).append(" ".join(["ipconfig", *argv]))
    try:
        if [arg.lower() for arg in argv] != ["/all"]:
            emit(state, ["", "Error: unrecognized or incomplete command line.", ""])
            return 1
        emit(state, _all(state))
        return 0
    finally:
        save(state)


def _description(state: State, entry: dict[str, Any]) -> str:
    for device in state["devices"]:
        if device.get("adapter", "").lower() == entry["name"].lower():
            return str(device["description"])
    return str(entry.get("description", NIC))


def _all(state: State) -> list[str]:
    lines = ["", "Windows IP Configuration", ""]
    lines += ["   Host Name . . . . . . . . . . . . : WEB01", ""]
    for number, entry in enumerate(state["adapters"]):
        dhcp = "Yes" if entry["ipv4"]["dhcp"] else "No"
        lines += [
            f"Ethernet adapter {entry['name']}:",
            "",
            "   Connection-specific DNS Suffix  . : ",
            f"   Description . . . . . . . . . . . : {_description(state, entry)}",
            f"   Physical Address. . . . . . . . . : 02-00-4C-4F-4F-{number:02X}",
            f"   DHCP Enabled. . . . . . . . . . . : {dhcp}",
        ]
        for address, prefix, *_ in entry["ipv4"]["addresses"]:
            lines.append(f"   IPv4 Address. . . . . . . . . . . : {address}(Preferred)")
            mask = ipaddress.IPv4Network(f"0.0.0.0/{prefix}").netmask
            lines.append(f"   Subnet Mask . . . . . . . . . . . : {mask}")
        lines.append("")
    return lines
