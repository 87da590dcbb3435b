"""`clawdesk eval retrieval|intents|answers|conversations`: figures on labelled sets.

The measuring is in the subpackages: `clawdesk.kb.retrieval_eval`,
`clawdesk.nlu.training.evaluate`, `clawdesk.skills.answers_eval` and
`clawdesk.conversations` (scenarios, runner, scoring; the pipeline in `target`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from clawdesk.cli.nlu import (
    FinetuneSettings,
    Multilingual,
    apply_finetune_settings,
    multilingual_setting,
)
from clawdesk.kb.packaged_models import MINILM, PackagedModelError, resolve_model
from clawdesk.settings import app_settings

if TYPE_CHECKING:
    from clawdesk.skills.answers_eval import AnswerReport

app = typer.Typer(help="Evaluate the NLU and retrieval.", no_args_is_help=True)


@app.command("retrieval")
def eval_retrieval(
    questions: Annotated[
        Path, typer.Option(help="JSONL: question, lang, expected_doc, expected_section")
    ] = Path(""),
    kb_path: Annotated[list[Path] | None, typer.Option("--kb", help="KB files/folders")] = None,
) -> None:
    """Recall@1/@5 and MRR of hybrid retrieval on a question set (default: the demo KB's)."""
    # deferred: the KB imports Qdrant and sentence-transformers
    from clawdesk.kb.answerability import is_relevant
    from clawdesk.kb.encoders import settings_encoder
    from clawdesk.kb.index import KnowledgeBase, open_qdrant
    from clawdesk.kb.retrieval_eval import evaluate_retrieval
    from clawdesk.services import packaged_data

    settings = app_settings()
    questions = (
        questions if str(questions) not in ("", ".") else packaged_data("kb_questions.jsonl")
    )
    with tempfile.TemporaryDirectory() as tmp:
        kb = KnowledgeBase(open_qdrant("", Path(tmp)), settings_encoder(settings))
        kb.sync("eval", kb_path or [packaged_data("kb")])
        report = evaluate_retrieval(
            kb, "eval", questions, lambda hit: is_relevant(hit, settings.kb_min_score)
        )
        kb.client.close()
    table = Table(title=f"retrieval on {questions.name}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("answerable questions", str(report.answerable))
    table.add_row("recall@1", f"{report.recall_at_1:.3f}")
    table.add_row("recall@5", f"{report.recall_at_5:.3f}")
    table.add_row("MRR", f"{report.mrr:.3f}")
    for lang, (n, top1) in sorted(report.by_lang.items()):
        table.add_row(f"recall@1 ({lang}, n={n})", f"{top1 / n:.3f}")
    table.add_row(
        "answerable judged answerable", f"{report.answered_correctly}/{report.answerable}"
    )
    table.add_row("unanswerable refused", f"{report.refused_correctly}/{report.unanswerable}")
    Console().print(table)


@app.command("intents")
def intents(
    train: Annotated[
        Path, typer.Option(help="training examples (.jsonl or .yaml)", exists=True, dir_okay=False)
    ],
    test: Annotated[
        Path,
        typer.Option(help="test examples, read only after training", exists=True, dir_okay=False),
    ],
    valid: Annotated[
        Path | None,
        typer.Option(
            help="validation examples: the oos threshold is chosen here (with the "
            "training file's own oos rows, each scored by a head that never saw it)",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    features: Annotated[str, typer.Option(help="combined | embedding | char")] = "combined",
    encoder: Annotated[
        str,
        typer.Option(
            help="sentence encoder: packaged:all-MiniLM-L6-v2 (default, fast), "
            "packaged:all-mpnet-base-v2 (more accurate, ~7x the compute) or a local "
            "sentence-transformers directory",
        ),
    ] = MINILM,
    multilingual: Multilingual = "auto",
    finetune: Annotated[bool, typer.Option(help="contrastively fine-tune the encoder")] = True,
    epochs: Annotated[
        float | None, typer.Option(help="fine-tuning epochs (default: by data size)")
    ] = None,
    finetune_set: FinetuneSettings = None,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    in_scope_keep: Annotated[
        float,
        typer.Option(
            min=0.5,
            max=1.0,
            help="when --valid has no oos rows: share of in-scope messages the threshold "
            "keeps (1.0 = closed set, never reject)",
        ),
    ] = 0.95,
    target_oos_recall: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="when --valid has oos rows: pick the threshold with the best in-scope "
            "accuracy that reaches this oos recall on valid (default: balance the two)",
        ),
    ] = None,
    min_oos_recall: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="when --valid has oos rows: pick the threshold with the best in-scope "
            "accuracy whose valid oos recall reaches this value with 95 % confidence "
            "(one-sided Wilson bound); overrides --target-oos-recall",
        ),
    ] = None,
    knn_fusion: Annotated[
        bool,
        typer.Option(
            help="decide oos on the head's probability fused with the cosine to the "
            "nearest in-scope training example (with embeddings); off: probability alone",
        ),
    ] = True,
    ablation: Annotated[bool, typer.Option(help="also measure each feature block alone")] = False,
    save: Annotated[Path | None, typer.Option(help="keep the trained classifier here")] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="write the figures as JSON")
    ] = None,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
) -> None:
    """Train on --train, choose the oos threshold on --valid, report figures on --test."""
    # deferred: the NLU imports torch and sentence-transformers
    from clawdesk.nlu.config import ClassifierConfig
    from clawdesk.nlu.training.evaluate import report_table, run_ablation, run_intent_eval

    if features not in ("combined", "embedding", "char"):
        raise typer.BadParameter("features must be combined, embedding or char")
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
    config = ClassifierConfig(
        features=features,  # type: ignore[arg-type]
        encoder=encoder,
        finetune=finetune,
        seed=seed,
        in_scope_keep=in_scope_keep,
        target_oos_recall=target_oos_recall,
        min_oos_recall=min_oos_recall,
        knn_fusion=knn_fusion,
    )
    config.finetune_config = dataclasses.replace(config.finetune_config, seed=seed)
    if epochs is not None:
        config.finetune_config.epochs = epochs
    console = Console()
    config.multilingual = multilingual_setting(multilingual, console)
    if finetune_set and not (finetune and features != "char"):
        console.print("[red]--finetune-set needs fine-tuning (--finetune, embedding features)[/]")
        raise typer.Exit(2)
    apply_finetune_settings(config, finetune_set, console)
    try:
        resolve_model(encoder)  # a bad name fails here, not after reading the data
    except PackagedModelError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    if ablation:
        reports = run_ablation(train, test, valid, config=config, progress=progress)
    else:
        report = run_intent_eval(
            train, test, valid, config=config, progress=progress, save_dir=save
        )
        tuned = "+ft" if finetune and features != "char" else ""
        reports = {f"{features}{tuned}": report}
    # "closed" = best in-scope intent right, threshold ignored (BANKING77-style figure);
    # "in-scope" counts rejected in-scope rows as wrong (CLINC150 convention).
    first = next(iter(reports.values()))
    console.print(report_table(reports, title=f"Intents: {first.name}"))
    for label, r in reports.items():
        extra = r.extra
        console.print(
            f"[dim]{label}: {r.n_test} test rows ({r.n_oos} oos); train {r.train_seconds} s "
            f"(fine-tuning {extra.get('finetune_seconds', 0)} s); threshold from "
            f"{extra.get('threshold_from', '?')} on {extra.get('oos_score', 'msp')}; "
            f"n-gram weights char "
            f"{extra.get('char_weight') or 0:g} word {extra.get('word_weight') or 0:g}; "
            f"multilingual encoder {extra.get('multilingual') or 'none'}[/dim]"
        )
        if extra.get("ece") is not None:
            console.print(
                f"[dim]{label}: confidence calibration (in-scope rows): ECE "
                f"{extra['ece']:.4f} at temperature {extra['temperature']:.3g} "
                f"({r.extra.get('temperature_from', 'not fitted')}); untempered "
                f"{extra['ece_untempered']:.4f}[/dim]"
            )
        for lang, f in (extra.get("by_language") or {}).items():
            console.print(
                f"[dim]{label}: {lang}: {f['n']} rows, in-scope "
                + (
                    "—"
                    if f["in_scope_accuracy"] is None
                    else f"{f['in_scope_accuracy'] * 100:.2f} %"
                )
                + ", oos recall "
                + ("—" if f["oos_recall"] is None else f"{f['oos_recall']:.3f} ({f['n_oos']} rows)")
                + "[/dim]"
            )
        at = extra.get("valid_at_threshold")
        if at and at.get("oos_recall") is not None:
            console.print(
                f"[dim]{label}: on valid at this threshold: in-scope "
                f"{at['in_scope_accuracy'] * 100:.2f} %, oos recall {at['oos_recall']:.3f} "
                f"({at['n_oos']} oos rows)"
                + (
                    f"; held-out train oos recall {at['heldout_train_oos_recall']:.3f} "
                    f"({at['n_heldout_train_oos']} rows)"
                    if "n_heldout_train_oos" in at
                    else ""
                )
                + "[/dim]"
            )
    if json_out is not None:
        json_out.write_text(
            json.dumps({k: v.to_dict() for k, v in reports.items()}, indent=2, ensure_ascii=False),
            encoding="utf-8",
        )


