"""The fake Windows host's state (a JSON file named by $DSRCTL_FAKE_WINDOWS) and output.

State, all plain JSON so that tests can read and change it directly:
  version    "2008+" or "2003" (which netsh contexts exist, which formats are printed)
  language   "en", "de" or "fr" (the display language of netsh's read output)
  elevated   false: every write fails as in a shell that is not "Run as administrator"
             ($DSRCTL_FAKE_UNELEVATED=1 does the same)
  style      how output looks: crlf, bom, pad (extra column/key width), lean (a build
             that drops optional fields), rich (one that adds some), ip_lines (rule
             addresses one per line), plain_hosts (rule addresses without /32)
  adapters   [{name, ipv4: {...}, ipv6: {...}}] in creation order
  devices    devcon devices [{instance, hwid, description, adapter}]
  firewall   [{name, enabled, dir, action, protocol, localip, localport, ...}]
  fail       [{match: [words], output, exit, times}]: injected failures
  log        every command line run, in order
"""

from __future__ import annotations

import json
import os
import sys

TYPE_CHECKING = False  # typing costs milliseconds a call; the fake runs hundreds of times
if TYPE_CHECKING:
    from typing import Any

    State = dict[str, Any]

STYLE_DEFAULTS: dict[str, Any] = {
    "crlf": True,
    "bom": False,
    "pad": 0,
    "lean": False,
    "rich": False,
    "ip_lines": False,
    "plain_hosts": False,
}


def state_path() -> str:
    path = os.environ.get("DSRCTL_FAKE_WINDOWS")
    if not path:
        sys.stderr.write("fake Windows host: DSRCTL_FAKE_WINDOWS is not set\n")
        raise SystemExit(9)
    return path


def load() -> State:
    with open(state_path(), encoding="utf-8") as handle:
        state: State = json.load(handle)
    state.setdefault("style", {})
    for key, value in STYLE_DEFAULTS.items():
        state["style"].setdefault(key, value)
    return state


def save(state: State) -> None:
    path = state_path()
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(state, handle, indent=1)
    os.replace(path + ".tmp", path)


def elevated(state: State) -> bool:
    return bool(state.get("elevated", True)) and os.environ.get("DSRCTL_FAKE_UNELEVATED") != "1"


def emit(state: State, lines: list[str]) -> None:
    """Print as Windows does: CRLF line ends (unless the style says otherwise), and a
    UTF-8 BOM first when the style asks for one (output saved by PowerShell)."""
    end = "\r\n" if state["style"]["crlf"] else "\n"
    text = end.join(lines) + end
    if state["style"]["bom"]:
        text = "\ufeff" + text
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.flush()


def adapter(state: State, name: str) -> dict[str, Any] | None:
    """Adapter names compare without regard to case, as on Windows."""
    for entry in state["adapters"]:
        if entry["name"].lower() == name.lower():
            return entry
    return None


def index_of(state: State, entry: dict[str, Any]) -> int:
    return 10 + state["adapters"].index(entry)


def injected_failure(state: State, line: str) -> tuple[list[str], int] | None:
    for rule in state.get("fail", []):
        if rule.get("times", 1) <= 0:
            continue
        if all(word in line for word in rule["match"]):
            rule["times"] = rule.get("times", 1) - 1
            return rule["output"].split("\n"), int(rule.get("exit", 1))
    return None


def new_adapter(name: str, *, loopback: bool = False, metric: int = 25) -> dict[str, Any]:
    """A freshly created adapter: DHCP on, automatic metric, strong host."""
    family = {
        "weakhostsend": "disabled",
        "weakhostreceive": "disabled",
        "metric": metric,
        "automatic_metric": True,
        "addresses": [],
    }
    return {
        "name": name,
        "loopback": loopback,
        "ipv4": {**family, "dhcp": True, "gateways": []},
        "ipv6": {**family, "addresses": []},
    }
