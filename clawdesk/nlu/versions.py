"""Versioned on-disk store of intent models, one directory tree per tenant.

Layout::

    <root>/<tenant>/v0001/        one saved IntentClassifier (see IntentClassifier.save)
    <root>/<tenant>/v0001/STORE.json  version, creation time and caller metadata
    <root>/<tenant>/v0002/
    ...

Versions are never overwritten.  A new version is written to a hidden temporary directory
and renamed into place: a rename is atomic on one filesystem, so a reader never sees a
half-written model, and two writers racing for the same number cannot both win (the loser
takes the next number).  "Latest" is the highest complete version.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the classifier pulls in torch; the store itself does not need it
    from clawdesk.nlu.model import IntentClassifier

__all__ = [
    "ModelNotFoundError",
    "latest_version",
    "list_versions",
    "load_model",
    "prune_plan",
    "read_manifest",
    "remove_versions",
    "save_model",
    "version_bytes",
]

_TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_VERSION_RE = re.compile(r"^v(\d{4,})$")
MANIFEST = "STORE.json"


class ModelNotFoundError(FileNotFoundError):
    """No (such) model version for a tenant."""


def _tenant_dir(root: str | Path, tenant: str) -> Path:
    # The tenant id comes from requests; never let it escape the store root.
    if not _TENANT_RE.match(tenant) or ".." in tenant:
        raise ValueError(f"invalid tenant id: {tenant!r}")
    return Path(root) / tenant


def _format_version(n: int) -> str:
    return f"v{n:04d}"


def list_versions(root: str | Path, tenant: str) -> list[str]:
    """Complete versions saved for ``tenant``, oldest first (``["v0001", "v0002", ...]``)."""
    tdir = _tenant_dir(root, tenant)
    if not tdir.is_dir():
        return []
    found: list[tuple[int, str]] = []
    for child in tdir.iterdir():
        m = _VERSION_RE.match(child.name)
        # The manifest is written last inside the temp dir, so its presence marks a
        # complete version even if someone copied a tree in by hand.
        if m and child.is_dir() and (child / MANIFEST).is_file():
            found.append((int(m.group(1)), child.name))
    return [name for _, name in sorted(found)]


def latest_version(root: str | Path, tenant: str) -> str | None:
    """The newest version of ``tenant``'s model, or None when there is none."""
    versions = list_versions(root, tenant)
    return versions[-1] if versions else None


def save_model(
    root: str | Path,
    tenant: str,
    clf: IntentClassifier,
    *,
    metadata: dict[str, Any] | None = None,
) -> str:
    """Save ``clf`` as the next version of ``tenant``'s model and return that version.

    ``metadata`` (JSON-serialisable, e.g. an evaluation report) is kept in the version's
    manifest.
    """
    tdir = _tenant_dir(root, tenant)
    tdir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=tdir))
    try:
        clf.save(tmp)
        for _attempt in range(1000):
            existing = [
                int(m.group(1)) for v in _all_version_dirs(tdir) if (m := _VERSION_RE.match(v))
            ]
            version = _format_version(max(existing, default=0) + 1)
            manifest = {
                "tenant": tenant,
                "version": version,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "metadata": metadata or {},
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
            try:
                # os.rename onto an existing directory fails (non-empty) or is refused:
                # another writer took this number, so try the next one.
                os.rename(tmp, tdir / version)
            except OSError:
                if (tdir / version).exists():
                    continue
                raise
            return version
        raise RuntimeError(f"could not allocate a model version for tenant {tenant!r}")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _all_version_dirs(tdir: Path) -> list[str]:
    # Includes incomplete-looking dirs too: a number is taken once its directory exists.
    return [p.name for p in tdir.iterdir() if _VERSION_RE.match(p.name)]


def _resolve(root: str | Path, tenant: str, version: str | None) -> Path:
    tdir = _tenant_dir(root, tenant)
    if version is None:
        version = latest_version(root, tenant)
        if version is None:
            raise ModelNotFoundError(f"no model saved for tenant {tenant!r}")
    if not _VERSION_RE.match(version):
        raise ValueError(f"invalid version: {version!r}")
    path = tdir / version
    if not (path / MANIFEST).is_file():
        raise ModelNotFoundError(f"tenant {tenant!r} has no model version {version}")
    return path


def read_manifest(root: str | Path, tenant: str, version: str | None = None) -> dict[str, Any]:
    """The manifest (version, created_at, metadata) of a saved version (None = latest)."""
    path = _resolve(root, tenant, version)
    data: dict[str, Any] = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    return data


def load_model(root: str | Path, tenant: str, version: str | None = None) -> IntentClassifier:
    """Load ``tenant``'s model ``version`` (None = the latest)."""
    from clawdesk.nlu.model import IntentClassifier

    return IntentClassifier.load(_resolve(root, tenant, version))


def version_bytes(root: str | Path, tenant: str, version: str) -> int:
    """Bytes on disk of one saved version (a fine-tuned encoder makes most of them)."""
    path = _resolve(root, tenant, version)
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def prune_plan(root: str | Path, tenant: str, *, keep: int, pinned: str | None = None) -> list[str]:
    """The versions to remove (with :func:`remove_versions`), oldest first: all but the
    newest ``keep``, never ``pinned`` (the version a deployment is told to load)."""
    if keep < 1:
        raise ValueError("keep at least one version")
    versions = list_versions(root, tenant)
    return [v for v in versions[: max(0, len(versions) - keep)] if v != pinned]


def remove_versions(root: str | Path, tenant: str, versions: Sequence[str]) -> list[str]:
    """Delete these versions of ``tenant``'s model; return those removed (one already
    gone is skipped).  The latest version is refused: a loader of "latest" must always
    find one.

    Each version is first renamed to a hidden name, so a loader sees it whole or not at
    all, never half deleted.  Numbers are not reused afterwards: the next save takes the
    number after the newest directory.
    """
    tdir = _tenant_dir(root, tenant)
    latest = latest_version(root, tenant)
    removed: list[str] = []
    for version in versions:
        if not _VERSION_RE.match(version):
            raise ValueError(f"invalid version: {version!r}")
        if version == latest:
            raise ValueError(f"refusing to remove {version}, the latest version of {tenant!r}")
        trash = Path(tempfile.mkdtemp(prefix=f".trash-{version}-", dir=tdir))
        try:
            os.rename(tdir / version, trash / version)
        except FileNotFoundError:
            continue  # removed meanwhile (another prune)
        finally:
            shutil.rmtree(trash, ignore_errors=True)
        removed.append(version)
    return removed
