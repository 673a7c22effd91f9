"""Fixtures for the end-to-end tests against the real kernel: every test here is skipped
where namespaces cannot be created, and ``make_netns``/``netns`` give throwaway namespaces
(tests/netns/namespaces.py) that are deleted afterwards, also when the test fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.netns.namespaces import UNAVAILABLE, Netns, NetnsFactory


@pytest.fixture(autouse=True)
def _require_netns() -> None:
    if UNAVAILABLE is not None:
        pytest.skip(UNAVAILABLE)


@pytest.fixture
def make_netns(tmp_path: Path) -> Iterator[NetnsFactory]:
    factory = NetnsFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.cleanup()


@pytest.fixture
def netns(make_netns: NetnsFactory) -> Netns:
    return make_netns("server")
