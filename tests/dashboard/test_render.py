"""The generated HTML of a constructed run: completeness, links, escaping, and the run page's sections."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sae_interp.dashboard import RunFolderError, render_run
from sae_interp.dashboard._html import json_for_script, token_text
from tests.dashboard.runs import EVIL, EXPLANATIONS, SCORES, write_run

_HREF = re.compile(r'(?:href|src)="([^"]*)"')


def _index_data(run: Path) -> dict:
    html = (run / "index.html").read_text()
    blob = re.search(r'<script type="application/json" id="data">(.*?)</script>', html, re.S)
    assert blob, "index.html must embed its rows as JSON"
    return json.loads(blob.group(1))


def _pages(run: Path) -> list[Path]:
    return sorted(run.rglob("*.html"))


def test_every_latent_is_in_the_index_and_has_a_page(run_dir: Path):
    data = _index_data(run_dir)
    labels = [c["label"] for c in data["columns"]]
    rows = {(row[0], row[1]): dict(zip(labels, row, strict=True)) for row in data["rows"]}
    assert set(rows) == set(SCORES)
    for (hookpoint, latent), scores in SCORES.items():
        row = rows[hookpoint, latent]
        assert row["explanation"] == EXPLANATIONS[hookpoint, latent]
        assert all(row[name] == value for name, value in scores.items())
        assert row["frequency"] == pytest.approx(0.0004)
    assert rows["model.layers.6", 3]["fuzzing"] is None  # a scorer that never ran on it
    assert rows["model.layers.13", 7]["refusal rank"] == 7
    for link in data["links"]:
        assert (run_dir / link).is_file()
    assert (run_dir / "latents" / "model.layers.13" / "42.html").is_file()


def test_every_link_resolves_to_a_written_file(run_dir: Path):
    pages = _pages(run_dir)
    assert len(pages) == 2 + len(SCORES)  # index, run page and one page per latent
    for page in pages:
        for target in _HREF.findall(page.read_text()):
            if target.startswith("data:"):
                continue
            assert (page.parent / target).resolve().is_file(), f"{page.name} links to missing {target}"


def test_untrusted_text_is_escaped_everywhere(run_dir: Path):
    for page in _pages(run_dir):
        text = page.read_text()
        assert "<script>alert" not in text, page
        assert "<img src=x" not in text, page
        assert "<b>chosen" not in text, page
        # The index's own two script elements are the only ones.
        assert text.count("<script") == (2 if page.name == "index.html" else 0), page
    latent = (run_dir / "latents" / "model.layers.13" / "42.html").read_text()
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert f"{escaped} quotes &quot; and &amp; ampersands &lt;img src=x onerror=alert(2)&gt;" in latent
    assert f">{escaped}</span>" in latent  # the token itself
    assert "&amp;amp;" in latent  # a token spelling an entity shows as typed
    assert "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e" in (run_dir / "index.html").read_text()
    run_page = (run_dir / "run.html").read_text()
    assert run_page.count(escaped) == 2  # in config.json and in failures.jsonl


def test_latent_page_shows_explanation_examples_scores_and_histogram(run_dir: Path):
    html = (run_dir / "latents" / "model.layers.13" / "7.html").read_text()
    assert '<p class="explanation">refusal openers such as I cannot</p>' in html
    assert "explainer default · prompt v3" in html
    for heading in ("Train examples", "Test examples", "Non-activating examples"):
        assert heading in html
    assert '<span class="tok" title="2.5" style="background:rgba(255,140,0,1.00)"> cannot</span>' in html
    assert '<span class="tok" title="0.5" style="background:rgba(255,140,0,0.20)">↵</span>' in html
    assert "<h3>detection</h3>" in html and "<h3>fuzzing</h3>" in html
    assert "<td>non_activating</td><td>0.25</td>" in html  # the per-quantile table
    assert html.count("<rect") == 3  # one bar per histogram bin
    assert 'href="../../index.html"' in html and 'href="../../run.html"' in html


def test_run_page_renders_report_aligned_latents_and_score_distributions(run_dir: Path):
    html = (run_dir / "run.html").read_text()
    assert '<th>chosen_layer</th><td><span class="num">13</span></td>' in html
    assert '<th>ablated</th><td><span class="num">0.06</span></td>' in html
    assert '<a href="latents/model.layers.13/7.html">page</a>' in html  # CSV row of an explained latent
    assert ">1234<" in html  # an aligned latent without a page is still listed
    assert "<h3>detection</h3>" in html and "3 latents, mean 0.6" in html
    assert "1 latents, mean 0.7, 1 undefined" in html  # fuzzing: one score, one None
    assert html.count('<svg class="hist"') == 2


def test_missing_optional_files_are_reported_not_fatal(tmp_path: Path):
    run = tmp_path / "run-b"
    run.mkdir()
    write_run(run)
    for name in (
        "refusal/report.json",
        "refusal/latents.csv",
        "summary.json",
        "config.json",
        "failures.jsonl",
    ):
        (run / name).unlink()
    render_run(run)
    html = (run / "run.html").read_text()
    for name in ("refusal/report.json", "refusal/latents.csv", "summary.json", "config.json"):
        assert f"{name} is absent from this run." in html


def test_rendering_again_gives_the_same_files(run_dir: Path):
    before = {p: p.read_bytes() for p in _pages(run_dir)}
    render_run(run_dir)
    assert {p: p.read_bytes() for p in _pages(run_dir)} == before


@pytest.mark.parametrize("make", [lambda p: p / "nope", lambda p: p])
def test_a_folder_without_latents_is_a_clear_error(tmp_path: Path, make):
    with pytest.raises(RunFolderError, match=r"expected an explanation run folder holding latents/"):
        render_run(make(tmp_path))


def test_json_for_script_cannot_end_the_script_element():
    value = {"t": f"{EVIL}</SCRIPT><!-- & \u2028"}
    text = json_for_script(value)
    assert not set("<>&") & set(text)
    assert json.loads(text) == value


@pytest.mark.parametrize(
    ("token", "shown"),
    [
        ("\n", "↵"),
        ("a\tb", "a⇥b"),
        ("  ", "␣␣"),
        ("", "∅"),
        (" the", " the"),
        ('<"&>', "&lt;&quot;&amp;&gt;"),
    ],
)
def test_token_text_makes_whitespace_visible_and_escapes(token: str, shown: str):
    assert token_text(token) == shown
