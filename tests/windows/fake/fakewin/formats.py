"""What netsh prints for the read commands, in the formats of reference/netsh-samples.txt,
with the widths and field sets varied by the host's style, in English, German or French."""

from __future__ import annotations

import ipaddress

from fakewin.host import index_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from fakewin.host import State

# Per language: the words of each read format. German and French are what a localised
# host prints instead; dsrctl must refuse them, not misread them.
WORDS: dict[str, dict[str, Any]] = {
    "en": {
        "adapters": ("Admin State", "State", "Type", "Interface Name"),
        "enabled": "Enabled",
        "connected": "Connected",
        "dedicated": "Dedicated",
        "parameters": "Interface {name} Parameters",
        "metric": "Metric",
        "whs": "Weak Host Sends",
        "whr": "Weak Host Receives",
        "auto": "Use Automatic Metric",
        "on": ("enabled", "disabled"),
        "config": 'Configuration for interface "{name}"',
        "dhcp": "DHCP enabled",
        "yes": ("Yes", "No"),
        "ip": "IP Address",
        "prefix": "Subnet Prefix",
        "mask": "mask",
        "gateway": "Default Gateway",
        "ifmetric": "InterfaceMetric",
        "v6heading": "Interface {index}: {name}",
        "v6header": ("Addr Type", "DAD State", "Valid Life", "Pref. Life", "Address"),
        "rule": "Rule Name",
        "ok": "Ok.",
        "no_rules": "No rules match the specified criteria.",
    },
    "de": {
        "adapters": ("Adminstatus", "Status", "Typ", "Schnittstellenname"),
        "enabled": "Aktiviert",
        "connected": "Verbunden",
        "dedicated": "Dediziert",
        "parameters": "Parameter der Schnittstelle {name}",
        "metric": "Metrik",
        "whs": "Schwache Hostsendungen",
        "whr": "Schwache Hostempfänge",
        "auto": "Automatische Metrik verwenden",
        "on": ("aktiviert", "deaktiviert"),
        "config": 'Konfiguration der Schnittstelle "{name}"',
        "dhcp": "DHCP aktiviert",
        "yes": ("Ja", "Nein"),
        "ip": "IP-Adresse",
        "prefix": "Subnetzpräfix",
        "mask": "Maske",
        "gateway": "Standardgateway",
        "ifmetric": "Schnittstellenmetrik",
        "v6heading": "Schnittstelle {index}: {name}",
        "v6header": ("Adresstyp", "DAD-Status", "Gültig", "Bevorzugt", "Adresse"),
        "rule": "Regelname",
        "ok": "OK.",
        "no_rules": "Keine Regeln entsprechen den angegebenen Kriterien.",
    },
    "fr": {
        "adapters": ("État admin", "État", "Type", "Nom de l'interface"),
        "enabled": "Activé",
        "connected": "Connecté",
        "dedicated": "Dédié",
        "parameters": "Paramètres de l'interface {name}",
        "metric": "Métrique",
        "whs": "Envois d'hôte faible",
        "whr": "Réceptions d'hôte faible",
        "auto": "Utiliser la métrique automatique",
        "on": ("activé", "désactivé"),
        "config": "Configuration de l'interface « {name} »",
        "dhcp": "DHCP activé",
        "yes": ("Oui", "Non"),
        "ip": "Adresse IP",
        "prefix": "Préfixe de sous-réseau",
        "mask": "masque",
        "gateway": "Passerelle par défaut",
        "ifmetric": "Métrique de l'interface",
        "v6heading": "Interface {index} : {name}",
        "v6header": ("Type adr.", "État DAD", "Dur. val.", "Dur. préf.", "Adresse"),
        "rule": "Nom de la règle",
        "ok": "Ok.",
        "no_rules": "Aucune règle ne correspond aux critères spécifiés.",
    },
}


def words(state: State) -> dict[str, Any]:
    return WORDS[state.get("language", "en")]


def adapters(state: State) -> list[str]:
    w, pad = words(state), state["style"]["pad"]
    widths = (15 + pad, 15 + pad, 17 + pad)
    header = (
        "".join(f"{name:<{width}}" for name, width in zip(w["adapters"], widths, strict=False))
        + w["adapters"][3]
    )
    lines = ["", header, "-" * (73 + 3 * pad)]
    for entry in state["adapters"]:
        cells = (w["enabled"], w["connected"], w["dedicated"])
        lines.append(
            "".join(f"{c:<{width}}" for c, width in zip(cells, widths, strict=True)) + entry["name"]
        )
    return [*lines, ""]


