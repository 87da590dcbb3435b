"""Loading example files."""

from __future__ import annotations

from pathlib import Path

import pytest

from clawdesk.nlu.training.examples import load_examples


def test_jsonl(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_text(
        '{"text": "where is my card?", "intent": "card_arrival"}\n\n'
        '{"text": "我要退款", "intent": "refund"}\n',
        encoding="utf-8",
    )
    ex = load_examples(p)
    assert [(e.text, e.intent) for e in ex] == [
        ("where is my card?", "card_arrival"),
        ("我要退款", "refund"),
    ]


def test_yaml(tmp_path: Path) -> None:
    p = tmp_path / "x.yaml"
    p.write_text(
        "intents:\n  refund:\n    - I want my money back\n    - 我要退款\n"
        "  order_status:\n    - where is my order\n",
        encoding="utf-8",
    )
    ex = load_examples(p)
    assert [(e.text, e.intent) for e in ex] == [
        ("I want my money back", "refund"),
        ("我要退款", "refund"),
        ("where is my order", "order_status"),
    ]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("bad.jsonl", '{"text": "a"}\n'),
        ("bad2.jsonl", "not json\n"),
        ("blank.jsonl", '{"text": "  ", "intent": "x"}\n'),
        ("bad.yaml", "intents: [a, b]\n"),
        ("bad2.yaml", "intents:\n  x: hello\n"),
        ("bad3.yaml", "intents:\n  x:\n    - 3\n"),
        ("bad.txt", "x"),
    ],
)
def test_bad_files(tmp_path: Path, name: str, content: str) -> None:
    p = tmp_path / name
    p.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError):
        load_examples(p)


def test_error_names_the_line(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_text('{"text": "a", "intent": "b"}\n{"text": "c"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"x\.jsonl:2"):
        load_examples(p)
