"""The ``systemd-unit`` backend: a oneshot unit that adds the VIPs at boot.

For hosts where nothing configures the interface (the usual case for ``lo``): nothing
will remove the VIPs once they are there, so adding them once at boot is enough.

Ordering: ``After=systemd-sysctl.service`` puts the ARP keys in place before any VIP
appears (the same order as ``apply``); ``Before=network-pre.target`` has the VIPs up
before any network service and before daemons that bind them start. ``DefaultDependencies=no``
avoids ``After=basic.target``, which would hold the network back until basic.target.
For an interface other than ``lo`` the unit binds to the interface's device unit and
is wanted by it, so it runs whenever the interface appears, and it is not ordered
before network-pre.target (a network service may be what creates the interface).

A VIP range is a local route: ``ip route replace local <range> dev lo table local``,
after the addresses. ``ip address replace`` and ``ip route replace`` are idempotent, so a
restart of the unit is harmless. The unit is
enabled the way ``systemctl enable`` does it: a link in the wanting unit's ``.wants/``
directory (a ``symlink:`` resource, see the package docstring).
"""

from __future__ import annotations

from providers.linux.persist import (
    Detection,
    Rendered,
    RenderRequest,
    all_to_unit,
    managed_header,
    no_check,
    no_labels,
    no_notes,
    safe_name,
)
from providers.model import AddressState, FileState, RouteState

UNIT_NAME = "dsrctl-vips.service"
UNIT_DIR = "/etc/systemd/system"
UNIT_PATH = f"{UNIT_DIR}/{UNIT_NAME}"
IP = "/sbin/ip"  # /sbin is /usr/sbin on merged-/usr systems; Debian keeps /sbin/ip too


def requirement(detection: Detection) -> str | None:
    if detection.systemd:
        return None
    if detection.live:
        return "systemd does not run this host (no /run/systemd/system), so no unit runs at boot"
    return f"there is no /etc/systemd/system under {detection.root}"


def limits(state: AddressState, interface: str) -> str | None:
    """Every attribute is a plain ``ip address`` option."""
    return None


def wanted_by(interface: str) -> str:
    if interface == "lo":
        return "multi-user.target"
    return device_unit(interface)


def device_unit(interface: str) -> str:
    """The unit udev/systemd gives a network interface (``systemd-escape --path``)."""
    return f"sys-subsystem-net-devices-{escape(interface)}.device"


def escape(name: str) -> str:
    out = []
    for index, char in enumerate(name):
        if (
            char.isascii()
            and (char.isalnum() or char in "_.:")
            and not (index == 0 and char == ".")
        ):
            out.append(char)
        else:
            out.extend(f"\\x{byte:02x}" for byte in char.encode())
    return "".join(out)


def exec_line(state: AddressState, interface: str) -> str:
    # The words go into ExecStart= unquoted: systemd would expand '%' specifiers and
    # '$' variables and split at quotes, so only names without any such character pass.
    interface = safe_name(interface)
    if state.version == 4:
        label = (
            f" label {safe_name(state.label)}" if state.label and state.label != interface else ""
        )
        return f"ExecStart={IP} -4 address replace {state.cidr} dev {interface}{label}"
    flags = (" preferred_lft 0" if state.deprecated else "") + (" nodad" if state.nodad else "")
    return f"ExecStart={IP} -6 address replace {state.cidr} dev {interface}{flags}"


def route_line(route: RouteState, interface: str) -> str:
    return (
        f"ExecStart={IP} -{route.version} route replace {route.type} {route.destination} "
        f"dev {safe_name(interface)} table {route.table}"
    )


def unit_text(
    states: tuple[AddressState, ...],
    interface: str,
    spec_path: str,
    routes: tuple[RouteState, ...] = (),
) -> str:
    if interface == "lo":
        order = [
            "After=systemd-sysctl.service local-fs.target",
            "Before=network-pre.target shutdown.target",
            "Wants=network-pre.target",
        ]
    else:
        device = device_unit(interface)  # dependency lists take the escaped name as is
        order = [
            f"BindsTo={device}",
            f"After={device} systemd-sysctl.service local-fs.target",
            "Before=shutdown.target",
        ]
    lines = [
        *managed_header(spec_path),
        "[Unit]",
        f"Description=DSR VIPs on {safe_name(interface)} (dsrctl)",  # no '%' specifier
        "Documentation=man:ip-address(8)",
        "DefaultDependencies=no",
        *order,
        "Conflicts=shutdown.target",
        "",
        "[Service]",
        "Type=oneshot",
        "RemainAfterExit=yes",
        *(exec_line(state, interface) for state in states),
        *(route_line(route, interface) for route in routes),
        "",
        "[Install]",
        f"WantedBy={wanted_by(interface)}",
    ]
    return "\n".join(lines) + "\n"


def wants_link(interface: str) -> str:
    return f"{UNIT_DIR}/{wanted_by(interface)}.wants/{UNIT_NAME}"


def render(request: RenderRequest) -> Rendered:
    states, interface = request.states, request.interface
    link = wants_link(interface)
    return Rendered(
        files={
            UNIT_PATH: FileState(
                unit_text(states, interface, request.spec_path, request.routes).encode(), 0o644
            )
        },
        symlinks={link: UNIT_PATH},
        dirs=(link.rsplit("/", 1)[0],),
    )


# What this backend does not need of the Backend Protocol (providers.linux.persist.backends).
notes = no_notes
labels = no_labels
check = no_check
unit_part = all_to_unit
