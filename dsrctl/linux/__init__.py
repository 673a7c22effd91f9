"""Linux planning: desired state, persistence, spec checks, import and the planner; and the
platform's record (dsrctl.platforms), named in ``dsrctl.platforms.PLATFORMS``.

Nothing heavy is imported here at run time (``dsrctl.spec`` and every command reach this
package): the record names its parts as strings, and the imports below are for mypy only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dsrctl.platforms import Platform

if TYPE_CHECKING:
    from providers.linux.host import LinuxHost

PLATFORM: Platform[LinuxHost] = Platform(
    name="linux",
    provider="providers.linux.host:LinuxHost",
    planner="dsrctl.linux.planner:plan_linux",
    checks="dsrctl.linux.checks:check_linux_spec",
    # The step kinds are the resource kinds of dsrctl.kinds.registry (LINUX).
    steps=(),
    importer="dsrctl.linux.adopt:import_host",
)

if TYPE_CHECKING:
    from dsrctl.executor import BatchRunner, StepHost, UndoPreparer
    from dsrctl.kinds.address import AddressWriter
    from dsrctl.kinds.directory import DirWriter
    from dsrctl.kinds.file import FileWriter
    from dsrctl.kinds.fou import FouWriter
    from dsrctl.kinds.module import ModuleWriter
    from dsrctl.kinds.route import RouteWriter
    from dsrctl.kinds.symlink import LinkWriter
    from dsrctl.kinds.sysctl import SysctlWriter
    from dsrctl.kinds.tunnel import TunnelWriter
    from dsrctl.linux.adopt import import_host
    from dsrctl.linux.checks import check_linux_spec
    from dsrctl.linux.planner import plan_linux
    from dsrctl.platforms import Importer, Planner, SpecCheck

    # mypy checks that the parts named above take a LinuxHost (the planner through its
    # LinuxPlannerHost Protocol) and that LinuxHost is every writer its steps and the
    # executor ask for.
    _PARTS: tuple[Planner[LinuxHost], SpecCheck[LinuxHost], Importer[LinuxHost]] = (
        plan_linux,
        check_linux_spec,
        import_host,
    )

    def _writes(host: LinuxHost) -> None:
        _: tuple[
            StepHost,
            AddressWriter,
            SysctlWriter,
            FileWriter,
            LinkWriter,
            DirWriter,
            BatchRunner,
            UndoPreparer,
            RouteWriter,
            ModuleWriter,
            TunnelWriter,
            FouWriter,
        ] = (host, host, host, host, host, host, host, host, host, host, host, host)
