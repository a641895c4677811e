"""Fixtures of the dashboard tests: a rendered constructed run, and Playwright on the system Chromium."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

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


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """The system Chromium, driven by Playwright's sync API; skipped when it is absent.

    Module-scoped on purpose: the sync API runs an event loop in this thread while it is open, and
    asyncio tests that run later need the thread free of it.
    """
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("no system Chromium on PATH (apt-get install chromium); .ci/run installs it")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page in its own browser context."""
    context = browser.new_context()
    yield context.new_page()
    context.close()
