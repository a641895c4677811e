"""The pages in a real headless Chromium, from file:// with no server: sort, filter, paginate, follow links.

Untrusted text must stay text: a `<script>alert(1)</script>` token or explanation that ran would open
a dialog, so every test fails on any dialog, page error, console error or non-file request.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from sae_interp.dashboard._assets import STYLE_CSS
from sae_interp.dashboard._html import STYLE_FILE
from sae_interp.dashboard.index import index_data, index_html
from tests.dashboard.runs import EVIL_EXPLANATION, latent_result

pytestmark = pytest.mark.browser


@pytest.fixture
def watched(page: Page) -> Iterator[Page]:
    """`page`, failing the test afterwards on dialogs, script errors, console errors or network use."""
    problems: list[str] = []
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
    page.on("console", lambda msg: msg.type == "error" and problems.append(f"console: {msg.text}"))
    page.on("request", lambda req: req.url.startswith(("file:", "data:")) or problems.append(req.url))
    yield page
    assert problems == []


def _column(page: Page, label: str) -> list[str]:
    """The text of one column in the table's current DOM rows."""
    labels = page.locator("#latents thead th").all_text_contents()
    index = labels.index(label)
    return page.locator("#latents tbody tr").evaluate_all(
        f"rows => rows.map(r => r.children[{index}].textContent)"
    )


def test_index_sorts_filters_and_links_to_safe_latent_pages(run_dir: Path, watched: Page, tmp_path: Path):
    page = watched
    rows = page.locator("#latents tbody tr")
    page.goto((run_dir / "index.html").as_uri())
    expect(rows).to_have_count(3)
    expect(page.locator("#status")).to_have_text("3 of 3 latents · page 1 of 1")

    detection = page.get_by_role("button", name="detection", exact=True)
    detection.click()  # numbers sort best first
    assert _column(page, "detection") == ["0.9", "0.6", "0.3"]
    expect(page.locator("th", has=detection)).to_have_attribute("aria-sort", "descending")
    detection.click()
    assert _column(page, "detection") == ["0.3", "0.6", "0.9"]
    page.get_by_role("button", name="fuzzing", exact=True).click()
    assert _column(page, "fuzzing") == ["0.7", "–", "–"]  # undefined scores last
    page.screenshot(path=tmp_path / "index-sorted.png", full_page=True)

    page.get_by_label("filter").fill("markdown")
    expect(rows).to_have_count(1)
    assert _column(page, "hookpoint") == ["model.layers.6"]
    page.get_by_label("filter").fill("<script>")
    expect(rows).to_have_count(1)
    assert _column(page, "explanation") == [EVIL_EXPLANATION]

    page.get_by_role("link", name="42", exact=True).click()
    expect(page).to_have_url((run_dir / "latents" / "model.layers.13" / "42.html").as_uri())
    expect(page.locator(".explanation")).to_have_text(EVIL_EXPLANATION)
    assert page.locator("script, img").count() == 0
    assert page.evaluate("document.title") == "model.layers.13 · latent 42"
    page.screenshot(path=tmp_path / "latent-42.png", full_page=True)

    page.get_by_role("link", name="run report").click()
    expect(page.locator("table.kv th", has_text="chosen_layer")).to_be_visible()
    page.screenshot(path=tmp_path / "run.png", full_page=True)
    page.get_by_role("link", name="← all latents").click()
    expect(rows).to_have_count(3)
    assert list(tmp_path.glob("*.png")), "screenshots were taken"


def test_ten_thousand_latents_open_paginated(tmp_path: Path, watched: Page):
    """Only the index matters here, so it is written directly (10,000 latent pages add nothing)."""
    base = latent_result("model.layers.13", 0, "", {"detection": 0.0})
    results = [
        base.model_copy(
            update={
                "latent": i,
                "key": f"model.layers.13/{i}",
                "explanation": base.explanation.model_copy(update={"text": f"feature number {i}"}),
                "scores": {
                    "detection": base.scores["detection"].model_copy(update={"score": (i * 37 % 101) / 100})
                },
            }
        )
        for i in range(10_000)
    ]
    links = [f"latents/model.layers.13/{i}.html" for i in range(10_000)]
    (tmp_path / STYLE_FILE).write_text(STYLE_CSS)
    (tmp_path / "index.html").write_text(index_html("big", index_data(results, links)))

    page = watched
    rows = page.locator("#latents tbody tr")
    page.goto((tmp_path / "index.html").as_uri())
    expect(rows).to_have_count(100)
    expect(page.locator("#status")).to_have_text("10000 of 10000 latents · page 1 of 100")
    page.get_by_role("button", name="next →").click()
    expect(page.locator("#status")).to_have_text("10000 of 10000 latents · page 2 of 100")
    assert _column(page, "latent")[0] == "100"
    page.get_by_role("button", name="detection", exact=True).click()
    expect(page.locator("#status")).to_contain_text("page 1 of 100")  # sorting goes back to page 1
    assert _column(page, "detection")[0] == "1"
    page.get_by_label("filter").fill("number 9999")
    expect(rows).to_have_count(1)
    page.screenshot(path=tmp_path / "index-10k.png")
