"""The dashboard's stylesheet and the index page's script, as strings.

Kept in Python rather than as package data so that every install (wheel, editable, zipapp) has them;
both are small and hand-written: no external script, font or stylesheet is ever fetched.
"""

from __future__ import annotations

__all__ = ["INDEX_JS", "STYLE_CSS"]

STYLE_CSS = """\
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; padding: 0 1em;
       color: #1d1d1f; }
nav a { margin-right: 1em; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; } h3 { font-size: 1em; }
table { border-collapse: collapse; margin: .4em 0; }
th, td { border: 1px solid #ddd; padding: .2em .5em; text-align: left; vertical-align: top; }
thead th { background: #f3f3f5; }
table.kv > tbody > tr > th { background: #f8f8fa; font-weight: 600; }
.num, td.num { text-align: right; font-variant-numeric: tabular-nums; }
th button { font: inherit; font-weight: 600; border: 0; background: none; cursor: pointer; padding: 0; }
th[aria-sort="ascending"]::after { content: " ▲"; }
th[aria-sort="descending"]::after { content: " ▼"; }
#controls { display: flex; gap: 1em; align-items: center; margin: .5em 0; }
#filter { width: 24em; padding: .3em; }
.explanation { font-size: 1.15em; background: #f6f8ff; padding: .5em .8em; border-left: 4px solid #6a7fd6; }
.meta { color: #555; }
.absent { color: #777; font-style: italic; }
.example { font-family: ui-monospace, monospace; font-size: 13px; margin: .3em 0; padding: .3em;
           border: 1px solid #eee; white-space: pre-wrap; word-break: break-word; }
.example .tag { color: #777; font-family: system-ui, sans-serif; margin-right: .6em; }
.tok { border-radius: 2px; }
svg.hist rect { fill: #6a7fd6; } svg.hist text { font-size: 11px; fill: #444; }
"""

# Rows arrive as JSON (`<script type="application/json" id="data">`); the table is rebuilt for one
# page of rows at a time, so 10,000 latents cost one sort and one filter pass, never 10,000 DOM rows.
# Cells are set with textContent: row text never becomes markup.
INDEX_JS = """\
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("data").textContent);
  const pageSize = data.page_size;
  const cols = data.columns;
  const body = document.querySelector("#latents tbody");
  const status = document.getElementById("status");
  const filterBox = document.getElementById("filter");
  const prev = document.getElementById("prev");
  const next = document.getElementById("next");
  const hay = data.rows.map(function (row) {
    const text = cols.map(function (c, i) { return c.kind === "text" ? String(row[i]) : ""; });
    return text.join(" ").toLowerCase();
  });
  let order = data.rows.map(function (_, i) { return i; });
  let shown = order;
  let sortCol = -1, sortDir = 1, page = 0;

  function fmt(v) {
    if (v === null || v === undefined) return "\\u2013";
    if (typeof v !== "number") return String(v);
    if (Number.isInteger(v)) return String(v);
    if (v !== 0 && Math.abs(v) < 1e-3) return v.toExponential(2);
    return String(Number(v.toPrecision(4)));
  }

  function compare(a, b) {
    const x = data.rows[a][sortCol], y = data.rows[b][sortCol];
    if (x === null && y === null) return a - b;
    if (x === null) return 1;  // missing values last in either direction
    if (y === null) return -1;
    const c = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
    return c !== 0 ? sortDir * c : a - b;
  }

  function applyFilter() {
    const q = filterBox.value.trim().toLowerCase();
    shown = q ? order.filter(function (i) { return hay[i].indexOf(q) !== -1; }) : order;
    page = 0;
    draw();
  }

  function sortBy(col) {
    sortDir = col === sortCol ? -sortDir : (cols[col].kind === "num" ? -1 : 1);
    sortCol = col;
    order = data.rows.map(function (_, i) { return i; }).sort(compare);
    document.querySelectorAll("#latents thead th").forEach(function (th, i) {
      th.setAttribute("aria-sort", i === sortCol ? (sortDir > 0 ? "ascending" : "descending") : "none");
    });
    applyFilter();
  }

  function cell(rowIdx, col) {
    const td = document.createElement("td");
    const v = data.rows[rowIdx][col];
    if (cols[col].link) {
      const a = document.createElement("a");
      a.href = data.links[rowIdx];
      a.textContent = fmt(v);
      td.appendChild(a);
    } else {
      td.textContent = fmt(v);
    }
    if (cols[col].kind === "num") td.className = "num";
    return td;
  }

  function draw() {
    const pages = Math.max(1, Math.ceil(shown.length / pageSize));
    page = Math.min(page, pages - 1);
    const frag = document.createDocumentFragment();
    shown.slice(page * pageSize, (page + 1) * pageSize).forEach(function (i) {
      const tr = document.createElement("tr");
      for (let c = 0; c < cols.length; c++) tr.appendChild(cell(i, c));
      frag.appendChild(tr);
    });
    body.replaceChildren(frag);
    status.textContent = shown.length + " of " + data.rows.length + " latents \\u00b7 page " +
      (page + 1) + " of " + pages;
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
  }

  document.querySelectorAll("#latents thead th button").forEach(function (btn) {
    btn.addEventListener("click", function () { sortBy(Number(btn.dataset.col)); });
  });
  filterBox.addEventListener("input", applyFilter);
  prev.addEventListener("click", function () { page -= 1; draw(); });
  next.addEventListener("click", function () { page += 1; draw(); });
  draw();
})();
"""
