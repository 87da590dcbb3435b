"""Reading knowledge-base files into chunks that respect headings and Q/A pairs."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import yaml

SUPPORTED = {".md", ".markdown", ".html", ".htm", ".txt", ".jsonl", ".csv"}


@dataclass(frozen=True)
class Chunk:
    """One retrievable passage: a section of a document or one Q/A pair."""

    doc_id: str
    title: str
    section: str
    text: str
    lang: str
    topic: str

    @property
    def embed_text(self) -> str:
        """What gets embedded: the headings give the passage its context."""
        return f"{self.title} — {self.section}\n{self.text}"


@dataclass(frozen=True)
class Document:
    """A source file's chunks and a hash of its content (to detect changes)."""

    doc_id: str
    content_hash: str
    chunks: tuple[Chunk, ...]


_FRONT = re.compile(r"\A---\n(.*?)\n---\n", re.S)


def _front_matter(text: str) -> tuple[dict[str, str], str]:
    match = _FRONT.match(text)
    if not match:
        return {}, text
    meta = yaml.safe_load(match.group(1)) or {}
    return {str(k): str(v) for k, v in meta.items()}, text[match.end() :]


def _guess_lang(text: str) -> str:
    cjk = sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff")
    return "zh" if cjk > len(text) * 0.1 else "en"


def split_markdown(doc_id: str, text: str) -> list[Chunk]:
    """One chunk per `##` section (or the whole body when there is none)."""
    meta, body = _front_matter(text)
    title_match = re.search(r"^#\s+(.+)$", body, re.M)
    title = meta.get("title") or (title_match.group(1).strip() if title_match else doc_id)
    lang = meta.get("lang") or _guess_lang(body)
    topic = meta.get("topic", "")
    parts = re.split(r"^##\s+(.+)$", body, flags=re.M)
    chunks = []
    intro = re.sub(r"^#\s+.+$", "", parts[0], flags=re.M).strip()
    if intro:
        chunks.append(Chunk(doc_id, title, title, intro, lang, topic))
    for heading, section in zip(parts[1::2], parts[2::2], strict=True):
        if section.strip():
            chunks.append(Chunk(doc_id, title, heading.strip(), section.strip(), lang, topic))
    return chunks


class _HtmlSections(HTMLParser):
    """Collects (heading, text) pairs, splitting at h1/h2/h3; drops script and style."""

    def __init__(self) -> None:
        super().__init__()
        self.title = ""
        self.sections: list[list[str]] = [["", ""]]
        self._in: str | None = None
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in ("h1", "h2", "h3", "title"):
            self._in = tag
            if tag != "title" and tag != "h1":
                self.sections.append(["", ""])

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1
        elif tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._in in ("title", "h1"):
            self.title = self.title or data.strip()
        elif self._in:
            self.sections[-1][0] += data
        else:
            self.sections[-1][1] += data


def split_html(doc_id: str, text: str) -> list[Chunk]:
    """One chunk per h2/h3 section of an HTML page."""
    parser = _HtmlSections()
    parser.feed(text)
    title = parser.title or doc_id
    lang_match = re.search(r'<html[^>]*lang="([a-zA-Z-]+)"', text)
    chunks = []
    for heading, body in parser.sections:
        clean = re.sub(r"\s+", " ", body).strip()
        if clean:
            lang = lang_match.group(1)[:2] if lang_match else _guess_lang(clean)
            chunks.append(Chunk(doc_id, title, heading.strip() or title, clean, lang, ""))
    return chunks


def split_text(doc_id: str, text: str) -> list[Chunk]:
    """Plain text: blank-line separated paragraphs, merged up to ~800 characters."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    chunks: list[Chunk] = []
    buf = ""
    for para in paragraphs:
        if buf and len(buf) + len(para) > 800:
            chunks.append(
                Chunk(doc_id, doc_id, f"part {len(chunks) + 1}", buf, _guess_lang(buf), "")
            )
            buf = ""
        buf = f"{buf}\n\n{para}".strip()
    if buf:
        chunks.append(Chunk(doc_id, doc_id, f"part {len(chunks) + 1}", buf, _guess_lang(buf), ""))
    return chunks


def split_faq(doc_id: str, rows: list[dict[str, str]]) -> list[Chunk]:
    """One chunk per question–answer pair."""
    chunks = []
    for row in rows:
        question, answer = row.get("question", "").strip(), row.get("answer", "").strip()
        if question and answer:
            lang = row.get("lang") or _guess_lang(question)
            chunks.append(Chunk(doc_id, "FAQ", question, answer, lang, row.get("topic", "")))
    return chunks


def load_document(path: Path, doc_id: str) -> Document:
    """Read one file into a Document; raises ValueError for unsupported types."""
    raw = path.read_bytes()
    text = raw.decode("utf-8")
    suffix = path.suffix.lower()
    if suffix in (".md", ".markdown"):
        chunks = split_markdown(doc_id, text)
    elif suffix in (".html", ".htm"):
        chunks = split_html(doc_id, text)
    elif suffix == ".txt":
        chunks = split_text(doc_id, text)
    elif suffix == ".jsonl":
        chunks = split_faq(doc_id, [json.loads(line) for line in text.splitlines() if line.strip()])
    elif suffix == ".csv":
        chunks = split_faq(doc_id, list(csv.DictReader(text.splitlines())))
    else:
        raise ValueError(f"unsupported knowledge-base file type: {path.name}")
    return Document(doc_id, hashlib.sha256(raw).hexdigest()[:16], tuple(chunks))


def discover(paths: list[Path]) -> list[tuple[Path, str]]:
    """Every supported file under `paths`, with a stable doc id (path relative to its root)."""
    found = []
    for root in paths:
        if root.is_file():
            found.append((root, root.name))
            continue
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix.lower() in SUPPORTED:
                found.append((path, path.relative_to(root).as_posix()))
    return found
