"""Suite-wide settings.

With DSRCTL_REQUIRE_NETNS=1 (set by .ci/run), every skip fails the run, whether a test
or a whole module (an importorskip at collection) is skipped, and so does a run in which
no namespace test or no VM test (tests/vm, the distribution kernel under qemu) ran: CI
must prove that the real-kernel tests and every tool-backed check (ansible-core,
prometheus_client, systemd-analyze, ruff) ran, not only that nothing failed.
"""

from __future__ import annotations

import os

import pytest

REQUIRE_NETNS = os.environ.get("DSRCTL_REQUIRE_NETNS") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = str(item.path).replace(os.sep, "/")
        if "/netns/" in path:
            item.add_marker(pytest.mark.netns)
        if "/tests/vm/" in path:
            item.add_marker(pytest.mark.vm)


@pytest.hookimpl(tryfirst=True)  # before the terminal reporter files it under "skipped"
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if REQUIRE_NETNS and report.skipped:
        _fail_skip(report)


@pytest.hookimpl(tryfirst=True)
def pytest_collectreport(report: pytest.CollectReport) -> None:
    if REQUIRE_NETNS and report.skipped:
        _fail_skip(report)


def _fail_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
    report.outcome = "failed"
    report.longrepr = f"skipped but DSRCTL_REQUIRE_NETNS=1 (CI runs every test): {reason}"


_netns_ran = 0
_vm_ran = 0


def pytest_runtest_logfinish(nodeid: str, location: tuple[str, int | None, str]) -> None:
    global _netns_ran, _vm_ran
    if "/netns/" in location[0].replace(os.sep, "/") or "tests/netns/" in nodeid:
        _netns_ran += 1
    if "tests/vm/" in location[0].replace(os.sep, "/") or "tests/vm/" in nodeid:
        _vm_ran += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if REQUIRE_NETNS and _netns_ran == 0 and exitstatus == 0:
        print("\nDSRCTL_REQUIRE_NETNS=1 but no namespace test ran")
        session.exitstatus = 1
    if REQUIRE_NETNS and _vm_ran == 0 and exitstatus == 0:
        print("\nDSRCTL_REQUIRE_NETNS=1 but no VM test (tests/vm) ran")
        session.exitstatus = 1
