"""The report page: one self-contained HTML file (styles inline, figures embedded as PNG data
URIs). Numbers in tables carry their exact value in ``data-value``; the text shows 4 decimals
(4 significant digits below 0.001)."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

GENERATOR = "mlxbert report"

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       max-width: 1100px; padding: 16px 24px; color: #1d2330; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 28px;
     border-bottom: 1px solid #dde1e8; padding-bottom: 4px; }
.sub { color: #5a6475; margin-top: 0; } .headline { font-size: 20px; font-weight: 600; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 13px; }
th, td { border: 1px solid #dde1e8; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f5f8; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.text { max-width: 560px; } tr.best td { background: #fff8d6; }
img { max-width: 100%; border: 1px solid #eef0f4; } .note { color: #5a6475; font-size: 13px; }
.ok { color: #17803d; } .bad { color: #b42318; font-weight: 600; }
nav a { margin-right: 12px; }
"""


@dataclass
class Section:
    """One part of the page: a title, HTML blocks, and figures (name -> caption)."""

    key: str
    title: str
    blocks: list[str] = field(default_factory=list)
    figures: list[tuple[str, Any, str]] = field(default_factory=list)


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def number(value: Any, digits: int = 4) -> str:
    """A table cell for a number (its exact value in ``data-value``)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None:
        return '<td class="num"></td>'
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"<td>{esc(value)}</td>"
    if isinstance(value, int):
        return f'<td class="num" data-value="{value}">{value}</td>'
    if math.isnan(value):
        shown = "nan"
    elif value != 0 and not 1e-3 <= abs(value) < 1e7:
        shown = f"{value:.{digits}g}"  # learning rates, tiny losses: significant digits
    else:
        shown = f"{value:.{digits}f}"
    return f'<td class="num" data-value="{value!r}">{shown}</td>'


def cell(value: Any) -> str:
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return number(value)
    return f'<td class="text">{esc("" if value is None else value)}</td>'


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    name: str,
    highlight: Sequence[bool] | None = None,
) -> str:
    """An HTML table; ``name`` goes to ``data-table`` (tests and readers find it by name)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        marked = ' class="best"' if highlight is not None and highlight[i] else ""
        body.append(f"<tr{marked}>" + "".join(cell(v) for v in row) + "</tr>")
    return f'<table data-table="{esc(name)}"><tr>{head}</tr>{"".join(body)}</table>'


def paragraph(text: str, css: str = "") -> str:
    return f'<p class="{css}">{esc(text)}</p>' if css else f"<p>{esc(text)}</p>"


def image(name: str, png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure data-figure="{esc(name)}"><img alt="{esc(caption)}" '
        f'src="data:image/png;base64,{data}"><figcaption class="note">{esc(caption)}'
        "</figcaption></figure>"
    )


def page(title: str, subtitle: str, headline: str, sections: list[Section], pngs: dict) -> str:
    """The whole document."""
    nav = " ".join(f'<a href="#{esc(s.key)}">{esc(s.title)}</a>' for s in sections)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta name="generator" content="{GENERATOR}">',
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="sub">{esc(subtitle)}</p>',
        f'<p class="headline">{esc(headline)}</p>',
        f"<nav>{nav}</nav>",
    ]
    for section in sections:
        parts.append(f'<section id="{esc(section.key)}"><h2>{esc(section.title)}</h2>')
        for name, _figure, caption in section.figures:
            parts.append(image(name, pngs[name], caption))
        parts.extend(section.blocks)
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


__all__ = ["GENERATOR", "Section", "cell", "esc", "number", "page", "paragraph", "table"]
