"""Kernel modules: is one loaded, built in, or installed for this kernel; load and unload.

Loaded: /sys/module/<name> exists (a built-in module with parameters has it too; one
without is found in modules.builtin). Installed: modules.dep of the running kernel lists
it. Module names treat '-' and '_' alike, as modprobe does. Loading and unloading run
modprobe directly, never through a shell.
"""

from __future__ import annotations

import functools
import os
import subprocess

from providers.errors import HostError, PrivilegeError
from providers.model import ModuleState

SYS_MODULE = "/sys/module"
LIB_MODULES = "/lib/modules"
MODPROBE_TIMEOUT = 60.0
# The link kinds each module provides, and the devices loading it creates in every
# namespace: unloading the module destroys every device of these kinds.
LINK_KINDS = {
    "ipip": ("ipip",),
    "ip_gre": ("gre", "gretap", "erspan"),
    "ip6_tunnel": ("ip6tnl",),
    "ip6_gre": ("ip6gre", "ip6gretap", "ip6erspan"),
    "vxlan": ("vxlan",),
}
FALLBACK_DEVICES = frozenset({"tunl0", "gre0", "gretap0", "erspan0", "ip6tnl0", "ip6gre0"})


def release() -> str:
    return os.uname().release


def canonical(name: str) -> str:
    return name.replace("-", "_")


@functools.cache
def _listed(path: str) -> frozenset[str]:
    """The module names of a modules.builtin or modules.dep file (empty if absent)."""
    names = set()
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                module_path = line.split(":", 1)[0].strip()
                if not module_path:
                    continue
                base = os.path.basename(module_path)
                names.add(canonical(base.split(".ko", 1)[0]))
    except OSError:
        return frozenset()
    return frozenset(names)


def builtin(name: str, modules_root: str = LIB_MODULES) -> bool:
    return canonical(name) in _listed(os.path.join(modules_root, release(), "modules.builtin"))


def available(name: str, modules_root: str = LIB_MODULES, sys_module: str = SYS_MODULE) -> bool:
    """Loaded, built in, or installed for the running kernel."""
    name = canonical(name)
    if os.path.isdir(os.path.join(sys_module, name)) or builtin(name, modules_root):
        return True
    return name in _listed(os.path.join(modules_root, release(), "modules.dep"))


def module_state(name: str, sys_module: str = SYS_MODULE) -> ModuleState:
    """Loaded or not; users are filled in by the caller, who sees the devices."""
    name = canonical(name)
    directory = os.path.join(sys_module, name)
    is_builtin = builtin(name)
    if not os.path.isdir(directory):
        return ModuleState(loaded=is_builtin, builtin=is_builtin)
    try:
        with open(os.path.join(directory, "refcnt"), encoding="ascii") as handle:
            refcnt = int(handle.read().strip() or 0)
    except (OSError, ValueError):  # built in: no refcnt
        return ModuleState(loaded=True, builtin=True)
    try:  # the modules that need this one (ip6_gre holds ip6_tunnel)
        holders = tuple(
            sorted(f"module:{h}" for h in os.listdir(os.path.join(directory, "holders")))
        )
    except OSError:
        holders = ()
    return ModuleState(loaded=True, builtin=is_builtin, refcnt=refcnt, users=holders)


def load(name: str) -> None:
    _modprobe([name], f"cannot load kernel module {name}")


def unload(name: str) -> None:
    _modprobe(["-r", name], f"cannot unload kernel module {name}")


def _modprobe(arguments: list[str], what: str) -> None:
    try:
        result = subprocess.run(
            ["modprobe", *arguments],
            capture_output=True,
            text=True,
            timeout=MODPROBE_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise HostError(f"{what}: modprobe is not installed (kmod)") from None
    except subprocess.TimeoutExpired:
        raise HostError(f"{what}: modprobe did not finish in {MODPROBE_TIMEOUT:.0f} s") from None
    if result.returncode != 0:
        said = " ".join(result.stderr.split()) or f"exit status {result.returncode}"
        if "Operation not permitted" in said:
            raise PrivilegeError(f"{what}: {said}; run as root")
        raise HostError(f"{what}: modprobe says: {said}")
