"""The platform records (dsrctl.platforms): every name they hold resolves, to the objects
mypy checks in the record's package, and nothing heavy is imported to read them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dsrctl import platforms
from dsrctl.platforms import PLATFORMS, load, platform, platform_names
from providers.base import Provider
from providers.errors import ProviderError


@pytest.mark.parametrize("name", sorted(PLATFORMS))
def test_every_name_in_a_record_resolves(name: str) -> None:
    record = platform(name)
    assert record.name == name
    assert issubclass(record.provider_class(), Provider)
    assert record.provider_class().platform == name
    for target in (record.planner, record.checks, record.importer):
        assert target is not None
        assert callable(load(target))
    for module in record.steps:
        assert load(f"{module}:STEPS")


def test_the_records_name_the_objects_mypy_checks() -> None:
    from dsrctl.linux import adopt as linux_adopt
    from dsrctl.linux.checks import check_linux_spec
    from dsrctl.linux.planner import plan_linux
    from dsrctl.windows import adopt as windows_adopt
    from dsrctl.windows.checks import check_windows_spec
    from dsrctl.windows.planner import plan_windows
    from providers.linux.host import LinuxHost
    from providers.windows.host import WindowsHost

    linux, windows = platform("linux"), platform("windows")
    assert (load(linux.provider), load(linux.planner), load(linux.checks)) == (
        LinuxHost,
        plan_linux,
        check_linux_spec,
    )
    assert load(linux.importer or "") is linux_adopt.import_host
    assert (load(windows.provider), load(windows.planner), load(windows.checks)) == (
        WindowsHost,
        plan_windows,
        check_windows_spec,
    )
    assert load(windows.importer or "") is windows_adopt.import_host
    assert platforms.step_modules() == ["dsrctl.windows.steps"]


def test_an_unknown_platform_is_refused_with_the_known_ones() -> None:
    with pytest.raises(
        ProviderError, match=r"no provider for platform 'bsd' \(known: linux, windows\)"
    ):
        platform("bsd")
    assert platform_names() == ["linux", "windows"]


def test_reading_a_record_imports_no_platform_code() -> None:
    code = (
        "import sys\nfrom dsrctl.platforms import platform\n"
        "platform('linux'); platform('windows')\n"
        "print(sorted(m for m in sys.modules if m.startswith(('providers.', 'dsrctl.'))"
        " and m not in ('dsrctl.platforms', 'dsrctl.linux', 'dsrctl.windows')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
