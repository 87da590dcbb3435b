"""``clawdesk eval intents``: train, calibrate on valid, evaluate on test, print a table.

Wire into the main CLI with ``main_app.add_typer(nlu_cli.app, name="eval")``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from clawdesk.kb.packaged_models import MINILM, PackagedModelError, resolve_model

if TYPE_CHECKING:
    from rich.console import Console

    from clawdesk.nlu.config import ClassifierConfig

__all__ = [
    "FinetuneSettings",
    "Multilingual",
    "app",
    "apply_finetune_settings",
    "multilingual_setting",
]

# `--multilingual`, shared by `eval intents` and `nlu train`.
Multilingual = Annotated[
    str,
    typer.Option(
        help="a frozen multilingual encoder beside the sentence encoder: auto "
        "(multilingual-e5-small when over 5 % of the training texts are not English), "
        "off, multilingual-e5-small, packaged:NAME or a sentence-transformers directory",
    ),
]


def multilingual_setting(value: str, console: Console) -> str:
    """The :attr:`ClassifierConfig.multilingual` value of ``--multilingual``; one that
    names no model on this machine exits with status 2 before any data is read."""
    from clawdesk.nlu.multilingual import AUTO, MULTILINGUAL_E5

    if value == "off":
        return ""
    if value in (AUTO, MULTILINGUAL_E5):
        return value
    try:
        path = resolve_model(value)
    except PackagedModelError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    if not Path(path).is_dir():  # nothing is downloaded: a model name must be on disk
        console.print(
            f"[red]--multilingual {value!r}: not auto, off, {MULTILINGUAL_E5}, a packaged "
            "model or a model directory[/]"
        )
        raise typer.Exit(2)
    return value


# `--finetune-set KEY=VALUE`, shared by `eval intents` and `nlu train`.
FinetuneSettings = Annotated[
    list[str] | None,
    typer.Option(
        "--finetune-set",
        metavar="KEY=VALUE",
        help="a fine-tuning setting, repeatable: lr, epochs, temperature, per_class, "
        "classes_per_batch, freeze_word_embeddings, max_steps, ... (see FinetuneConfig)",
    ),
]


def apply_finetune_settings(
    config: ClassifierConfig, settings: list[str] | None, console: Console
) -> None:
    """Apply ``--finetune-set`` values to ``config``; a bad one exits with status 2."""
    try:
        config.finetune_config = config.finetune_config.with_settings(settings or [])
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc


app = typer.Typer(help="Evaluate the intent classifier on labelled files.", no_args_is_help=True)


@app.callback()
def _main() -> None:
    """Evaluation commands."""
    # A callback keeps `intents` a sub-command even while it is the only one.


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
    from rich.console import Console

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


if __name__ == "__main__":  # pragma: no cover
    app()
