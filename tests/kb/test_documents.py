"""Knowledge-base files become chunks along headings and Q/A pairs."""

from __future__ import annotations

from pathlib import Path

from clawdesk.kb.documents import discover, load_document, split_html, split_markdown

KB = Path(__file__).resolve().parents[2] / "clawdesk" / "data" / "kb"


def test_markdown_splits_at_second_level_headings():
    text = (
        "---\ntitle: Shipping\nlang: en\ntopic: shipping\n---\n# Shipping\nIntro.\n"
        "## Delivery times\n5-8 days.\n## Costs\nFree over 49 EUR.\n"
    )
    chunks = split_markdown("en/shipping.md", text)
    assert [c.section for c in chunks] == ["Shipping", "Delivery times", "Costs"]
    assert chunks[1].text == "5-8 days."
    assert {c.lang for c in chunks} == {"en"}


def test_html_sections_drop_scripts():
    html = (
        '<html lang="en"><title>Warranty</title><h2>Coverage</h2><p>Two years.</p>'
        "<script>evil()</script><h2>Claims</h2><p>Email us.</p></html>"
    )
    chunks = split_html("w.html", html)
    assert [(c.section, c.text) for c in chunks] == [
        ("Coverage", "Two years."),
        ("Claims", "Email us."),
    ]


def test_the_demo_kb_covers_both_languages_and_every_format():
    files = discover([KB])
    suffixes = {p.suffix for p, _ in files}
    assert {".md", ".html", ".jsonl"} <= suffixes
    docs = [load_document(p, d) for p, d in files]
    langs = {c.lang for d in docs for c in d.chunks}
    assert {"en", "zh"} <= langs
    assert sum(len(d.chunks) for d in docs) > 40


def test_changed_content_changes_the_hash(tmp_path):
    path = tmp_path / "a.md"
    path.write_text("# A\n## Q\nanswer one\n")
    first = load_document(path, "a.md").content_hash
    path.write_text("# A\n## Q\nanswer two\n")
    assert load_document(path, "a.md").content_hash != first
