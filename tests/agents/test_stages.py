"""The stage catalog: names, modules, inputs, and the consumer group of each stage."""

from __future__ import annotations

from typing import Any

import pytest

from agents import STAGE_NAMES, STAGES, modules_of, parse_stages
from clawdesk.runtime.stack import parse_workers
from clawdesk.settings import AppSettings
from topics import ALL_TOPICS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", list(STAGE_NAMES)),
        ("all", list(STAGE_NAMES)),
        ("nlu", ["nlu"]),
        ("nlu, retrieve,nlu", ["nlu", "retrieve"]),
    ],
)
def test_stages_parse_from_a_comma_list(text: str, expected: list[str]) -> None:
    assert parse_stages(text) == expected


def test_an_unknown_stage_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown stage 'nlp'.*ingest, nlu"):
        parse_stages("nlp")


def test_each_stage_has_its_own_group_named_after_it() -> None:
    settings = AppSettings(_env_file=None, app_id="shadow-7")  # type: ignore[call-arg]
    assert settings.worker_group("nlu") == "shadow-7-nlu"
    assert settings.worker_group(None) == "shadow-7"
    assert len({settings.worker_group(s) for s in STAGE_NAMES}) == len(STAGE_NAMES)


def test_a_stage_worker_imports_only_its_own_agents() -> None:
    assert modules_of("nlu") == [
        "agents.startup",
        "agents.dead_letters",
        "agents.shutdown",
        "agents.nlu",
    ]
    assert set(modules_of(None)) >= {m for s in STAGES.values() for m in s.modules}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2", {"": 2}),
        ("nlu=2", {**dict.fromkeys(STAGE_NAMES, 1), "nlu": 2}),
        ("nlu=3,dispatch=0", {s: 3 if s == "nlu" else 1 for s in STAGE_NAMES if s != "dispatch"}),
    ],
)
def test_up_reads_a_worker_layout(text: str, expected: dict[str, int]) -> None:
    assert parse_workers(text) == expected


@pytest.mark.parametrize("text", ["nlu", "nlu=x", "nlp=2"])
def test_up_refuses_a_bad_layout(text: str) -> None:
    with pytest.raises(ValueError):
        parse_workers(text)


def test_the_catalog_names_the_topics_each_stage_consumes(test_app: Any) -> None:
    """The inputs `clawdesk status` and the exporter measure lag on are the topics the
    stage's agents really subscribe to, and each table's stage reads every topic its
    table is changed from (so the table stays co-partitioned with them)."""
    test_app.discover()
    settings = AppSettings()
    suffix = {spec.name(settings): spec.suffix for spec in ALL_TOPICS}
    for stage in STAGES.values():
        consumed = {
            suffix[topic]
            for agent in test_app.agents.values()
            if agent.fun.__module__ in stage.modules
            for topic in agent.channel.topics
        }
        assert consumed == set(stage.inputs), stage.name


def test_up_gives_each_stage_worker_its_stage_dir_and_port(tmp_path: Any) -> None:
    from clawdesk.runtime.stack import stage_workers

    settings = AppSettings(  # type: ignore[call-arg]
        _env_file=None, data_dir=tmp_path, metrics_port=9464, supervisor_metrics_port=9466
    )
    children = stage_workers(settings, {"nlu": 2, "dispatch": 1}, dict)
    envs = {c.name: c.env() for c in children}
    assert list(envs) == ["nlu-1", "nlu-2", "dispatch-1"]
    assert [e["CLAWDESK_STAGE"] for e in envs.values()] == ["nlu", "nlu", "dispatch"]
    # distinct data dirs (RocksDB and Qdrant lock theirs) and metrics ports, past the
    # supervisor's own
    assert len({e["CLAWDESK_DATA_DIR"] for e in envs.values()}) == 3
    assert [e["CLAWDESK_METRICS_PORT"] for e in envs.values()] == ["9464", "9465", "9467"]
