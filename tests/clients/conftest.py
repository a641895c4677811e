"""Fixtures for client tests."""

from __future__ import annotations

import pytest

from .loopback import SleepRecorder


@pytest.fixture
def sleeps() -> SleepRecorder:
    """Pass as `sleep=` to a client: retry delays are recorded, never waited."""
    return SleepRecorder()
