"""Kernel modules of the [[tunnel]] kinds (``module:<name>``): loaded with modprobe in
LOAD_MODULES, before the devices that need them; a module dsrctl loaded is unloaded
(``modprobe -r``) in UNLOAD_MODULES, after them, unless something still uses it.

The value of a loaded (or built-in) module is LOADED; an absent one is None. Loading
happens at boot through /etc/modules-load.d/dsrctl.conf (a file resource, see
dsrctl.linux.desired)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Protocol

from dsrctl.kinds.base import Desired, Plain, ResourceKind, Rich, Value
from dsrctl.model import HostState, ReadScope
from dsrctl.steps import Phase, Step
from state.ownership import Ownership, OwnershipRecord

LOADED = "loaded"


def module_id(name: str) -> str:
    return f"module:{name}"


class ModuleWriter(Protocol):
    def load_module(self, name: str) -> None: ...

    def unload_module(self, name: str) -> str | None:
        """Unload, unless something uses the module: then say why it stays."""
        ...


@dataclass(frozen=True)
class ModuleStep(Step):
    kind: ClassVar[str] = "module"

    def apply(self, host: ModuleWriter) -> None:
        if self.after is None:
            stays = host.unload_module(self.name)
            if stays is not None:  # tolerated: said on stderr and in the system log
                import sys

                from dsrctl.monitoring import log

                sys.stderr.write(f"warning: {stays}\n")
                log(stays, "warning")
        else:
            host.load_module(self.name)


class ModuleKind(ResourceKind):
    name = "module"
    step = ModuleStep

    def way_back(self, desired: Desired, name: str, record: OwnershipRecord) -> None:
        # A module that was loaded before dsrctl stays loaded: it is simply let go.
        if record.created:
            desired.modules[name] = None
        else:
            desired.released.append(module_id(name))

    def scope(self, scope: ReadScope, desired: Desired, ownership: Ownership) -> ReadScope:
        return dataclasses.replace(scope, modules=tuple(desired.modules))

    def leave_removed(self, desired: Desired, current: HostState) -> None:
        """A module dsrctl loaded stays when it is built in or used by something this plan
        does not remove: unloading it would destroy every device of its kinds."""
        going = {f"tunnel:{name}" for name, state in desired.tunnels.items() if state is None}
        going |= {f"fou:{port}" for port, kind in desired.fou_ports.items() if kind is None}
        going |= {f"module:{name}" for name, value in desired.modules.items() if value is None}
        for name, value in list(desired.modules.items()):
            state = current.modules.get(name)
            if value is not None or state is None or not state.loaded:
                continue
            holders = [user for user in state.users if user.startswith("module:")]
            users = [
                user for user in state.users if user not in going and f"tunnel:{user}" not in going
            ]
            if state.refcnt > len(holders):
                users.append(f"{state.refcnt - len(holders)} reference(s) besides modules")
            if state.builtin or users:
                del desired.modules[name]
                why = "it is built in" if state.builtin else "in use by " + ", ".join(users)
                desired.notes.append(
                    f"kernel module {name} was loaded by dsrctl and is no longer needed, "
                    f"but stays loaded: {why}"
                )

    def add_desired(self, desired: Desired, plain: Plain, rich: Rich) -> None:
        for name, value in desired.modules.items():
            if value is not None:
                plain[module_id(name)] = rich[module_id(name)] = value

    def add_current(
        self, current: HostState, desired: Desired, ownership: Ownership, plain: Plain, rich: Rich
    ) -> None:
        for name in desired.modules:
            state = current.modules.get(name)
            if state is not None and state.loaded:
                plain[module_id(name)] = rich[module_id(name)] = LOADED

    def make_step(
        self, resource: str, before: Value | None, after: Value | None, desired: Desired
    ) -> Step:
        if after is None:
            return ModuleStep(
                resource,
                before,
                after,
                Phase.UNLOAD_MODULES,
                note="loaded by dsrctl, no longer needed",
            )
        return ModuleStep(resource, before, after, Phase.LOAD_MODULES)


KIND = ModuleKind()
