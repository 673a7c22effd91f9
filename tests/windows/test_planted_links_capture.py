"""`capture --output` into a directory another user can write never writes through the
links that user planted (issue 9, finding 3; the other commands are in
tests/netns/test_planted_links.py, whose planting is shown to catch the old writer)."""

from __future__ import annotations

import json
import os

import pytest

from tests.planted_links import Victim, assert_links_intact, give_to_nobody, plant
from tests.windows.fake_host import FakeWindows


def test_capture_never_writes_through_planted_links(win: FakeWindows) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to plant links as uid 65534")
    victim = Victim(win.root / "victim")
    shared = win.root / "captures"
    give_to_nobody(shared)
    temps = plant(shared, victim, ["server.json"])
    result = win.dsrctl("capture", str(win.spec()), "--output", str(shared / "server.json"))
    assert result.returncode == 0, result.stderr
    assert_links_intact(temps, victim)
    written = shared / "server.json"
    assert not written.is_symlink()
    assert json.loads(written.read_text())["format"] == "dsrctl-capture"
