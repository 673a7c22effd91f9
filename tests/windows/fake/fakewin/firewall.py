"""``netsh advfirewall firewall`` in the fake (Windows Server 2008 and later only).

Like the real one, it allows several rules with the same name, deletes every rule of a
name at once, takes ``name=all`` as every rule (show and delete), and answers "No rules
match the specified criteria." (exit 1) for a name it does not know.
"""

from __future__ import annotations

import ipaddress

from fakewin import formats
from fakewin.syntax import INCORRECT, NO_RULES, Refused

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from fakewin.host import State

ADD = [
    "name", "dir", "action", "program", "service", "description", "enable", "profile",
    "localip", "remoteip", "localport", "remoteport", "protocol", "interfacetype",
    "rmtcomputergrp", "rmtusrgrp", "edge", "security",
]  # fmt: skip
DELETE = ["name", "dir", "profile", "program", "service", "localip", "remoteip"]
DELETE += ["localport", "remoteport", "protocol"]
PROFILES = ("domain", "private", "public")


def matching(state: State, name: str) -> list[dict[str, Any]]:
    found = [rule for rule in state["firewall"] if rule["name"].lower() == name.lower()]
    if name.lower() == "all":
        found = list(state["firewall"])
    if not found:
        raise Refused(NO_RULES)
    return found


def show(state: State, values: dict[str, str]) -> list[str]:
    return formats.rules(state, matching(state, values["name"]), "verbose" in values)


def delete(state: State, values: dict[str, str]) -> list[str]:
    found = matching(state, values["name"])
    state["firewall"] = [rule for rule in state["firewall"] if rule not in found]
    return ["", f"Deleted {len(found)} rule(s).", formats.words(state)["ok"], ""]


def add(state: State, values: dict[str, str]) -> list[str]:
    if values["name"].lower() == "all":
        raise Refused(INCORRECT)
    rule = {
        "name": values["name"],
        "dir": _choice(values["dir"], ("in", "out")),
        "action": _choice(values["action"], ("allow", "block", "bypass")),
        "protocol": _protocol(values.get("protocol", "any")),
        "enabled": _choice(values.get("enable", "yes"), ("yes", "no")) == "yes",
        "profiles": _profiles(values.get("profile", "any")),
        "localip": _addresses(values.get("localip", "any")),
        "remoteip": _addresses(values.get("remoteip", "any")),
        "localport": _ports(values.get("localport", "any")),
        "remoteport": _ports(values.get("remoteport", "any")),
        "program": values.get("program"),
    }
    if rule["protocol"] not in ("tcp", "udp") and (rule["localport"] or rule["remoteport"]):
        raise Refused(INCORRECT)
    state["firewall"].append(rule)  # a second rule of the same name is allowed, as on Windows
    return [formats.words(state)["ok"], ""]


def _choice(value: str, allowed: tuple[str, ...]) -> str:
    if value.lower() not in allowed:
        raise Refused(INCORRECT)
    return value.lower()


def _protocol(value: str) -> str:
    value = value.lower()
    if value in ("tcp", "udp", "any", "icmpv4", "icmpv6") or value.isdigit():
        return value
    raise Refused(INCORRECT)


def _profiles(value: str) -> list[str]:
    items = [item.lower() for item in value.split(",")]
    if items == ["any"]:
        return list(PROFILES)
    if not set(items) <= set(PROFILES):
        raise Refused(INCORRECT)
    return [p for p in PROFILES if p in items]


def _addresses(value: str) -> list[str]:
    if value.lower() == "any":
        return []
    try:
        return [ipaddress.ip_address(item).compressed for item in value.split(",")]
    except ValueError:
        raise Refused(INCORRECT) from None


def _ports(value: str) -> list[str]:
    if value.lower() == "any":
        return []
    items = value.split(",")
    if not all(item.isdigit() and 0 <= int(item) <= 65535 for item in items):
        raise Refused(INCORRECT)
    return items


def commands() -> dict[tuple[str, ...], Any]:
    base = ("advfirewall", "firewall")
    return {
        (*base, "show", "rule"): (show, ["name", "profile", "type"], ["name"], False, ("verbose",)),
        (*base, "add", "rule"): (add, ADD, ["name", "dir", "action"], True, ()),
        (*base, "delete", "rule"): (delete, DELETE, ["name"], True, ()),
    }
