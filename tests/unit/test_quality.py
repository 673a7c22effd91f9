"""The code base stays ruff- and mypy-clean (run as part of the suite, so CI checks it)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, cwd=ROOT)


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is a test dependency")
def test_ruff_check_and_format() -> None:
    check = run("ruff", "check", ".")
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = run("ruff", "format", "--check", ".")
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_mypy_strict() -> None:
    result = run(sys.executable, "-m", "mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_cli_import_stays_light() -> None:
    """The drift path must not import pyroute2, deepdiff or rich (measured in benchmarks/)."""
    code = (
        "import sys, dsrctl.cli, dsrctl.engine, dsrctl.linux.planner, providers.linux.host, "
        "providers.linux.addresses\n"
        "print(sorted(m for m in ('pyroute2', 'deepdiff', 'rich', 'pydantic', 'numpy') "
        "if m in sys.modules))"
    )
    result = run(sys.executable, "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_show_without_tunnels_imports_no_tunnel_reader() -> None:
    """What `show` imports on every Linux host (the decision whether there is a tunnel side
    to show, dsrctl.linux.decap_side) pulls in none of the tunnel readers: those come only
    with a decap device or a tunnel record. The run itself: tests/netns/test_show_tunnels.py."""
    readers = (
        "providers.linux.nft",
        "providers.linux.fou",
        "providers.linux.kmod",
        "providers.linux.tunnels",
        "providers.linux.decap_side",
        "dsrctl.render_tunnels",
    )
    code = (
        "import sys, dsrctl.cli, dsrctl.render, dsrctl.linux.decap_side, dsrctl.linux.ranges, "
        "dsrctl.linux.effective, dsrctl.linux.checks, providers.linux.host, "
        "providers.linux.routes\n"
        f"print(sorted(m for m in {readers!r} if m in sys.modules))"
    )
    result = run(sys.executable, "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