@app.command("answers")
def eval_answers(
    questions: Annotated[
        Path, typer.Option(help="JSONL: question, lang, expected_doc, expected_section")
    ] = Path(""),
    kb_path: Annotated[list[Path] | None, typer.Option("--kb", help="KB files/folders")] = None,
) -> None:
    """Share of a question set (default: the demo KB's) the bot answers without a handoff,
    through the nlu, retrieve, skills and reply decisions, offline."""
    report, seconds, model = _answers_run(questions, kb_path)
    _answers_print(report, questions, seconds, model)


def _answers_run(questions: Path, kb_path: list[Path] | None) -> tuple[AnswerReport, float, str]:
    # deferred: the skills runtime, the NLU and the KB import the model stack
    from clawdesk.integrations import Integrations
    from clawdesk.integrations.demo_shop import DemoShop
    from clawdesk.kb.encoders import settings_encoder
    from clawdesk.kb.index import KnowledgeBase, open_qdrant
    from clawdesk.nlu import list_versions
    from clawdesk.nlu.tenant_models import TenantNlu
    from clawdesk.services import packaged_data
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


def _answers_print(report: AnswerReport, questions: Path, seconds: float, model: str) -> None:
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


@app.command("conversations")
def conversations(
    files: Annotated[list[Path], typer.Argument(help="scenario files (YAML)", exists=True)],
    k: Annotated[int, typer.Option("--k", min=1, help="runs per scenario (pass^k)")] = 1,
    json_out: Annotated[Path | None, typer.Option("--json", help="write figures here")] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="write JUnit XML here")] = None,
    fail_under: Annotated[
        float | None, typer.Option(help="exit 1 if the scenario pass rate (%) is lower")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="conversations at once")] = 8,
    turn_timeout: Annotated[float, typer.Option(help="seconds a turn waits for its reply")] = 30.0,
    quiet: Annotated[float, typer.Option(help="seconds `no_reply: true` waits")] = 5.0,
    show_failures: Annotated[
        bool, typer.Option("--failures/--no-failures", help="print each failing turn")
    ] = True,
    retrain: Annotated[
        bool, typer.Option(help="private system: train the NLU model afresh, not reuse it")
    ] = False,
    sandbox: Annotated[
        bool,
        typer.Option(
            help="private system: serve the sandbox providers (Shopify, Stripe, Zendesk, "
            "DHL, HubSpot with the demo orders) so refunds, cancellations and tickets run"
        ),
    ] = True,
    echo_llm: Annotated[
        bool,
        typer.Option(
            help="private system: LLM mode against the echo endpoint "
            "(clawdesk.llm.echo_server: no model, it quotes the first passage it is given)"
        ),
    ] = False,
) -> None:
    """Play conversation scenarios through the real pipeline and score every turn:
    scenarios and turns passed, pass^k, per language and tag, each failing turn."""
    # deferred: the pipeline target pulls in the LLM client and the sandbox servers
    from clawdesk.conversations.report import print_summary, write_json, write_junit
    from clawdesk.conversations.runner import RunOptions
    from clawdesk.conversations.scenarios import ScenarioError, load_files
    from clawdesk.conversations.scoring import summarize
    from clawdesk.conversations.target import evaluate, target

    console = Console(stderr=True)
    try:
        cases = load_files(files)
    except ScenarioError as err:
        for problem in err.problems:
            console.print(problem, markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from err
    options = RunOptions(k=k, concurrency=concurrency, turn_timeout_s=turn_timeout, quiet_s=quiet)
    with target(console, retrain, sandbox=sandbox, echo_llm=echo_llm) as where:
        summary = summarize(evaluate(where, cases, options, console), k)
    print_summary(Console(), summary, failures=show_failures)
    if json_out:
        write_json(summary, json_out)
    if junit:
        write_junit(summary, junit)
    if fail_under is not None and summary.overall.runs.rate * 100 < fail_under:
        raise typer.Exit(1)
