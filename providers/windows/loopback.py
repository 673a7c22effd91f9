"""Create the Microsoft loopback adapter with devcon, find the adapter that appeared, name it.

devcon prints neither the new device's instance id nor the name Windows gives the new
network adapter ("Ethernet 3", "Local Area Connection 2"), so both are found by
comparing ``devcon find *MSLOOP`` and ``netsh interface show interface`` before and
after the install. The instance id is remembered so that a rollback in the same run can
remove exactly that device and nothing else (``devcon remove *MSLOOP`` would remove every
loopback adapter on the host).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from providers.errors import HostError, ProviderError
from providers.windows import commands, parse, reader
from providers.windows.runner import CommandResult, Runner

POLL_SECONDS = 0.5
POLL_TRIES = 20  # Windows takes a moment to bind the new adapter


@dataclass
class CreatedAdapters:
    """Adapters this run created: lower-cased name -> (devcon, device instance id)."""

    by_name: dict[str, tuple[str, str]] = field(default_factory=dict)


class AdapterHost(Protocol):
    """What creating and removing an adapter needs of the host (WindowsHost is one): a
    Protocol, so that this module does not import the host module that imports it."""

    runner: Runner
    created: CreatedAdapters

    def query(self, argv: commands.Argv) -> CommandResult: ...

    def write(self, argv: commands.Argv) -> CommandResult: ...

    def refresh(self) -> None: ...


def create(host: AdapterHost, name: str, devcon: str) -> None:
    host.refresh()
    before = set(reader.read_adapters(host.query))
    devices_before = _devices(host, devcon)
    _devcon(host, commands.devcon_install(devcon))
    host.refresh()
    new_devices = [device for device in _devices(host, devcon) if device not in devices_before]
    try:
        if len(new_devices) != 1:
            raise HostError(
                f"`{' '.join(commands.devcon_install(devcon))}` succeeded, but "
                f"{len(new_devices)} new loopback device(s) appeared instead of one"
            )
        adapter = _wait_for_adapter(host, before)
        if adapter != name:
            host.write(commands.rename_adapter(adapter, name))
    except ProviderError as exc:
        raise HostError(f"{exc}; {_remove_devices(host, devcon, new_devices)}") from exc
    host.created.by_name[name.lower()] = (devcon, new_devices[0])


def remove(host: AdapterHost, name: str, devcon: str) -> None:
    entry = host.created.by_name.pop(name.lower(), None)
    if entry is None:
        raise HostError(
            f"adapter {name} was not created by this run of dsrctl, which removes no other "
            "adapter (remove it in Device Manager if it must go)"
        )
    used, instance = entry
    _devcon(host, commands.devcon_remove(used or devcon, instance))
    host.refresh()


def _wait_for_adapter(host: AdapterHost, before: set[str]) -> str:
    for attempt in range(POLL_TRIES):
        if attempt:
            time.sleep(POLL_SECONDS)
            host.refresh()
        now = reader.read_adapters(host.query)
        new = [spelled for lower, spelled in now.items() if lower not in before]
        if len(new) > 1:
            raise HostError(f"several network adapters appeared at once ({', '.join(new)})")
        if new:
            return new[0]
    raise HostError(
        "devcon installed a loopback adapter, but no new network adapter appeared in "
        f"`{' '.join(commands.show_adapters())}` within {POLL_SECONDS * POLL_TRIES:.0f} s"
    )


def _remove_devices(host: AdapterHost, devcon: str, instances: list[str]) -> str:
    if not instances:
        return "no new loopback device to remove"
    failed = []
    for instance in instances:
        try:
            _devcon(host, commands.devcon_remove(devcon, instance))
        except ProviderError as exc:
            failed.append(f"{instance}: {exc}")
    host.refresh()
    if failed:
        return "the new loopback device could NOT be removed: " + "; ".join(failed)
    return f"removed the new loopback device again ({', '.join(instances)})"


def _devices(host: AdapterHost, devcon: str) -> list[str]:
    result = _devcon(host, commands.devcon_find(devcon))
    return [instance for instance, _ in parse.devcon_devices(result.output, result.command)]


def _devcon(host: AdapterHost, argv: commands.Argv) -> CommandResult:
    """devcon's exit code is its verdict: 0 done, 1 done but a reboot is needed, 2 failed,
    3 syntax error. A loopback adapter never needs a reboot, so only 0 counts."""
    result = host.runner.run(argv)
    if result.returncode != 0:
        lines = [line.strip() for line in parse.lines_of(result.output) if line.strip()]
        said = lines[-1] if lines else "no output"
        raise HostError(f"`{result.command}` failed (exit {result.returncode}): {said}")
    return result
