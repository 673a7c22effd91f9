"""WindowsHost: the Windows provider. Reads and writes only through netsh (and devcon to
create the loopback adapter), run by a Runner, so it works against stand-ins on any OS.

netsh's verdict is read from its exit code *and* its text: a command succeeded when it
exits 0 and prints only ``Ok.`` (or nothing, or ``Deleted N rule(s).``); any known
error text fails it whatever the exit code says.

Privileges: nothing is probed up front (``check_privileges`` has nothing reliable to ask
netsh). A write in a shell that is not elevated prints "The requested operation requires
elevation (Run as administrator)."; that becomes a PrivilegeError at the first write,
which is the first step, so nothing has changed when it is reported.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from typing import Any

from providers.base import Provider
from providers.errors import HostError, PrivilegeError, ProviderError
from providers.model import AddressState, HostState, ReadScope
from providers.windows import changes, commands, loopback, parse, reader
from providers.windows.model import (
    FirewallRuleState,
    SettingValue,
    VipAddress,
    WindowsReadScope,
    WindowsState,
    observe,
    split_setting_id,
)
from providers.windows.runner import CommandResult, ProcessRunner, Runner

ELEVATION = "The requested operation requires elevation"
COMMAND_NOT_FOUND = "The following command was not found"
SYNTAX = "The syntax supplied for this command is not valid."
UNKNOWN_INTERFACE = (
    "The filename, directory name, or volume label syntax is incorrect.",
    "Element not found.",
)
ERROR_TEXTS = (
    ELEVATION,
    COMMAND_NOT_FOUND,
    SYNTAX,
    *UNKNOWN_INTERFACE,
    "The object already exists.",
    "One or more essential parameters were not entered.",
    "The parameter is incorrect.",
)


class WindowsHost(Provider):
    platform = "windows"

    def __init__(self, runner: Runner | None = None) -> None:
        self.runner: Runner = runner or ProcessRunner()
        # From the spec (dsrctl's spec check) or the read scope; detected when neither came first
        # (a rollback from the journal has no spec).
        self.profile: str | None = None
        # Non-blocking manual steps the operator was told about in this run (see
        # dsrctl.windows.steps.ManualStep): the planner leaves them out when re-planning.
        self.deferred_manual: set[str] = set()
        self.last_state: WindowsState | None = None
        self._reads: dict[commands.Argv, CommandResult] = {}
        self.created = loopback.CreatedAdapters()

    # -- checks -------------------------------------------------------------------------
    def console_encoding(self) -> str:
        """The code page netsh prints in (its codecs name): a name it cannot encode cannot
        be read back."""
        return codecs.lookup(self.runner.encoding).name

    def adapter_names(self) -> dict[str, str]:
        """The network adapters of this host: lower-cased name -> name."""
        return reader.read_adapters(self.query)

    def check_privileges(self, command: str = "apply") -> None:
        """Nothing to ask up front: the first write reports a missing elevation."""

    def preflight(self, steps: Sequence[changes.PlannedStep]) -> None:
        blocked = [step for step in steps if changes.is_manual(step) and step.blocking]
        if blocked:
            raise HostError(
                "apply stopped before changing anything: "
                + "; ".join(
                    f"{step.resource} needs a manual step: {step.instructions}" for step in blocked
                )
            )
        for step in steps:
            if changes.is_rule(step) and isinstance(step.before, FirewallRuleState):
                _check_replaceable(step.name, step.before)
            if changes.is_vip(step) and isinstance(step.after, VipAddress):
                self._check_no_other_prefix(step.interface, step.after)
            if (
                changes.is_adapter(step)
                and step.after is not None
                and self.runner.find(step.devcon) is None
            ):
                raise HostError(f"devcon {step.devcon} not found; nothing was changed")

    def _check_no_other_prefix(self, interface: str, vip: VipAddress) -> None:
        if self.last_state is None:
            return
        held = self.last_state.addresses.get((vip.version, interface.lower()), {})
        for other in held.values():
            if other.address == vip.address and other.prefix != vip.prefix:
                command = commands.delete_address(self.current_profile(), interface, other)
                raise HostError(
                    f"{interface} holds {other.cidr}, not {vip.cidr}: remove it by hand "
                    f"({' '.join(command)}) and apply again; nothing was changed"
                )

    # -- reading ------------------------------------------------------------------------
    def query(self, argv: commands.Argv) -> CommandResult:
        """Run a read command (memoised until the next write) and check its verdict."""
        if argv in self._reads:
            return self._reads[argv]
        result = self.runner.run(argv)
        rule_missing = argv[1] == "advfirewall" and parse.NO_RULES in result.output
        if not rule_missing and (result.returncode != 0 or _error_line(result.output)):
            raise failure(result)
        self._reads[argv] = result
        return result

    def current_profile(self) -> str:
        if self.profile is None:
            result = self.runner.run(commands.show_addresses("2008+", 4))
            if COMMAND_NOT_FOUND in result.output:
                self.profile = "2003"
            elif result.returncode == 0 and not _error_line(result.output):
                self.profile = "2008+"
            else:
                raise failure(result)
        return self.profile

    def observe(self, resources: list[str]) -> dict[str, Any]:
        interfaces: list[str] = []
        families: set[int] = set()
        rules: list[str] = []
        for resource in resources:
            kind, _, name = resource.partition(":")
            if kind == "netsh":
                family, interface, _ = split_setting_id(resource)
                interfaces.append(interface)
                families.add(family)
            elif kind == "address":
                interface, _, cidr = name.partition(":")
                interfaces.append(interface)
                families.add(6 if ":" in cidr else 4)
            elif kind == "adapter":
                interfaces.append(name)
            elif kind == "firewall":
                rules.append(name)
            else:
                raise HostError(f"unknown resource {resource!r} for the Windows provider")
        scope = WindowsReadScope(
            self.current_profile(),
            tuple(dict.fromkeys(interfaces)),
            tuple(sorted(families)) or (4,),
            tuple(dict.fromkeys(rules)),
        )
        state = self.read_windows(scope)
        return {resource: observe(state, resource) for resource in resources}

    def refresh(self) -> None:
        """Forget memoised reads: the next query runs netsh again."""
        self._reads.clear()

    def read_windows(self, scope: WindowsReadScope) -> WindowsState:
        self.profile = scope.profile
        self.last_state = reader.read_state(self.query, scope)
        return self.last_state

    def read(self, scope: ReadScope) -> HostState:
        """The generic view: addresses on the named adapters. (The Windows planner reads
        through read_windows, which knows weak host, metric and firewall.)"""
        if scope.sysctl_keys or scope.files:
            raise HostError("Windows has no sysctls or sysctl.d files; use a [windows] table")
        names = (scope.interface, *scope.interfaces)
        profile = self.current_profile()
        families = (4,) if profile == "2003" else (4, 6)
        found = self.read_windows(WindowsReadScope(profile, names, families))
        state = HostState(facts={"platform": "windows", "profile": profile})
        for name in names:
            if name.lower() in found.adapters:
                state.addresses[name] = {
                    cidr: AddressState(vip.address, vip.prefix)
                    for family in families
                    for cidr, vip in found.addresses.get((family, name.lower()), {}).items()
                }
        return state

    def describe(self) -> dict[str, Any]:
        listing = self.query(commands.show_adapters())
        rows = parse.adapters(listing.output, listing.command)
        try:
            configs, profile = reader.read_ipv4(self.query, "2008+"), "2008+"
        except HostError:
            configs, profile = reader.read_ipv4(self.query, "2003"), "2003"
        report: dict[str, Any] = {"platform": "windows", "profile": profile, "interfaces": []}
        for row in rows:
            config = configs.get(row.name.lower(), parse.Ipv4Config())
            settings: dict[str, SettingValue | None] = {"metric": config.metric}
            if profile == "2008+" and config.metric is not None:  # no IPv4: nothing to ask
                settings.update(reader.read_settings(self.query, 4, row.name))
            report["interfaces"].append(
                {
                    "name": row.name,
                    "index": "-",
                    "up": row.state == "Connected",
                    "admin": row.admin_state,
                    "addresses": [{"address": a, "prefix": p} for a, p in config.addresses],
                    "sysctl": settings,
                }
            )
        return report

    # -- writing (called by dsrctl.windows.steps) ----------------------------------------
    def write(self, argv: commands.Argv) -> CommandResult:
        self.refresh()
        result = self.runner.run(argv)
        if result.returncode != 0 or not _succeeded(result.output):
            raise failure(result)
        return result

    def set_interface(self, family: int, interface: str, keyword: str, value: SettingValue) -> None:
        self.write(commands.set_interface(family, interface, keyword, value))

    def add_address(self, interface: str, vip: VipAddress) -> None:
        self.write(commands.add_address(self.current_profile(), interface, vip))

    def delete_address(self, interface: str, vip: VipAddress) -> None:
        self.write(commands.delete_address(self.current_profile(), interface, vip))

    def disable_dhcp(self, interface: str, vip: VipAddress) -> None:
        # 'set address source=static' needs an address: set one VIP, then delete it, so that
        # every VIP is added by add_address (with skipassource where netsh has it).
        self.write(commands.set_static(self.current_profile(), interface, vip))
        self.write(commands.delete_address(self.current_profile(), interface, vip))

    def enable_dhcp(self, interface: str) -> None:
        self.write(commands.set_dhcp(self.current_profile(), interface))

    def add_rule(self, name: str, rule: FirewallRuleState) -> None:
        self.write(commands.add_rule(name, rule))

    def delete_rule(self, name: str) -> None:
        self.write(commands.delete_rule(name))

    def create_loopback(self, name: str, devcon: str) -> None:
        loopback.create(self, name, devcon)

    def remove_loopback(self, name: str, devcon: str) -> None:
        loopback.remove(self, name, devcon)

    def defer_manual(self, resource: str) -> None:
        self.deferred_manual.add(resource)


def _error_line(text: str) -> str | None:
    for line in parse.lines_of(text):
        if any(line.strip().startswith(error) for error in ERROR_TEXTS):
            return line.strip()
    return None


def _succeeded(text: str) -> bool:
    lines = [line.strip() for line in parse.lines_of(text) if line.strip()]
    return all(line == "Ok." or parse.DELETED_RULES.fullmatch(line) for line in lines)


def failure(result: CommandResult) -> ProviderError:
    """The error for a command that failed, with what netsh said and what to do."""
    lines = [line.strip() for line in parse.lines_of(result.output) if line.strip()]
    said = _error_line(result.output) or (lines[0] if lines else "")
    said = said or f"exit code {result.returncode} and no output"
    command = result.command
    if ELEVATION in result.output:
        return PrivilegeError(
            f"`{command}`: {said} Run dsrctl from an elevated prompt (Run as administrator)"
        )
    hint = ""
    if said.startswith(COMMAND_NOT_FOUND) and any(
        context in command for context in ("interface ipv4", "interface ipv6", "advfirewall")
    ):
        hint = ' (Windows Server 2003 has no such context: set windows.profile = "2003")'
    elif said in UNKNOWN_INTERFACE:
        hint = " (netsh does not know that interface; see `netsh interface show interface`)"
    elif said.startswith(SYNTAX) and "skipassource" in command:
        hint = (
            " (this netsh may not know skipassource: Windows Server 2008 and 2008 R2 need "
            "the hotfix that adds it; see docs/windows.md)"
        )
    elif result.returncode == 0:
        said = f"unexpected output {said!r}"
    return HostError(f"`{command}` failed: {said}{hint}")


def _check_replaceable(name: str, rule: FirewallRuleState) -> None:
    """dsrctl replaces a rule by delete + add; it must be able to put the old one back."""
    if rule.count != 1:
        raise HostError(
            f"{rule.count} firewall rules are named {name!r}; dsrctl manages one rule per "
            f"name: delete them by hand ({' '.join(commands.delete_rule(name))}) and apply "
            "again; nothing was changed"
        )
    if rule.unmanaged:
        fields = ", ".join(f"{key}: {value}" for key, value in rule.unmanaged)
        raise HostError(
            f"firewall rule {name!r} has settings dsrctl could not restore ({fields}); "
            "give the spec's rule another name, or delete this one by hand "
            f"({' '.join(commands.delete_rule(name))}); nothing was changed"
        )
