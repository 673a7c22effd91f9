"""The code base stays ruff- and mypy-clean (run as part of the suite, so CI checks it),
and the plan/drift path imports only what it needs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.netns.namespaces import UNAVAILABLE, Netns, NetnsFactory, with_uplink, write_spec

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


# What plan and drift of a spec without [[tunnel]] and without VIP ranges never need: the
# tunnel, nftables, firewall and route providers, the clamp's arithmetic and the firewall
# warning, the [[tunnel]] parser,
# Windows code and the heavy libraries. (providers.linux.uplinks and dsrctl.linux.effective
# are needed by every plan: the uplinks' ARP values are judged for every spec.)
NOT_WITHOUT_TUNNELS = {
    "providers.linux.tunnels",
    "providers.linux.fou",
    "providers.linux.kmod",
    "providers.linux.nft",
    "providers.linux.routes",
    "providers.linux.persist.mss_unit",
    "providers.linux.firewall",
    "dsrctl.linux.firewall",
    "dsrctl.linux.mss",
    "dsrctl.linux.tunnels",
    "dsrctl.tunnels",
    "dsrctl.windows",
    "pyroute2",
    "deepdiff",
    "rich",
}


# Runs the CLI as ``python -m dsrctl`` does and writes every module it imported when it
# exits: also those imported inside functions and by importlib.import_module (the platform
# records' names), which ``-X importtime`` does not list.
RUN_AND_LIST = (
    "import atexit, runpy, sys\n"
    "out = sys.argv.pop(1)\n"
    "atexit.register(lambda: open(out, 'w').write('\\n'.join(sorted(sys.modules))))\n"
    "runpy.run_module('dsrctl', run_name='__main__', alter_sys=True)\n"
)


def imported_by(netns: Netns, *args: str) -> set[str]:
    """The modules a real run of the CLI in ``netns`` imported."""
    listing = netns.workdir / "modules.txt"
    env = {**os.environ, "DSRCTL_STATE_DIR": str(netns.state_dir)}
    result = subprocess.run(
        ["ip", "netns", "exec", netns.name, sys.executable, "-c", RUN_AND_LIST,
         str(listing), *args],
        capture_output=True, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode in (0, 2), result.stderr
    return set(listing.read_text().split())


def test_plan_and_drift_without_tunnels_import_no_tunnel_code(tmp_path: Path) -> None:
    if UNAVAILABLE is not None:
        pytest.skip(UNAVAILABLE)
    factory = NetnsFactory(tmp_path)
    try:
        netns = factory("server")
        with_uplink(netns)  # the uplinks are read (their ARP values judged)
        plain = write_spec(netns, 'version = 1\n[[vip]]\naddress = "198.18.7.1"\n')
        for command in ("plan", "drift"):
            found = imported_by(netns, command, str(plain))
            assert {"dsrctl.linux.planner", "providers.linux.uplinks"} <= found, command
            assert found & NOT_WITHOUT_TUNNELS == set(), command
            assert not [m for m in found if m.startswith("dsrctl.windows")], command
            # They write nothing: the journal and the apply lock stay unloaded too.
            assert not found & {"state.journal", "state.lock"}, command
        # The same measurement sees a module imported inside a function when it is needed.
        ranged = write_spec(
            netns, 'version = 1\n[[vip]]\naddress = "198.18.8.0"\nprefix = 24\n', "r.toml"
        )
        assert "providers.linux.routes" in imported_by(netns, "drift", str(ranged))
    finally:
        factory.cleanup()


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
