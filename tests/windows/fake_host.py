"""A fake Windows host for the CLI tests: netsh, devcon and ipconfig stand-ins first on
PATH, their state in a JSON file, dsrctl run as a subprocess exactly as an operator runs it.

The stand-ins are Python scripts (tests/windows/fake); small launchers in a temporary
bin directory run them with this interpreter, without site packages, so that each netsh
call costs milliseconds. ``start_fake_windows`` sets one up (for the ``win`` fixture);
``FakeWindows`` drives it, ``host_state`` is the host it starts from.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FAKE = Path(__file__).parent / "fake"
sys.path.insert(0, str(FAKE))

from fakewin.host import new_adapter  # noqa: E402

ROOT = Path(__file__).parents[2]

SPEC = """
version = 1
[[vip]]
address = "192.0.2.100"
[[vip]]
address = "2001:db8::100"

[windows]
loopback = "LO"
uplinks = ["LAN"]

[[windows.firewall]]
name = "dsr-web"
protocol = "tcp"
ports = [80, 443]
"""

SPEC_2003 = """
version = 1
[[vip]]
address = "192.0.2.100"
[[vip]]
address = "198.18.0.100"

[windows]
loopback = "LO"
profile = "2003"
"""


def lan(version: str) -> dict[str, Any]:
    name = "Local Area Connection" if version == "2003" else "LAN"
    entry = new_adapter(name, metric=20)
    entry["ipv4"].update(
        dhcp=False, addresses=[["198.18.0.10", 24, False]], gateways=["198.18.0.1"]
    )
    entry["ipv6"]["addresses"] = [["2001:db8:1::10", 64, False]]
    return entry


def host_state(version: str = "2008+", loopback: bool = True) -> dict[str, Any]:
    adapters = [lan(version)]
    devices = []
    if loopback:
        adapters.append(new_adapter("LO", loopback=True))
        description = (
            "Microsoft Loopback Adapter"
            if version == "2003"
            else "Microsoft KM-TEST Loopback Adapter"
        )
        devices.append(
            {
                "instance": "ROOT\\NET\\0000",
                "hwid": "*MSLOOP",
                "description": description,
                "adapter": "LO",
            }
        )
    return {
        "version": version,
        "language": "en",
        "elevated": True,
        "style": {},
        "adapters": adapters,
        "devices": devices,
        "firewall": [],
        "fail": [],
        "log": [],
    }


@dataclass
class FakeWindows:
    root: Path
    state_file: Path
    state_dir: Path
    env: dict[str, str]

    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.state_file.read_text())
        return data

    def write(self, state: dict[str, Any]) -> None:
        self.state_file.write_text(json.dumps(state, indent=1))

    def change(self, edit: Callable[[dict[str, Any]], None]) -> None:
        state = self.state()
        edit(state)
        self.write(state)

    def adapter(self, name: str, state: dict[str, Any] | None = None) -> dict[str, Any]:
        state = state or self.state()
        return next(a for a in state["adapters"] if a["name"] == name)

    def spec(self, text: str = SPEC, name: str = "spec.toml") -> Path:
        path = self.root / name
        path.write_text(text)
        return path

    def dsrctl(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "dsrctl", "--platform", "windows"]
        command += ["--state-dir", str(self.state_dir), *args]
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            cwd=self.root,
            env={**self.env, **(env or {})},
            stdin=subprocess.DEVNULL,
            timeout=60,
        )

    def netsh(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["netsh", *args], capture_output=True, text=True, env=self.env, timeout=30
        )

    def log(self) -> list[str]:
        return list(self.state()["log"])

    def clear_log(self) -> None:
        self.change(lambda state: state.update(log=[]))

    def writes(self) -> list[str]:
        """Commands in the log that change something (everything but show/find/ipconfig)."""
        reads = (" show ", "devcon find", "ipconfig /all")
        return [line for line in self.log() if not any(word in line for word in reads)]

    def snapshot(self) -> dict[str, Any]:
        """What the host holds, without the command log."""
        state = copy.deepcopy(self.state())
        state.pop("log", None)
        state.pop("fail", None)
        state.pop("style", None)
        return state


def launcher(path: Path, program: str) -> None:
    """A launcher that imports the stand-in directly: no runpy, no site, cached bytecode."""
    path.write_text(
        f"#!{sys.executable} -S\n"
        "import sys\n"
        f"sys.path.insert(0, {str(FAKE)!r})\n"
        f"from fakewin.{program} import run\n"
        "sys.exit(run(sys.argv[1:]))\n"
    )
    path.chmod(0o755)


def start_fake_windows(tmp_path: Path) -> FakeWindows:
    """A fake host under ``tmp_path``: launchers in bin/, the default ``host_state()``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program in ("netsh", "devcon", "ipconfig"):
        launcher(bin_dir / program, program)
    state_file = tmp_path / "host.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSRCTL_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode caching keeps each run fast
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        DSRCTL_FAKE_WINDOWS=str(state_file),
        NO_COLOR="1",
        PYTHONPATH=str(ROOT),
    )
    fake = FakeWindows(tmp_path, state_file, tmp_path / "state", env)
    fake.write(host_state())
    return fake
