"""One Faust agent per pipeline stage, and which modules make up each stage.

A stage runs in its own consumer group (`AppSettings.worker_group`), so ops can add
workers to the stage that lags. A table belongs to one stage and is co-partitioned with
that stage's input topics; other stages change it only by events on those topics.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    """A stage: its agent modules, the topics they consume (suffixes, as in `topics`),
    and the models its services must load."""

    name: str
    modules: tuple[str, ...]
    inputs: tuple[str, ...]
    loads_nlu: bool = False
    loads_kb: bool = False


# Modules every worker runs, whatever its stages: service start-up and lag metrics,
# the flush of the dead letters it spooled while Postgres was down, and the close of
# its services when it stops.
SHARED_MODULES = ("agents.startup", "agents.dead_letters", "agents.shutdown")

STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        # ingest owns conversation memory: it also applies the agents' control events and
        # records the bot's replies and the handoffs (memory_events), all keyed by
        # conversation like its inbound topic.
        Stage(
            "ingest",
            ("agents.ingest", "agents.memory_events", "agents.control"),
            ("inbound", "replies", "handoffs", "control"),
        ),
        Stage("nlu", ("agents.nlu",), ("accepted",), loads_nlu=True),
        Stage("retrieve", ("agents.retrieve",), ("nlu",), loads_kb=True),
        # skills owns the dialogue state (slots, pending confirmation, counters).
        Stage("skills", ("agents.skills",), ("context", "replies")),
        Stage("reply", ("agents.reply",), ("skill-results",)),
        Stage("dispatch", ("agents.dispatch",), ("replies",)),
        Stage("handoff", ("agents.handoff",), ("handoffs",)),
    )
}
STAGE_NAMES: tuple[str, ...] = tuple(STAGES)


def stage(name: str) -> Stage:
    """The stage called `name` (ValueError naming the known ones otherwise)."""
    try:
        return STAGES[name]
    except KeyError:
        raise ValueError(f"unknown stage {name!r}; stages: {', '.join(STAGE_NAMES)}") from None


def parse_stages(text: str) -> list[str]:
    """Stage names from a comma list (`nlu,retrieve`); empty or `all` means every stage."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names or names == ["all"]:
        return list(STAGE_NAMES)
    for name in names:
        stage(name)
    return list(dict.fromkeys(names))


def modules_of(name: str | None) -> list[str]:
    """The modules a worker of one stage imports (None: every stage, in one app)."""
    stages = [stage(name)] if name else list(STAGES.values())
    return [*SHARED_MODULES, *(m for s in stages for m in s.modules)]
