"""Fixtures of the dashboard tests: a rendered constructed run, and Playwright on the system Chromium."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sae_interp.dashboard import render_run
from tests.dashboard.runs import write_run

# REFERENCE.md section 10: `playwright install` needs a network, so drive the apt package instead.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A constructed run folder (see runs.write_run), rendered."""
    run = tmp_path / "run-a"
    run.mkdir()
    write_run(run)
    render_run(run)
    return run


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    """pytest-playwright's launch arguments, pointed at the system Chromium (skip when it is absent)."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("no system Chromium on PATH (apt-get install chromium); .ci/run installs it")
    return {**browser_type_launch_args, "executable_path": chromium, "args": CHROMIUM_FLAGS}
