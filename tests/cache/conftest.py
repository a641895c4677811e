"""Fixtures of the cache tests (the tiny model, SAE and cache themselves live in tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.cache import cache_script  # the subprocess tests' script; it shares its settings with the tests


@pytest.fixture(scope="session")
def script():
    return cache_script
