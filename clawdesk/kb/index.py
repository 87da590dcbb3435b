"""The knowledge base in Qdrant: one collection per tenant, synced from source files."""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from clawdesk.kb.documents import Document, discover, load_document
from clawdesk.kb.embedding_cache import EmbeddingCache, embedding_key
from clawdesk.kb.encoders import Encoder, Member, encode_passages, members
from clawdesk.kb.keywords import KeywordIndex
from schemas import KbHit

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


LAYOUT = "v3"  # bump when the collection's vectors change; old collections are ignored
RRF_K = 60  # the usual reciprocal-rank-fusion constant
CANDIDATES = 20
MIN_KNOWN_SHARE = 0.7  # below this the embedding model cannot read the query


def vector_name(kind: str, member: Member) -> str:
    """A named vector of the collection: `question`/`passage`, suffixed per encoder."""
    return f"{kind}_{member.key}" if member.key else kind


def collection_name(tenant_id: str, encoder_version: str) -> str:
    """The Qdrant collection of a tenant's knowledge base for one encoder (vectors of
    different models must never be compared)."""
    model = re.sub(r"[^0-9A-Za-z]+", "-", encoder_version).strip("-").lower()
    return f"kb_{LAYOUT}_{model}_{tenant_id}"


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

    def __init__(
        self, client: QdrantClient, embedder: Encoder, cache: EmbeddingCache | None = None
    ) -> None:
        self.client = client
        self.embedder = embedder
        self.cache = cache
        self._versions: dict[str, str] = {}
        self._keywords: dict[str, tuple[KeywordIndex, list[tuple[str, dict[str, Any]]]]] = {}
        self._lock = threading.Lock()

    def collection(self, tenant_id: str) -> str:
        """The tenant's collection for this knowledge base's encoder."""
        return collection_name(tenant_id, self.embedder.version)

    def _ensure_collection(self, tenant_id: str) -> str:
        name = self.collection(tenant_id)
        if not self.client.collection_exists(name):
            # Two vectors per chunk and encoder: the question it answers (its heading)
            # and the whole passage. Short customer questions match headings far better
            # than bodies.
            config = {
                vector_name(kind, m): models.VectorParams(
                    size=m.encoder.dimension, distance=models.Distance.COSINE
                )
                for m in members(self.embedder)
                for kind in ("question", "passage")
            }
            self.client.create_collection(name, vectors_config=config)
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
        questions, passages = self._embed(doc)
        points = [
            models.PointStruct(
                id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant_id}/{doc.doc_id}#{i}")),
                vector={
                    vector_name(kind, m): vec[m.start : m.end].tolist()
                    for m in members(self.embedder)
                    for kind, vec in (("question", q), ("passage", p))
                },
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
            for i, (c, q, p) in enumerate(zip(doc.chunks, questions, passages, strict=True))
        ]
        if points:
            self.client.upsert(name, points=points)

    def _embed(self, doc: Document) -> tuple[Any, Any]:
        """The document's question and passage vectors, from the cache when it has them."""
        sections = [c.section for c in doc.chunks]
        texts = [c.embed_text for c in doc.chunks]
        key = embedding_key(self.embedder.version, sections, texts)
        if self.cache and (cached := self.cache.get(key)) is not None:
            return cached
        # Headings are questions: embedded on the query side, like a customer's.
        questions = self.embedder.encode(sections)
        passages = encode_passages(self.embedder, texts)
        if self.cache:
            self.cache.put(key, np.asarray(questions), np.asarray(passages))
        return questions, passages

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
        self._keywords.pop(tenant_id, None)
        return report

    def version(self, tenant_id: str) -> str:
        """A short hash of the documents indexed for the tenant (changes on any re-ingest)."""
        if tenant_id not in self._versions:
            name = self.collection(tenant_id)
            docs = self._indexed_docs(name) if self.client.collection_exists(name) else {}
            digest = hashlib.sha256(repr(sorted(docs.items())).encode()).hexdigest()[:12]
            self._versions[tenant_id] = f"kb-{digest}"
        return self._versions[tenant_id]

    def _keyword_index(
        self, tenant_id: str
    ) -> tuple[KeywordIndex, list[tuple[str, dict[str, Any]]]]:
        """The tenant's keyword index over every chunk, built on first use after a sync."""
        with self._lock:
            if tenant_id not in self._keywords:
                points: list[tuple[str, dict[str, Any]]] = []
                offset = None
                while True:
                    batch, offset = self.client.scroll(
                        self.collection(tenant_id), limit=512, offset=offset, with_payload=True
                    )
                    points.extend((str(p.id), dict(p.payload or {})) for p in batch)
                    if offset is None:
                        break
                texts = [
                    f"{p['title']} {p['section']} {p['section']} {p['text']}" for _, p in points
                ]
                self._keywords[tenant_id] = (KeywordIndex(texts), points)
            return self._keywords[tenant_id]

    def search(
        self,
        tenant_id: str,
        query: str,
        vector: list[float],
        k: int,
        filters: Mapping[str, str] | None = None,
        language: str | None = None,
    ) -> list[KbHit]:
        """Hybrid top-k: dense (question and passage vectors of each encoder that can read
        the query) and keyword ranks fused by reciprocal rank fusion. `vector` is the
        KB encoder's query embedding. `filters` match payload fields exactly (`lang`,
        `topic`, or any field a document's front matter sets). With `language`, passages
        in that language rank before the others (a Chinese question is answered from the
        Chinese documents when they have an answer at all). Raises if the tenant has no KB.

        A hit's `score` is the first encoder's best cosine (0 when it cannot read the
        query): the scale `kb_min_score` is set on."""
        fused: dict[str, float] = {}
        dense: dict[str, float] = {}
        second: dict[str, float] = {}  # the multilingual encoder's, which reads Chinese
        payloads: dict[str, dict[str, Any]] = {}
        for member, points in self._dense_ranks(tenant_id, query, vector, filters):
            for rank, p in enumerate(points):
                pid = str(p.id)
                fused[pid] = fused.get(pid, 0.0) + 1.0 / (RRF_K + rank + 1)
                if not member.key:
                    dense[pid] = max(dense.get(pid, 0.0), float(p.score))
                else:
                    second[pid] = max(second.get(pid, 0.0), float(p.score))
                payloads[pid] = dict(p.payload or {})
        coverage: dict[str, float] = {}
        for rank, (pid, payload, cov) in enumerate(self._keyword_ranks(tenant_id, query, filters)):
            fused[pid] = fused.get(pid, 0.0) + 1.0 / (RRF_K + rank + 1)
            coverage[pid] = cov
            payloads.setdefault(pid, payload)

        best = sorted(
            fused,
            key=lambda pid: (
                language is not None and payloads[pid].get("lang") != language,
                -fused[pid],
            ),
        )[:k]
        return [
            KbHit(
                doc_id=str(payloads[pid]["doc_id"]),
                title=str(payloads[pid]["title"]),
                section=str(payloads[pid]["section"]),
                text=str(payloads[pid]["text"]),
                score=round(dense.get(pid, 0.0), 4),
                multilingual=round(second.get(pid, 0.0), 4),
                keyword=round(coverage.get(pid, 0.0), 4),
                fused=round(fused[pid], 5),
            )
            for pid in best
        ]

    def _dense_ranks(
        self,
        tenant_id: str,
        query: str,
        vector: list[float],
        filters: Mapping[str, str] | None,
    ) -> list[tuple[Member, list[models.ScoredPoint]]]:
        """One ranked candidate list per encoder that can read the query and vector kind."""
        flt = (
            models.Filter(
                must=[
                    models.FieldCondition(key=key, match=models.MatchValue(value=value))
                    for key, value in filters.items()
                ]
            )
            if filters
            else None
        )
        ranks = []
        for member in members(self.embedder):
            # An English model reads Chinese as a row of [UNK]s: its ranking is noise.
            if member.encoder.known_share(query) < MIN_KNOWN_SHARE:
                continue
            for kind in ("question", "passage"):
                response = self.client.query_points(
                    self.collection(tenant_id),
                    query=vector[member.start : member.end],
                    using=vector_name(kind, member),
                    limit=CANDIDATES,
                    query_filter=flt,
                    with_payload=True,
                )
                ranks.append((member, response.points))
        return ranks

    def _keyword_ranks(
        self, tenant_id: str, query: str, filters: Mapping[str, str] | None
    ) -> list[tuple[str, dict[str, Any], float]]:
        """The keyword index's candidates, best first: (point id, payload, coverage)."""
        index, points = self._keyword_index(tenant_id)
        wanted = dict(filters or {})
        ranked = [
            (points[pos][0], points[pos][1], cov)
            for pos, _score, cov in index.search(query, CANDIDATES * 2)
            if all(points[pos][1].get(key) == value for key, value in wanted.items())
        ]
        return ranked[:CANDIDATES]
