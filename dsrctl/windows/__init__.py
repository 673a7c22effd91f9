"""Windows planning: the ``[windows]`` spec table, resource ids, steps, manual
instructions, spec checks, import and the planner; and the platform's record
(dsrctl.platforms), named in ``dsrctl.platforms.PLATFORMS``.

Nothing heavy is imported here at run time (``dsrctl.spec`` imports ``dsrctl.windows.spec``,
which runs this first): the record names its parts as strings, and the imports below are
for mypy only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dsrctl.platforms import Platform

if TYPE_CHECKING:
    from providers.windows.host import WindowsHost

PLATFORM: Platform[WindowsHost] = Platform(
    name="windows",
    provider="providers.windows.host:WindowsHost",
    planner="dsrctl.windows.planner:plan_windows",
    checks="dsrctl.windows.checks:check_windows_spec",
    steps=("dsrctl.windows.steps",),
    importer="dsrctl.windows.adopt:import_host",
)

if TYPE_CHECKING:
    from dsrctl.executor import StepHost
    from dsrctl.platforms import Importer, Planner, SpecCheck
    from dsrctl.windows.adopt import import_host
    from dsrctl.windows.checks import check_windows_spec
    from dsrctl.windows.planner import plan_windows
    from dsrctl.windows.steps import WindowsWriter

    # mypy checks that the parts named above take a WindowsHost (the planner through its
    # WindowsPlannerHost Protocol) and that WindowsHost is the writer its steps ask for.
    _PARTS: tuple[Planner[WindowsHost], SpecCheck[WindowsHost], Importer[WindowsHost]] = (
        plan_windows,
        check_windows_spec,
        import_host,
    )

    def _writes(host: WindowsHost) -> None:
        _: tuple[StepHost, WindowsWriter] = (host, host)
