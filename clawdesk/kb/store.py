"""The knowledge base in Qdrant: one collection per tenant, synced from source files."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from qdrant_client import QdrantClient, models

from clawdesk.embeddings import Embedder
from clawdesk.kb.documents import Document, discover, load_document
from schemas import KbHit

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


def collection_name(tenant_id: str) -> str:
    """The Qdrant collection of a tenant's knowledge base."""
    return f"kb_{tenant_id}"


def open_qdrant(url: str, path: Path, api_key: str | None = None) -> QdrantClient:
    """A Qdrant server client when `url` is set, else local mode on disk at `path`."""
    if url:
        return QdrantClient(url=url, api_key=api_key, timeout=10)
    path.mkdir(parents=True, exist_ok=True)
    try:
        return QdrantClient(path=str(path))
    except RuntimeError as exc:  # local mode takes an exclusive lock on the folder
        raise RuntimeError(
            f"the Qdrant data at {path} is in use by another process (a running worker?); "
            "stop it, or point QDRANT_URL at a Qdrant server"
        ) from exc


@dataclass
class SyncReport:
    """What a sync changed."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    chunks: int = 0


class KnowledgeBase:
    """Dense search over per-tenant collections; `sync` makes them match source files."""

    def __init__(self, client: QdrantClient, embedder: Embedder) -> None:
        self.client = client
        self.embedder = embedder
        self._versions: dict[str, str] = {}

    def _ensure_collection(self, tenant_id: str) -> str:
        name = collection_name(tenant_id)
        if not self.client.collection_exists(name):
            self.client.create_collection(
                name,
                vectors_config=models.VectorParams(
                    size=self.embedder.dimension, distance=models.Distance.COSINE
                ),
            )
        return name

    def _indexed_docs(self, name: str) -> dict[str, str]:
        """doc_id -> content hash of what the collection holds now."""
        docs: dict[str, str] = {}
        offset = None
        while True:
            points, offset = self.client.scroll(
                name, limit=512, offset=offset, with_payload=["doc_id", "doc_hash"]
            )
            for p in points:
                payload = p.payload or {}
                docs[str(payload["doc_id"])] = str(payload["doc_hash"])
            if offset is None:
                return docs

    def _delete_doc(self, name: str, doc_id: str) -> None:
        self.client.delete(
            name,
            points_selector=models.Filter(
                must=[models.FieldCondition(key="doc_id", match=models.MatchValue(value=doc_id))]
            ),
        )

    def _upsert_doc(self, name: str, tenant_id: str, doc: Document) -> None:
        vectors = self.embedder.encode([c.embed_text for c in doc.chunks])
        points = [
            models.PointStruct(
                id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant_id}/{doc.doc_id}#{i}")),
                vector=vec.tolist(),
                payload={
                    "tenant": tenant_id,
                    "doc_id": doc.doc_id,
                    "doc_hash": doc.content_hash,
                    "title": c.title,
                    "section": c.section,
                    "text": c.text,
                    "lang": c.lang,
                    "topic": c.topic,
                },
            )
            for i, (c, vec) in enumerate(zip(doc.chunks, vectors, strict=True))
        ]
        if points:
            self.client.upsert(name, points=points)

    def sync(
        self, tenant_id: str, paths: list[Path], progress: Progress | None = None
    ) -> SyncReport:
        """Make the tenant's collection hold exactly the documents under `paths`."""
        name = self._ensure_collection(tenant_id)
        indexed = self._indexed_docs(name)
        files = discover(paths)
        report = SyncReport()
        seen: set[str] = set()
        for i, (path, doc_id) in enumerate(files, 1):
            doc = load_document(path, doc_id)
            seen.add(doc_id)
            report.chunks += len(doc.chunks)
            previous = indexed.get(doc_id)
            if previous == doc.content_hash:
                report.unchanged += 1
            else:
                if previous is not None:
                    self._delete_doc(name, doc_id)  # drop sections that no longer exist
                self._upsert_doc(name, tenant_id, doc)
                if previous is None:
                    report.added += 1
                else:
                    report.updated += 1
            if progress:
                progress(i, len(files))
        for doc_id in indexed.keys() - seen:
            self._delete_doc(name, doc_id)
            report.removed += 1
        self._versions.pop(tenant_id, None)
        return report

    def version(self, tenant_id: str) -> str:
        """A short hash of the documents indexed for the tenant (changes on any re-ingest)."""
        if tenant_id not in self._versions:
            name = collection_name(tenant_id)
            docs = self._indexed_docs(name) if self.client.collection_exists(name) else {}
            digest = hashlib.sha256(repr(sorted(docs.items())).encode()).hexdigest()[:12]
            self._versions[tenant_id] = f"kb-{digest}"
        return self._versions[tenant_id]

    def search(
        self, tenant_id: str, vector: list[float], k: int, lang: str | None = None
    ) -> list[KbHit]:
        """Top-k passages by cosine similarity; raises if the tenant has no knowledge base."""
        conditions = []
        if lang:
            conditions.append(
                models.FieldCondition(key="lang", match=models.MatchValue(value=lang))
            )
        response = self.client.query_points(
            collection_name(tenant_id),
            query=vector,
            limit=k,
            query_filter=models.Filter(must=conditions) if conditions else None,  # type: ignore[arg-type]
            with_payload=True,
        )
        return [
            KbHit(
                doc_id=str(p.payload["doc_id"]),
                title=str(p.payload["title"]),
                section=str(p.payload["section"]),
                text=str(p.payload["text"]),
                score=float(p.score),
            )
            for p in response.points
            if p.payload
        ]
