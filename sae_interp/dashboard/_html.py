"""HTML building blocks shared by the dashboard's pages: escaping, number formatting, tables, page shell.

Boundary decision: every string that reaches a page passes through `esc` exactly once, here or in
the page modules. Helpers that take "cells" or "body" take HTML that the caller already built from
escaped parts; helpers that take values (`json_html`, `token_text`) escape themselves.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence

import orjson

__all__ = [
    "INDEX_PAGE",
    "RUN_PAGE",
    "STYLE_FILE",
    "esc",
    "fmt_number",
    "json_for_script",
    "json_html",
    "page",
    "table",
    "token_text",
]

# The dashboard's own files in the run folder, next to the pipeline's (latent pages sit beside their JSON).
INDEX_PAGE = "index.html"
RUN_PAGE = "run.html"
STYLE_FILE = "style.css"

# Whitespace tokens would be invisible (or collapse a line) if rendered as they are.
_VISIBLE = str.maketrans({"\n": "↵", "\r": "␍", "\t": "⇥"})

# `<`, `>` and `&` never occur in JSON outside strings, and inside strings their \u escapes decode to
# the same text: escaping them keeps a token such as "</script>" from ending the script element.
_SCRIPT_UNSAFE = {b"<": b"\\u003c", b">": b"\\u003e", b"&": b"\\u0026"}


def esc(value: object) -> str:
    """`value` as text that is safe both in element content and in quoted attributes."""
    return html.escape(str(value), quote=True)


def fmt_number(value: float | int | None) -> str:
    """A short human reading of a metric: integers as they are, floats to 3-4 significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, int):
        return str(value)
    if value != 0 and abs(value) < 1e-3:
        return f"{value:.2e}"
    return f"{value:.4g}"


def token_text(token: str) -> str:
    """A token as escaped HTML with its whitespace made visible (newline as ↵, a lone space as ␣)."""
    shown = token.translate(_VISIBLE)
    if shown and not shown.strip(" "):
        shown = "␣" * len(shown)
    return esc(shown) if shown else "∅"


def json_for_script(obj: object) -> str:
    """`obj` as JSON that can sit inside `<script type="application/json">` whatever its strings hold."""
    data = orjson.dumps(obj)
    for raw, escaped in _SCRIPT_UNSAFE.items():
        data = data.replace(raw, escaped)
    return data.decode()


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, cls: str = "") -> str:
    """A table from escaped header texts and cells that are already HTML."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    cls_attr = f' class="{esc(cls)}"' if cls else ""
    return f"<table{cls_attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def json_html(value: object) -> str:
    """Any JSON value as nested HTML: objects as key/value tables, lists of objects as tables.

    The run's report and summary are free-form dicts; rendering them generically means a new key
    written by the pipeline shows up without a dashboard change.
    """
    if isinstance(value, dict):
        if not value:
            return "<em>(empty)</em>"
        rows = "".join(f"<tr><th>{esc(k)}</th><td>{json_html(v)}</td></tr>" for k, v in value.items())
        return f'<table class="kv"><tbody>{rows}</tbody></table>'
    if isinstance(value, list):
        return _list_html(value)
    if isinstance(value, float | int) and not isinstance(value, bool):
        return f'<span class="num">{fmt_number(value)}</span>'
    if value is None:
        return "<em>null</em>"
    return esc(value)


def _list_html(items: list[object]) -> str:
    """Lists of scalars inline, lists of objects as one table (columns: the union of their keys)."""
    if not items:
        return "<em>(empty)</em>"
    if all(isinstance(i, dict) for i in items):
        dicts = [i for i in items if isinstance(i, dict)]
        columns = list(dict.fromkeys(k for d in dicts for k in d))
        cells = ([json_html(d[c]) if c in d else "" for c in columns] for d in dicts)
        return table([esc(c) for c in columns], cells, cls="data")
    if not any(isinstance(i, dict | list) for i in items):
        return ", ".join(json_html(i) for i in items)
    return "<ol>" + "".join(f"<li>{json_html(i)}</li>" for i in items) + "</ol>"


def page(title: str, body: str, *, root: str) -> str:
    """A complete HTML document; `root` is the relative path from the page to the run folder."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f'<link rel="stylesheet" href="{esc(root + STYLE_FILE)}">'
        f"<title>{esc(title)}</title></head>\n<body>\n{body}\n</body></html>\n"
    )
