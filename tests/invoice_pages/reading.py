"""Reading the gateway's pages in tests as a browser would: the text, the rows of a table, the links."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import unescape
from html.parser import HTMLParser


def _squash(text: str) -> str:
    return re.sub(r"[ \t\r\n]+", " ", text).strip(" ")


@dataclass
class Cell:
    tag: str
    attrs: dict[str, str]
    text: str = ""


@dataclass
class Row:
    attrs: dict[str, str]
    cells: list[Cell] = field(default_factory=list)
    links: list[str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    @property
    def texts(self) -> list[str]:
        return [c.text for c in self.cells]


class _Tables(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[Row] = []
        self.captions: list[str] = []
        self._row: Row | None = None
        self._cell: Cell | None = None
        self._caption: list[str] | None = None
        self._skip = 0  # inside <script>/<style>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag in ("script", "style"):
            self._skip += 1
        elif tag == "tr":
            self._row = Row(found)
            self.rows.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = Cell(tag, found)
            self._row.cells.append(self._cell)
        elif tag == "a" and self._row is not None and "href" in found:
            self._row.links.append(found["href"])
        elif tag == "caption":
            self._caption = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1
        elif tag in ("td", "th") and self._cell is not None:
            self._cell.text = _squash(self._cell.text)
            self._cell = None
        elif tag == "tr":
            self._row = None
        elif tag == "caption" and self._caption is not None:
            self.captions.append(_squash("".join(self._caption)))
            self._caption = None

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._cell is not None:
            self._cell.text += data
        if self._caption is not None:
            self._caption.append(data)


def table_rows(html: str) -> list[Row]:
    parser = _Tables()
    parser.feed(html)
    return parser.rows


def captions(html: str) -> list[str]:
    parser = _Tables()
    parser.feed(html)
    return parser.captions


def main_text(html: str) -> str:
    """The words of the page's <main>, tags removed, spaces squashed (no-break spaces kept)."""
    match = re.search(r"<main\b.*?</main>", html, re.S)
    body = match.group(0) if match else html
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", body)
    return re.sub(r"[ \t\r\n]+", " ", unescape(text)).strip()


def links(html: str) -> list[str]:
    return re.findall(r'<a\b[^>]*\bhref="([^"]*)"', html)
