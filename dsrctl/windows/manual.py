"""The exact instructions for what netsh cannot do, shown in plans and in apply's refusal."""

from __future__ import annotations

from dsrctl.windows.model import VipAddress
from dsrctl.windows.spec import FirewallRule, WindowsSpec
from providers.windows import commands


def create_adapter(windows: WindowsSpec) -> str:
    name = windows.loopback
    if windows.legacy:
        wizard = (
            "Control Panel > Add Hardware > Next > 'Yes, I have already connected the "
            "hardware' > 'Add a new hardware device' > 'Install the hardware that I manually "
            "select from a list' > Network adapters > Microsoft > 'Microsoft Loopback Adapter' "
            "> Next > Finish"
        )
    else:
        wizard = (
            "Device Manager > right-click the computer > 'Add legacy hardware' > 'Install the "
            "hardware that I manually select from a list' > Network adapters > Microsoft > "
            "'Microsoft KM-TEST Loopback Adapter' > Next > Finish"
        )
    return (
        f"create the loopback adapter by hand, then run apply again: {wizard} (or run "
        r"'devcon install %windir%\inf\netloop.inf *MSLOOP'); find the new adapter's name "
        "with 'netsh interface show interface' and rename it: 'netsh interface set interface "
        f'name="<new adapter>" newname="{name}"\'. Or set windows.devcon in the spec so '
        "that dsrctl creates it"
    )


def set_metric_2003(windows: WindowsSpec) -> str:
    return (
        "netsh on Windows Server 2003 cannot set an interface metric: open Network "
        f"Connections, right-click {windows.loopback} > Properties > Internet Protocol "
        "(TCP/IP) > Properties > Advanced, clear 'Automatic metric' and set 'Interface "
        f"metric' to {windows.metric}; dsrctl drift reports it until it is done"
    )


def firewall_2003(rule: FirewallRule) -> str:
    protocol = rule.protocol.upper()
    openings = "; ".join(
        f'netsh firewall add portopening protocol={protocol} port={port} name="{rule.name}-{port}"'
        for port in rule.ports
    )
    return (
        f"firewall rule {rule.name!r} is not managed on Windows Server 2003 (it has no "
        "advfirewall, and its firewall cannot limit an opening to the VIPs). If Windows "
        f"Firewall is on, open {protocol} {','.join(map(str, rule.ports))} by hand: {openings}"
    )


def foreign_address(windows: WindowsSpec, vip: VipAddress) -> str:
    delete = " ".join(commands.delete_address(windows.profile, windows.loopback, vip))
    return (
        f"{windows.loopback} holds {vip.cidr}, which is not in the spec and was not added by "
        "dsrctl (the server accepts traffic for every address on the loopback adapter): add "
        f"it to the spec, or remove it by hand: '{delete}'"
    )
