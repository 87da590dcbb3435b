"""The `clawdesk eval answers` command (registered under `eval` by `clawdesk.cli.commands`)."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from clawdesk.skills.answers_eval import AnswerReport


def eval_answers(
    questions: Annotated[
        Path, typer.Option(help="JSONL: question, lang, expected_doc, expected_section")
    ] = Path(""),
    kb_path: Annotated[list[Path] | None, typer.Option("--kb", help="KB files/folders")] = None,
) -> None:
    """Share of a question set (default: the demo KB's) the bot answers without a handoff,
    through the nlu, retrieve, skills and reply decisions, offline."""
    report, seconds, model = _run(questions, kb_path)
    _print(report, questions, seconds, model)


def _run(questions: Path, kb_path: list[Path] | None) -> tuple[AnswerReport, float, str]:
    from clawdesk.integrations import Integrations
    from clawdesk.integrations.demo_shop import DemoShop
    from clawdesk.kb.encoders import settings_encoder
    from clawdesk.kb.index import KnowledgeBase, open_qdrant
    from clawdesk.nlu import list_versions
    from clawdesk.nlu.tenant_models import TenantNlu
    from clawdesk.services import packaged_data
    from clawdesk.settings import app_settings
    from clawdesk.skills import MemoryAudit
    from clawdesk.skills.answers_eval import evaluate_answers, read_questions
    from clawdesk.skills.registry import load_registry
    from clawdesk.skills.worker_skills import AllowLists, SkillRuntime

    settings, tenant = app_settings(), app_settings().default_tenant
    path = questions if str(questions) not in ("", ".") else packaged_data("kb_questions.jsonl")
    with tempfile.TemporaryDirectory() as tmp:
        # The worker's stored intent model when there is one; else the demo model,
        # trained into the temporary folder as a first worker start would.
        stored = bool(list_versions(settings.model_root, tenant))
        root = settings.model_root if stored else Path(tmp) / "models"
        nlu = TenantNlu(root, settings.embedding_model, settings.nlu_min_confidence)
        version = nlu.ensure(
            tenant, packaged_data("intents", "demo.yaml"), settings.nlu_model_version or None
        )
        kb = KnowledgeBase(open_qdrant("", Path(tmp) / "qdrant"), settings_encoder(settings))
        kb.sync("eval", kb_path or [packaged_data("kb")])
        registry = load_registry()
        demo = DemoShop.from_file(packaged_data("shop", "orders.json"))
        runtime = SkillRuntime(
            registry,
            Integrations.from_settings(settings),
            MemoryAudit(),  # nothing is recorded: an evaluation is not a customer
            AllowLists.fixed(registry.names()),
            demo_shop=demo if settings.demo_shop else None,
            demo_tenant=tenant,
        )
        started = time.perf_counter()
        report = asyncio.run(
            evaluate_answers(
                read_questions(path),
                kb=kb,
                kb_tenant="eval",
                nlu=nlu,
                tenant=tenant,
                runtime=runtime,
                settings=settings,
            )
        )
        seconds = time.perf_counter() - started
        asyncio.run(runtime.aclose())
        kb.client.close()
    return report, seconds, f"{version} ({'stored' if stored else 'trained for this run'})"


def _print(report: AnswerReport, questions: Path, seconds: float, model: str) -> None:
    name = questions.name if str(questions) not in ("", ".") else "kb_questions.jsonl"
    table = Table(title=f"answers on {name} (intent model {model})")
    table.add_column("figure")
    table.add_column("value", justify="right")
    n = report.total
    table.add_row("questions", str(n))
    table.add_row(
        "answered without handoff",
        f"{report.answered}/{n} = {report.answered_share:.3f}",
    )
    for outcome in ("kb", "skill", "small_talk", "ask", "clarify", "handoff"):
        table.add_row(f"  {outcome}", str(report.outcomes[outcome]))
    table.add_row(
        "answerable questions answered", f"{report.answerable_answered}/{report.answerable}"
    )
    table.add_row("  with the expected passage", f"{report.expected_passage}/{report.answerable}")
    table.add_row(
        "unanswerable questions not answered",
        f"{report.unanswerable_not_answered}/{report.unanswerable}",
    )
    for lang, counts in sorted(report.by_lang.items()):
        total = sum(counts.values())
        answered = sum(counts[k] for k in ("kb", "skill", "small_talk"))
        table.add_row(f"answered ({lang}, n={total})", f"{answered / total:.3f}")
    if report.handoff_reasons:
        reasons = ", ".join(f"{r}={c}" for r, c in report.handoff_reasons.most_common())
        table.add_row("handoff reasons", reasons)
    table.add_row("seconds (decisions, after loading)", f"{seconds:.1f}")
    Console().print(table)
