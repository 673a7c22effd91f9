"""The ``win`` fixture: a fake Windows host (tests/windows/fake_host.py) in the test's
temporary directory, which the CLI tests run dsrctl against.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.windows.fake_host import FakeWindows, start_fake_windows


@pytest.fixture
def win(tmp_path: Path) -> Iterator[FakeWindows]:
    yield start_fake_windows(tmp_path)
