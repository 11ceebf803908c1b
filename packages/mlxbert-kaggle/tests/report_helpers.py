"""Reading a written report back: its tables (by name, exact values from ``data-value``),
its embedded figures, and PNG checks."""

from __future__ import annotations

import base64
import struct
from html.parser import HTMLParser
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[tuple[str, str | None]]]] = {}
        self.figures: dict[str, bytes] = {}
        self.generator = None
        self._table = None
        self._row = None
        self._cell = None
        self._figure = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "meta" and a.get("name") == "generator":
            self.generator = a.get("content")
        elif tag == "table":
            self._table = self.tables.setdefault(a.get("data-table"), [])
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = ["", a.get("data-value")]
        elif tag == "figure":
            self._figure = a.get("data-figure")
        elif tag == "img" and self._figure is not None:
            src = a["src"]
            assert src.startswith("data:image/png;base64,")
            self.figures[self._figure] = base64.b64decode(src.split(",", 1)[1])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append((self._cell[0], self._cell[1]))
            self._cell = None
        elif tag == "table":
            self._table = None
        elif tag == "figure":
            self._figure = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[0] += data


class Report:
    """A parsed report page."""

    def __init__(self, path: Path):
        page = _Page()
        page.feed(path.read_text(encoding="utf-8"))
        self.tables, self.figures, self.generator = page.tables, page.figures, page.generator

    def rows(self, name: str) -> list[dict[str, object]]:
        """A table's rows as dicts (header -> exact number, or text)."""
        header, *body = self.tables[name]
        names = [text for text, _ in header]
        out = []
        for row in body:
            out.append(
                {
                    n: (float(value) if value is not None else text)
                    for n, (text, value) in zip(names, row)
                }
            )
        return out


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG, after checking its signature and header chunk."""
    assert data[:8] == PNG_SIGNATURE, "not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", data[16:24])