def detail(state: State, family: int, entry: dict[str, Any]) -> list[str]:
    w, style = words(state), state["style"]
    settings = entry[f"ipv{family}"]
    on = {"enabled": w["on"][0], "disabled": w["on"][1]}
    fields: list[tuple[str, Any]] = [
        ("IfLuid", f"ethernet_{32768 + index_of(state, entry)}"),
        ("IfIndex", index_of(state, entry)),
        ("State", "connected"),
        (w["metric"], settings["metric"]),
        ("Link MTU", "1500 bytes"),
        ("Reachable Time", "30500 ms"),
        ("Base Reachable Time", "30000 ms"),
        ("Retransmission Interval", "1000 ms"),
        ("DAD Transmits", 3 if family == 4 else 1),
        ("Site Prefix Length", 64),
        ("Site Id", 1),
        ("Forwarding", "disabled"),
        ("Advertising", "disabled"),
        ("Neighbor Discovery", "enabled"),
        ("Neighbor Unreachability Detection", "enabled"),
        ("Router Discovery", "dhcp"),
        ("Managed Address Configuration", "enabled"),
        ("Other Stateful Configuration", "enabled"),
        (w["whs"], on[settings["weakhostsend"]]),
        (w["whr"], on[settings["weakhostreceive"]]),
        (w["auto"], on["enabled" if settings["automatic_metric"] else "disabled"]),
        ("Ignore Default Routes", "disabled"),
        ("Advertised Router Lifetime", "1800 seconds"),
        ("Advertise Default Route", "disabled"),
        ("Current Hop Limit", 0),
        ("Force ARPND Wake up patterns", "disabled"),
        ("Directed MAC Wake up patterns", "disabled"),
        ("ECN capability", "application"),
        ("RA Based DNS Config (RFC 6106)", "disabled"),
        ("DHCP/Static IP coexistence", "disabled"),
    ]
    if style["lean"]:  # an older build: fewer fields
        fields = fields[:-5]
    if style["rich"]:  # a newer build: more fields
        fields.insert(2, ("Compartment Id", 1))
        fields.append(("Multicast Forwarding", "disabled"))
    width = 35 + style["pad"]
    title = w["parameters"].format(name=entry["name"])
    lines = ["", title, "-" * 46]
    lines += [f"{key:<{width}}: {value}" for key, value in fields]
    return [*lines, ""]


def ipv4_addresses(state: State, entries: list[dict[str, Any]]) -> list[str]:
    w, width = words(state), 38 + state["style"]["pad"]
    legacy = state["version"] == "2003"
    lines = [""]

    def field(key: str, value: Any) -> None:
        lines.append("    " + f"{key + ':':<{width}}" + str(value))

    for entry in entries:
        settings = entry["ipv4"]
        lines.append(w["config"].format(name=entry["name"]))
        field(w["dhcp"], w["yes"][0] if settings["dhcp"] else w["yes"][1])
        for address, prefix, *_ in settings["addresses"]:
            network = ipaddress.IPv4Network(f"{address}/{prefix}", strict=False)
            field(w["ip"], address)
            if legacy:
                field("SubnetMask", network.netmask)
            else:
                field(w["prefix"], f"{network} ({w['mask']} {network.netmask})")
        for gateway in settings["gateways"]:
            field(w["gateway"], gateway)
            field("GatewayMetric" if legacy else "Gateway Metric", 0)
        metric = 0 if legacy and settings["automatic_metric"] else settings["metric"]
        field(w["ifmetric"], metric)
        if legacy and not state["style"]["lean"]:
            field("Statically Configured DNS Servers", "None")
        lines.append("")
    return lines


def ipv6_addresses(state: State, entries: list[dict[str, Any]]) -> list[str]:
    w = words(state)
    lines = [""]
    for entry in entries:
        addresses = entry["ipv6"]["addresses"]
        if not addresses and state["style"]["lean"]:
            continue
        lines += [w["v6heading"].format(index=index_of(state, entry), name=entry["name"]), ""]
        names = w["v6header"]
        lines.append(f"{names[0]:<11}{names[1]:<12}{names[2]:<11}{names[3]:<11}{names[4]}")
        lines.append("---------  ----------- ---------- ---------- ------------------------")
        for address, _prefix, *_ in addresses:
            lines.append(
                f"{'Manual':<11}{'Preferred':<12}{'infinite':>10} {'infinite':>10} {address}"
            )
        lines.append("")
    return lines


def rules(state: State, found: list[dict[str, Any]], verbose: bool) -> list[str]:
    w, style = words(state), state["style"]
    width = 38 + style["pad"]
    lines = [""]

    def field(key: str, value: str) -> None:
        lines.append(f"{key + ':':<{width}}{value}")

    for rule in found:
        field(w["rule"], rule["name"])
        lines.append("-" * 70)
        field("Enabled", "Yes" if rule["enabled"] else "No")
        field("Direction", "In" if rule["dir"] == "in" else "Out")
        field("Profiles", ",".join(p.capitalize() for p in rule["profiles"]))
        field("Grouping", "")
        _addresses(lines, width, "LocalIP", rule["localip"], style)
        _addresses(lines, width, "RemoteIP", rule["remoteip"], style)
        protocol = rule["protocol"]
        field("Protocol", protocol.upper() if protocol in ("tcp", "udp") else protocol.capitalize())
        if protocol in ("tcp", "udp"):
            field("LocalPort", ",".join(rule["localport"]) or "Any")
            field("RemotePort", ",".join(rule["remoteport"]) or "Any")
        field("Edge traversal", "No")
        if verbose:
            if rule.get("program"):
                field("Program", rule["program"])
            field("InterfaceTypes", "Any")
            field("Security", "NotRequired")
            field("Rule source", "Local Setting")
        field("Action", rule["action"].capitalize())
        lines.append("")
    return [*lines, w["ok"], ""]


def _addresses(
    lines: list[str], width: int, key: str, values: list[str], style: dict[str, Any]
) -> None:
    if not values:
        lines.append(f"{key + ':':<{width}}Any")
        return
    shown = []
    for value in values:
        address = ipaddress.ip_address(value)
        full = 32 if address.version == 4 else 128
        shown.append(value if style["plain_hosts"] else f"{value}/{full}")
    if style["ip_lines"]:
        lines.append(f"{key + ':':<{width}}{shown[0]}")
        lines += [" " * width + item for item in shown[1:]]
    else:
        lines.append(f"{key + ':':<{width}}{','.join(shown)}")
