"""Packaging as operators install tools: ``python -m build`` makes an sdist and, from it, a
wheel; the wheel holds every package of dsrctl/, providers/ and state/ and no tests; ``pipx
install`` of the wheel gives a ``dsrctl`` whose ``--version`` is the package metadata's.

Slow (an isolated build and a pipx venv with the runtime dependencies: about 25 s), so the
build is done once per module.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import dsrctl

ROOT = Path(__file__).parents[2]
PACKAGES = ("dsrctl", "providers", "state")

pytest.importorskip("build", reason="build is a test dependency ([test] extra)")
pytest.importorskip("pipx", reason="pipx is a test dependency ([test] extra)")


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def only(directory: Path, pattern: str) -> Path:
    found = sorted(directory.glob(pattern))
    assert len(found) == 1, found
    return found[0]


def checkout_packages() -> set[str]:
    return {
        str(init.parent.relative_to(ROOT))
        for package in PACKAGES
        for init in (ROOT / package).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }


def test_wheel_holds_every_package_and_no_tests(dist: Path) -> None:
    wheel = only(dist, f"dsrctl-{dsrctl.__version__}-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = f"dsrctl-{dsrctl.__version__}.dist-info"
        metadata = archive.read(f"{info}/METADATA").decode()
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    packages = {name.rpartition("/")[0] for name in names if name.endswith("/__init__.py")}
    assert packages == checkout_packages()
    assert {"dsrctl", "providers", "state"} <= {name.split("/")[0] for name in names}
    assert not [name for name in names if name.startswith(("tests/", "benchmarks/", "contrib/"))]
    assert f"\nVersion: {dsrctl.__version__}\n" in metadata
    assert "dsrctl = dsrctl.cli:main" in entry_points


def test_sdist_holds_the_sources(dist: Path) -> None:
    sdist = only(dist, f"dsrctl-{dsrctl.__version__}.tar.gz")
    top = f"dsrctl-{dsrctl.__version__}"
    with tarfile.open(sdist) as archive:
        names = set(archive.getnames())
    for path in ("pyproject.toml", "README.md", "dsrctl/__init__.py", "state/journal.py"):
        assert f"{top}/{path}" in names
    for package in checkout_packages():
        assert f"{top}/{package}/__init__.py" in names


def test_pipx_install_of_the_wheel_gives_a_working_dsrctl(dist: Path, tmp_path: Path) -> None:
    wheel = only(dist, "*.whl")
    env = {
        **os.environ,
        "PIPX_HOME": str(tmp_path / "pipx"),
        "PIPX_BIN_DIR": str(tmp_path / "bin"),
        "PIPX_MAN_DIR": str(tmp_path / "man"),
    }
    env.pop("DSRCTL_STATE_DIR", None)
    result = subprocess.run(
        [sys.executable, "-m", "pipx", "install", str(wheel)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    installed = tmp_path / "bin" / "dsrctl"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        # Run from an empty directory: only the installed copy can be imported.
        return subprocess.run(
            args, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60
        )

    version = run(str(installed), "--version")
    assert version.returncode == 0, version.stderr
    python = tmp_path / "pipx" / "venvs" / "dsrctl" / "bin" / "python"
    code = "import importlib.metadata as m, dsrctl; print(m.version('dsrctl'), dsrctl.__file__)"
    metadata = run(str(python), "-c", code)
    assert metadata.returncode == 0, metadata.stderr
    meta_version, location = metadata.stdout.split()
    assert version.stdout == f"dsrctl {meta_version}\n"
    assert meta_version == dsrctl.__version__
    assert str(tmp_path) in location  # the installed copy, not this checkout
    help_text = run(str(installed), "--help")
    assert help_text.returncode == 0 and "Commands:" in help_text.stdout
    checked = run(str(installed), "validate", str(ROOT / "examples" / "dsrctl.toml"))
    assert checked.returncode == 0, checked.stderr
    assert re.search(r": valid \(\d+ VIP\(s\)\)$", checked.stdout.strip())
    script = run(str(installed), "completion", "bash")
    assert "_DSRCTL_COMPLETE=complete_bash" in script.stdout


def test_readme_says_what_the_test_command_installs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"```sh\n(.*?)\n```", readme, re.S)
    last_line = (ROOT / ".ci" / "run").read_text(encoding="utf-8").rstrip("\n").splitlines()[-1]
    assert commands[1] == last_line
    packages = re.findall(r"apt-get install -y -qq (?:--no-install-recommends )?([^&]+)", last_line)
    prose = readme.split(last_line)[1].split("## What next")[0]
    for package in " ".join(packages).split():
        assert f"{package}," in prose or f"{package} " in prose, package
    assert "iputils-arping" in prose and "tests/vm/README.md" in prose
