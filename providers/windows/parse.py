"""Parsers for netsh and devcon output: by key and by column header, never by position.

Tolerated, because real hosts differ: any column width, values wider than their column,
CRLF line ends, a leading BOM (output saved by PowerShell), fields a build adds or drops.
Not tolerated: output that lacks what dsrctl needs. netsh prints in the display language
of the host; a German or French host prints other keys, so the required keys are
missing, and the parser says which command printed what in which language instead of
guessing (a guess would be a wrong plan).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from providers.errors import HostError

_KEY_VALUE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9 ./()_-]*?)\s*:(?:\s+(.*?))?\s*$")
_DASHES = re.compile(r"^[\s-]*-{3,}[\s-]*$")
_CONFIG_FOR = re.compile(r'^Configuration for interface "(.*)"\s*$')
_IPV6_INTERFACE = re.compile(r"^Interface (\d+): (.+?)\s*$")

# Words that only appear when netsh speaks another language (headers and keys).
_LANGUAGE_MARKERS: dict[str, tuple[str, ...]] = {
    "German": (
        "Schnittstelle",
        "Regelname",
        "Aktiviert",
        "Adminstatus",
        "Verbunden",
        "Konfiguration",
    ),
    "French": ("Configuration de l", "Nom de la règle", "Activé", "État", "Connecté", "Paramètres"),
    "Spanish": ("Configuración", "Nombre de regla", "Habilitado", "Estado admin", "Conectado"),
    "Italian": ("Configurazione", "Nome regola", "Abilitato", "Stato amministrativo", "Connesso"),
}


class NetshOutputError(HostError):
    """netsh printed something dsrctl cannot read: another language, or an unknown format."""


def lines_of(text: str) -> list[str]:
    return [line.rstrip() for line in text.lstrip("\ufeff").splitlines()]


def detect_language(text: str) -> str | None:
    for language, markers in _LANGUAGE_MARKERS.items():
        if any(marker in text for marker in markers):
            return language
    return None


def unreadable(command: str, text: str, missing: str) -> NetshOutputError:
    language = detect_language(text)
    if language:
        why = (
            f"the output is in {language}; dsrctl reads English netsh output only (run it "
            "with the English display language for this account, e.g. after installing the "
            "en-US language pack)"
        )
    else:
        first = next((line.strip() for line in lines_of(text) if line.strip()), "(no output)")
        why = f"unexpected output (first line: {first[:100]!r})"
    return NetshOutputError(f"cannot read the output of `{command}`: {missing} not found; {why}")


def key_values(text: str) -> dict[str, str]:
    """``Key : value`` and ``Key:   value`` lines; the first occurrence of a key wins."""
    values: dict[str, str] = {}
    for line in lines_of(text):
        match = _KEY_VALUE.match(line)
        if match and match.group(1) not in values:
            values[match.group(1)] = match.group(2) or ""
    return values


def table(text: str, command: str, required: Sequence[str]) -> list[dict[str, str]]:
    """Rows of the first table: the header is the line above a line of dashes.

    Column names come from the dash runs under them, or (one solid dash line) from runs of
    two or more spaces in the header. Values are whitespace separated except the last
    column, which takes the rest of the line (names with spaces).
    """
    rows = lines_of(text)
    for index in range(1, len(rows)):
        if _DASHES.match(rows[index]) and rows[index - 1].strip():
            names = _column_names(rows[index - 1], rows[index])
            break
    else:
        raise unreadable(command, text, "a table header")
    missing = [name for name in required if name not in names]
    if missing:
        raise unreadable(command, text, f"column(s) {', '.join(missing)}")
    result = []
    for line in rows[index + 1 :]:
        if not line.strip():
            break
        values = line.split(None, len(names) - 1)
        if len(values) < len(names):
            raise unreadable(command, text, f"a complete row (got {line.strip()!r})")
        result.append(dict(zip(names, values, strict=True)))
    return result


def _column_names(header: str, dashes: str) -> list[str]:
    runs = [match.start() for match in re.finditer(r"-+", dashes)]
    if len(runs) > 1:
        bounds = [*runs[1:], len(header) + 1]
        return [header[start:end].strip() for start, end in zip(runs, bounds, strict=True)]
    return [name for name in re.split(r"\s{2,}", header.strip()) if name]


@dataclass(frozen=True)
class AdapterRow:
    name: str
    admin_state: str
    state: str
    type: str


def adapters(text: str, command: str) -> list[AdapterRow]:
    """``netsh interface show interface``."""
    required = ("Admin State", "State", "Type", "Interface Name")
    return [
        AdapterRow(row["Interface Name"], row["Admin State"], row["State"], row["Type"])
        for row in table(text, command, required)
    ]


def interface_detail(text: str, command: str, required: Sequence[str]) -> dict[str, str]:
    """``netsh interface ipv4|ipv6 show interfaces interface="X"``: ``Key : value`` lines."""
    values = key_values(text)
    missing = [key for key in required if key not in values]
    if missing:
        raise unreadable(command, text, f"field(s) {', '.join(repr(k) for k in missing)}")
    return values


@dataclass
class Ipv4Config:
    dhcp: bool | None = None
    addresses: list[tuple[str, int]] = field(default_factory=list)
    gateways: list[str] = field(default_factory=list)
    metric: int | None = None


def ipv4_config(text: str, command: str) -> dict[str, Ipv4Config]:
    """``netsh interface ipv4 show addresses`` (2008+: ``Subnet Prefix: a/n (mask m)``) and
    ``netsh interface ip show address`` (2003: ``SubnetMask: m``), by interface name."""
    configs: dict[str, Ipv4Config] = {}
    current: Ipv4Config | None = None
    pending: str | None = None  # an IP Address line still waiting for its subnet line
    for line in lines_of(text):
        header = _CONFIG_FOR.match(line)
        if header:
            if pending is not None:
                raise unreadable(command, text, f"the subnet of {pending}")
            current = configs.setdefault(header.group(1), Ipv4Config())
            continue
        match = _KEY_VALUE.match(line)
        if current is None or not match:
            continue
        key, value = match.group(1), (match.group(2) or "").strip()
        if key == "IP Address":
            if pending is not None:
                raise unreadable(command, text, f"the subnet of {pending}")
            pending = _ipv4(value, command, text)
        elif key in ("Subnet Prefix", "SubnetMask") and pending is not None:
            current.addresses.append((pending, _prefix(key, value, command, text)))
            pending = None
        elif key == "DHCP enabled":
            current.dhcp = _yes_no(value, command, text)
        elif key == "Default Gateway" and value and value.lower() != "none":
            current.gateways.append(value.split()[0])
        elif key == "InterfaceMetric":
            current.metric = _integer(value, command, text)
    if pending is not None:
        raise unreadable(command, text, f"the subnet of {pending}")
    if not configs and text.strip():
        raise unreadable(command, text, "'Configuration for interface' blocks")
    return configs


def _ipv4(value: str, command: str, text: str) -> str:
    try:
        return ipaddress.IPv4Address(value.split()[0]).compressed
    except (ValueError, IndexError):
        raise unreadable(command, text, f"an IPv4 address (got {value!r})") from None


def _prefix(key: str, value: str, command: str, text: str) -> int:
    try:
        if key == "Subnet Prefix":  # "192.0.2.0/24 (mask 255.255.255.0)"
            return ipaddress.IPv4Network(value.split()[0], strict=False).prefixlen
        return ipaddress.IPv4Network(f"0.0.0.0/{value.split()[0]}").prefixlen
    except (ValueError, IndexError):
        raise unreadable(command, text, f"a subnet (got {value!r})") from None


def _yes_no(value: str, command: str, text: str) -> bool:
    if value in ("Yes", "No"):
        return value == "Yes"
    raise unreadable(command, text, f"Yes or No (got {value!r})")


def _integer(value: str, command: str, text: str) -> int:
    try:
        return int(value.split()[0])
    except (ValueError, IndexError):
        raise unreadable(command, text, f"a number (got {value!r})") from None


def enabled(value: str, command: str, text: str) -> str:
    if value in ("enabled", "disabled"):
        return value
    raise unreadable(command, text, f"enabled or disabled (got {value!r})")


def metric(value: str, command: str, text: str) -> int:
    return _integer(value, command, text)


def ipv6_addresses(text: str, command: str) -> dict[str, list[str]]:
    """``netsh interface ipv6 show addresses``: an ``Interface N: name`` heading, then a
    table with an ``Address`` column (link-local ones carry a %zone)."""
    result: dict[str, list[str]] = {}
    blocks: list[tuple[str, list[str]]] = []
    for line in lines_of(text):
        heading = _IPV6_INTERFACE.match(line)
        if heading:
            blocks.append((heading.group(2), []))
        elif blocks:
            blocks[-1][1].append(line)
    if not blocks and text.strip():
        raise unreadable(command, text, "'Interface N: name' headings")
    for name, body in blocks:
        addresses = result.setdefault(name, [])
        if not any(_DASHES.match(line) for line in body):
            continue  # an interface without addresses
        for row in table("\n".join(body), command, ("Address",)):
            try:
                address = ipaddress.IPv6Address(row["Address"].split("%")[0])
            except ValueError:
                raise unreadable(
                    command, text, f"an IPv6 address (got {row['Address']!r})"
                ) from None
            addresses.append(address.compressed)
    return result


_IPCONFIG_ADAPTER = re.compile(r"^(\S.*?) adapter (.+):\s*$")
_IPCONFIG_DESCRIPTION = re.compile(r"^\s+Description[ .]*:\s*(.*?)\s*$")


def ipconfig_descriptions(text: str, command: str) -> dict[str, str]:
    """``ipconfig /all``: a ``<Type> adapter <name>:`` heading per adapter ("Ethernet
    adapter LO:"), then indented ``Description . . . : <device>`` among other fields.
    Adapter name -> device description. (Disabled adapters are not listed.)"""
    found: dict[str, str] = {}
    current: str | None = None
    headings = 0
    for line in lines_of(text):
        heading = _IPCONFIG_ADAPTER.match(line)
        if heading:
            current, headings = heading.group(2), headings + 1
            continue
        if line and not line[0].isspace():
            current = None  # "Windows IP Configuration" and the like
            continue
        match = _IPCONFIG_DESCRIPTION.match(line)
        if match and current is not None:
            found.setdefault(current, match.group(1))
    if not headings and text.strip():
        raise unreadable(command, text, "'<type> adapter <name>:' headings")
    if headings and not found:
        raise unreadable(command, text, "'Description' fields")
    return found


NO_RULES = "No rules match the specified criteria."
DELETED_RULES = re.compile(r"Deleted \d+ rule\(s\)\.")


def firewall_rules(text: str, command: str) -> list[dict[str, str]]:
    """``netsh advfirewall firewall show rule name="X" verbose``: one block per rule, from
    ``Rule Name:`` on; indented lines continue the previous field (lists of addresses)."""
    if NO_RULES in text:
        return []
    rules: list[dict[str, str]] = []
    last = ""
    for line in lines_of(text):
        if not line.strip() or _DASHES.match(line) or line.strip() == "Ok.":
            last = ""
            continue
        if line[0].isspace():
            if rules and last:
                rules[-1][last] = ",".join(filter(None, (rules[-1][last], line.strip())))
            continue
        match = _KEY_VALUE.match(line)
        if not match:
            continue
        key, value = match.group(1), match.group(2) or ""
        if key == "Rule Name":
            rules.append({})
        if rules:
            rules[-1][key] = value
            last = key
    if not rules:
        raise unreadable(command, text, "'Rule Name:' blocks")
    required = ("Enabled", "Direction", "Profiles", "LocalIP", "RemoteIP", "Protocol", "Action")
    for rule in rules:
        missing = [key for key in required if key not in rule]
        if missing:
            raise unreadable(command, text, f"field(s) {', '.join(missing)}")
    return rules


def devcon_devices(text: str, command: str) -> list[tuple[str, str]]:
    """``devcon find <id>``: ``INSTANCE : description`` lines, then a count line."""
    rows = [line for line in lines_of(text) if line.strip()]
    if rows and rows[-1].strip() == "No matching devices found.":
        return []
    if not rows or not rows[-1].strip().endswith("matching device(s) found."):
        raise unreadable(command, text, "'matching device(s) found.'")
    devices = []
    for line in rows[:-1]:
        instance, separator, description = line.partition(": ")
        if separator:
            devices.append((instance.strip(), description.strip()))
    return devices
