"""A candidate spec names what differs from production, and nothing a replay sets itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from clawdesk.replay.candidate import BadCandidate, parse


def test_pairs_and_aliases_become_worker_settings(tmp_path: Path) -> None:
    candidate = parse(f"intent_model=v7, threshold=0.95, kb={tmp_path}, llm=off")
    assert candidate.overrides == {
        "nlu_model_version": "v7",
        "nlu_min_confidence": "0.95",
        "kb_dir": str(tmp_path.resolve()),
        "llm_base_url": "",
    }
    assert candidate.env()["CLAWDESK_NLU_MIN_CONFIDENCE"] == "0.95"
    assert not candidate.unchanged


def test_a_yaml_file_is_a_candidate(tmp_path: Path) -> None:
    spec = tmp_path / "candidate.yaml"
    spec.write_text("kb_min_score: 0.5\nkb_top_k: 5\n")
    assert parse(str(spec)).overrides == {"kb_min_score": "0.5", "kb_top_k": "5"}


@pytest.mark.parametrize("spec", ["", "production"])
def test_production_is_the_empty_candidate(spec: str) -> None:
    assert parse(spec).unchanged
    assert parse(spec).describe() == "production"


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("nlu_min_confidence", "not key=value"),
        ("no_such_setting=1", "unknown setting"),
        ("app_id=prod", "set by the replay itself"),
        ("topic_prefix=cs", "set by the replay itself"),
        ("kb=/no/such/folder", "no such folder"),
        ("kb_top_k=many", "kb_top_k"),
        ("llm=maybe", "on or off"),
    ],
)
def test_bad_candidates_are_refused_before_anything_runs(spec: str, says: str) -> None:
    with pytest.raises(BadCandidate, match=says):
        parse(spec)
