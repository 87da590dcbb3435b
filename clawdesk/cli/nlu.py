"""`clawdesk nlu train|versions|prune`: per-tenant intent models (logic: `clawdesk.nlu`).

Also the `--multilingual` and `--finetune-set` options `clawdesk eval intents` shares.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from clawdesk.kb.packaged_models import PackagedModelError, resolve_model
from clawdesk.nlu import versions
from clawdesk.settings import app_settings

if TYPE_CHECKING:
    from clawdesk.nlu.config import ClassifierConfig

app = typer.Typer(help="Train and list per-tenant intent models.", no_args_is_help=True)
console = Console(stderr=True)


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
    # deferred: the multilingual encoder module imports numpy
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


@app.command("train")
def nlu_train(
    intents: Annotated[Path, typer.Argument(help="intents file: JSONL text/intent or YAML")],
    tenant: Annotated[str, typer.Option(help="tenant id")] = "",
    finetune: Annotated[bool, typer.Option(help="contrastively fine-tune the encoder")] = False,
    encoder: Annotated[
        str | None,
        typer.Option(
            help="sentence encoder: packaged:all-MiniLM-L6-v2, packaged:all-mpnet-base-v2 "
            "(more accurate, ~7x the compute) or a directory; default CLAWDESK_EMBEDDING_MODEL",
        ),
    ] = None,
    finetune_set: FinetuneSettings = None,
    multilingual: Multilingual = "auto",
) -> None:
    """Train a new version of the tenant's intent model and store it (the nlu stage loads
    the latest, or CLAWDESK_NLU_MODEL_VERSION)."""
    # deferred: the NLU imports torch and sentence-transformers
    from clawdesk.nlu import ClassifierConfig, fit_intent_model, load_examples
    from clawdesk.nlu.versions import save_model

    settings = app_settings()
    if not intents.is_file():
        console.print(f"[red]no such file: {intents}[/]")
        raise typer.Exit(2)
    if finetune_set and not finetune:
        console.print("[red]--finetune-set needs --finetune[/]")
        raise typer.Exit(2)
    chosen = settings.embedding_model if encoder is None else encoder
    config = ClassifierConfig(
        finetune=finetune, encoder=chosen, multilingual=multilingual_setting(multilingual, console)
    )
    apply_finetune_settings(config, finetune_set, console)
    examples = load_examples(intents)
    try:
        clf = fit_intent_model(examples, config)
    except PackagedModelError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    version = save_model(settings.model_root, tenant or settings.default_tenant, clf)
    console.print(
        f"trained on {len(examples)} examples: version {version}; multilingual: "
        f"{clf.config.multilingual or 'none'}"
    )


@app.command("versions")
def nlu_versions(tenant: Annotated[str, typer.Option(help="tenant id")] = "") -> None:
    """List the stored versions of the tenant's intent model."""
    settings = app_settings()
    for version in versions.list_versions(settings.model_root, tenant or settings.default_tenant):
        console.print(version)


@app.command("prune")
def nlu_prune(
    keep: Annotated[int, typer.Option(min=1, help="newest versions to keep")] = 3,
    tenant: Annotated[str, typer.Option(help="tenant id")] = "",
    dry_run: Annotated[bool, typer.Option(help="only list what would be removed")] = False,
) -> None:
    """Remove old versions of the tenant's intent model, keeping the newest --keep and
    the one CLAWDESK_NLU_MODEL_VERSION pins (a fine-tuned version holds its own encoder,
    ~90 MB with MiniLM, ~420 MB with mpnet)."""
    settings = app_settings()
    tenant = tenant or settings.default_tenant
    pinned = settings.nlu_model_version or None
    try:
        doomed = versions.prune_plan(settings.model_root, tenant, keep=keep, pinned=pinned)
    except ValueError as exc:  # a bad tenant id
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    try:
        sizes = {v: versions.version_bytes(settings.model_root, tenant, v) for v in doomed}
        if not dry_run:
            doomed = versions.remove_versions(settings.model_root, tenant, doomed)
    except OSError as exc:  # e.g. a prune running at the same time, or no permission
        console.print(f"[red]could not prune {tenant!r}: {exc}[/]")
        raise typer.Exit(1) from exc
    verb = "would remove" if dry_run else "removed"
    for version in doomed:
        console.print(f"{verb} {version} ({sizes[version] / 1e6:.1f} MB)")
    console.print(
        f"{verb} {len(doomed)} version(s) of {tenant!r}, "
        f"{sum(sizes[v] for v in doomed) / 1e6:.1f} MB"
        + (f"; {pinned} is pinned and kept" if pinned else "")
    )
