"""A stateful stand-in for netsh.exe that refuses what netsh refuses, with netsh's texts.

The arguments are joined into one command line and split again the way netsh does
(double quotes group words), so a name with a space that dsrctl forgot to quote breaks
here as it would on Windows. Keyword names are checked against each command's usage: a
misspelled keyword (``weakhostsendsend=enabled``) is a syntax error, as on Windows.
"""

from __future__ import annotations

import ipaddress

from fakewin import firewall, formats
from fakewin.host import adapter, elevated, emit, injected_failure, load, save
from fakewin.syntax import (
    ELEMENT,
    ELEVATION,
    ESSENTIAL,
    EXISTS,
    FILENAME,
    INCORRECT,
    NOT_FOUND,
    SYNTAX,
    Refused,
    bind,
    tokenize,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from fakewin.host import State

    Handler = Callable[[State, dict[str, str]], list[str]]
    # path -> (handler, params, required, writes, flags)
    Command = tuple[Handler, list[str], list[str], bool, tuple[str, ...]]

ON_OFF = ("enabled", "disabled")
SET_INTERFACE: dict[str, Any] = {
    **{k: ON_OFF for k in ("forwarding", "advertise", "nud", "managedaddress", "otherstateful")},
    **{k: ON_OFF for k in ("weakhostsend", "weakhostreceive", "ignoredefaultroutes")},
    **{k: ON_OFF for k in ("advertisedefaultroute", "forcearpndwolpattern")},
    "enabledirectedmacwolpattern": ON_OFF,
    "routerdiscovery": ("enabled", "disabled", "dhcp"),
    "ecncapability": ("ignore", "disable", "application", "enable"),
    "store": ("active", "persistent"),
    **{k: int for k in ("mtu", "siteprefixlength", "basereachable", "retransmittime")},
    **{k: int for k in ("dadtransmits", "advertisedrouterlifetime", "currenthoplimit", "metric")},
}


def interface_or_fail(state: State, name: str, unknown: str) -> dict[str, Any]:
    entry = adapter(state, name)
    if entry is None:
        raise Refused(unknown)
    return entry


# -- handlers -------------------------------------------------------------------------------
def show_adapters(state: State, values: dict[str, str]) -> list[str]:
    return formats.adapters(state)


def set_adapter(state: State, values: dict[str, str]) -> list[str]:
    entry = interface_or_fail(state, values["name"], ELEMENT)
    new = values.get("newname")
    if new is not None:
        other = adapter(state, new)
        if other is not None and other is not entry:
            raise Refused(EXISTS)
        for device in state["devices"]:
            if device.get("adapter") == entry["name"]:
                device["adapter"] = new
        entry["name"] = new
    return []  # netsh prints nothing when it renames


def family_of(words: list[str]) -> int:
    return 6 if words[1] == "ipv6" else 4


def unknown_interface(state: State) -> str:
    return ELEMENT if state["version"] == "2003" else FILENAME


def show_interfaces(family: int) -> Handler:
    def handler(state: State, values: dict[str, str]) -> list[str]:
        if "interface" not in values:
            raise Refused(SYNTAX)  # the table form is not used by dsrctl
        entry = interface_or_fail(state, values["interface"], FILENAME)
        return formats.detail(state, family, entry)

    return handler


def show_addresses(family: int) -> Handler:
    def handler(state: State, values: dict[str, str]) -> list[str]:
        name = values.get("name") or values.get("interface")
        entries = state["adapters"]
        if name is not None:
            entries = [interface_or_fail(state, name, unknown_interface(state))]
        if family == 6:
            return formats.ipv6_addresses(state, entries)
        return formats.ipv4_addresses(state, entries)

    return handler


def set_interface(family: int) -> Handler:
    def handler(state: State, values: dict[str, str]) -> list[str]:
        entry = interface_or_fail(state, values.pop("interface"), FILENAME)
        settings = entry[f"ipv{family}"]
        for key, value in values.items():
            allowed = SET_INTERFACE[key]
            if allowed is int:
                if not value.isdigit():
                    raise Refused(INCORRECT)
                settings[key] = int(value)
                if key == "metric":
                    settings["automatic_metric"] = False
            elif value.lower() not in allowed:
                raise Refused(INCORRECT)
            elif key in ("weakhostsend", "weakhostreceive"):
                settings[key] = value.lower()
        return ok(state)

    return handler


def add_address(family: int) -> Handler:
    def handler(state: State, values: dict[str, str]) -> list[str]:
        name = values["interface" if family == 6 else "name"]
        entry = interface_or_fail(state, name, unknown_interface(state))
        address, prefix = parse_address(
            values.get("addr") or values["address"], values.get("mask"), family
        )
        skip = values.get("skipassource", "false").lower()
        if skip not in ("true", "false"):
            raise Refused(INCORRECT)
        if "skipassource" in values and not state.get("skipassource", True):
            raise Refused(SYNTAX, "add address ... (this build has no skipassource)")
        settings = entry[f"ipv{family}"]
        if any(existing[0] == address for existing in settings["addresses"]):
            raise Refused(EXISTS)
        settings["addresses"].append([address, prefix, skip == "true"])
        if values.get("gateway"):
            settings["gateways"].append(values["gateway"])
        return ok(state)

    return handler


def set_address(state: State, values: dict[str, str]) -> list[str]:
    entry = interface_or_fail(state, values["name"], unknown_interface(state))
    settings = entry["ipv4"]
    source = values.get("source", "static").lower()
    if source == "dhcp":
        settings.update(dhcp=True, addresses=[], gateways=[])
    elif source == "static":
        given = values.get("addr") or values.get("address")
        if given is None:
            raise Refused(ESSENTIAL)
        address, prefix = parse_address(given, values.get("mask"), 4)
        gateway = values.get("gateway", "none")
        settings.update(dhcp=False, addresses=[[address, prefix, False]])
        settings["gateways"] = [] if gateway.lower() == "none" else [gateway]
    else:
        raise Refused(INCORRECT)
    return ok(state)


def delete_address(family: int) -> Handler:
    def handler(state: State, values: dict[str, str]) -> list[str]:
        name = values["interface" if family == 6 else "name"]
        entry = interface_or_fail(state, name, unknown_interface(state))
        settings = entry[f"ipv{family}"]
        given = values.get("addr") or values.get("address")
        if given is None:
            raise Refused(ESSENTIAL)
        kept = [a for a in settings["addresses"] if a[0] != given.split("/")[0]]
        if len(kept) == len(settings["addresses"]):
            raise Refused(ELEMENT)
        settings["addresses"] = kept
        return ok(state)

    return handler


def parse_address(value: str, mask: str | None, family: int) -> tuple[str, int]:
    try:
        if family == 6:
            network = ipaddress.IPv6Interface(value if "/" in value else value + "/128")
        elif "/" in value:
            network = ipaddress.IPv4Interface(value)
        elif mask is None:
            raise Refused(ESSENTIAL)
        else:
            network = ipaddress.IPv4Interface(f"{value}/{mask}")
    except ValueError:
        raise Refused(INCORRECT) from None
    return network.ip.compressed, network.network.prefixlen


def ok(state: State) -> list[str]:
    return [formats.words(state)["ok"], ""]


IPV4_ADD = ["name", "address", "mask", "gateway", "gwmetric", "type", "subinterface", "store"]
IPV4_ADD += ["validlifetime", "preferredlifetime", "skipassource"]
IPV6_ADD = ["interface", "address", "type", "validlifetime", "preferredlifetime", "store"]
IPV6_ADD += ["skipassource"]
IPV4_SET = ["name", "source", "address", "mask", "gateway", "gwmetric", "type", "subinterface"]


def commands(version: str) -> dict[tuple[str, ...], Command]:
    table: dict[tuple[str, ...], Command] = {
        ("interface", "show", "interface"): (show_adapters, ["name"], [], False, ()),
        ("interface", "set", "interface"): (
            set_adapter,
            ["name", "admin", "connect", "newname"],
            ["name"],
            True,
            (),
        ),
    }
    if version == "2003":
        legacy_add = ["name", "addr", "mask", "gateway", "gwmetric"]
        legacy_set = ["name", "source", "addr", "mask", "gateway", "gwmetric"]
        ip = ("interface", "ip")
        table[(*ip, "show", "address")] = (show_addresses(4), ["name"], [], False, ())
        table[(*ip, "show", "config")] = (show_addresses(4), ["name"], [], False, ())
        table[(*ip, "add", "address")] = (add_address(4), legacy_add, legacy_add[:3], True, ())
        table[(*ip, "set", "address")] = (set_address, legacy_set, ["name"], True, ())
        table[(*ip, "delete", "address")] = (
            delete_address(4),
            ["name", "addr", "gateway"],
            ["name"],
            True,
            (),
        )
        return table
    for family in (4, 6):
        ctx = ("interface", f"ipv{family}")
        show = ["interface", "level", "store"]
        table[(*ctx, "show", "interfaces")] = (show_interfaces(family), show, [], False, ())
        show = ["name", "store"] if family == 4 else ["interface", "level", "store"]
        table[(*ctx, "show", "addresses")] = (show_addresses(family), show, [], False, ())
        params = ["interface", *SET_INTERFACE]
        table[(*ctx, "set", "interface")] = (set_interface(family), params, ["interface"], True, ())
        add = IPV4_ADD if family == 4 else IPV6_ADD
        table[(*ctx, "add", "address")] = (add_address(family), add, add[:2], True, ())
        delete = (
            ["name", "address", "gateway", "store"]
            if family == 4
            else ["interface", "address", "store"]
        )
        table[(*ctx, "delete", "address")] = (delete_address(family), delete, delete[:1], True, ())
    table[("interface", "ipv4", "set", "address")] = (set_address, IPV4_SET, ["name"], True, ())
    table.update(firewall.commands())
    return table


def run(argv: list[str]) -> int:
    state = load()
    line = " ".join(argv)
    state.setdefault("log", []).append(f"netsh {line}")
    try:
        code = _dispatch(state, line)
    finally:
        save(state)
    return code


def _dispatch(state: State, line: str) -> int:
    try:
        tokens = tokenize(line)
        words = [t.lower() for t in tokens]
        if state["version"] != "2003" and words[:2] == ["interface", "ip"]:
            words[1] = "ipv4"  # 2008 and later keep 'interface ip' as an alias of ipv4
            if words[2:4] == ["show", "address"]:
                words[3] = "addresses"
        table = commands(state["version"])
        path = next((p for p in table if tuple(words[: len(p)]) == p), None)
        if path is None:
            raise Refused(NOT_FOUND.format(line=line))
        handler, params, required, writes, flags = table[path]
        if writes and not elevated(state):
            raise Refused(ELEVATION)
        failure = injected_failure(state, line)
        if failure is not None:
            emit(state, failure[0])
            return failure[1]
        values = bind(tokens[len(path) :], params, required, flags)
        emit(state, handler(state, values))
        return 0
    except Refused as refused:
        emit(state, refused.lines)
        return 1
