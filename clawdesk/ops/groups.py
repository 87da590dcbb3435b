"""Each stage's consumer group as the broker sees it: members, assignments, and lag.

Lag is the broker's high watermark minus the group's committed offset, per topic and
partition of the stage's inputs: it counts records no worker has finished, including
those of a stage that has no worker at all (then nothing was committed, and every
record since the start of the log is lag).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.protocol.group import MemberAssignment

from agents import STAGES
from clawdesk.settings import AppSettings
from schemas import WorkerReport
from topics import ALL_TOPICS, TopicSpec, worker_spec

ADMIN_TIMEOUT_MS = 5000
REPORTS_TIMEOUT_S = 3.0
MAX_REPORTS = 5000  # the first read starts this far back: recent enough for every live worker


@dataclass(frozen=True)
class Member:
    """One worker in a group and the partitions it owns, by topic."""

    member_id: str
    client_id: str
    host: str
    assignment: dict[str, list[int]]


@dataclass(frozen=True)
class PartitionLag:
    """How far one group is behind on one partition of one of its input topics."""

    topic: str
    partition: int
    committed: int | None  # None: the group never committed on this partition
    high_watermark: int
    lag: int


@dataclass
class GroupView:
    """A stage's consumer group at one instant."""

    stage: str
    group: str
    state: str
    members: list[Member]
    partitions: list[PartitionLag]
    observed_at: float = field(default_factory=time.time)

    @property
    def lag(self) -> int:
        """Records not yet finished, over all the stage's input partitions."""
        return sum(p.lag for p in self.partitions)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form (for `clawdesk status --json`)."""
        return {**asdict(self), "lag": self.lag}


def input_specs(stage: str) -> list[TopicSpec]:
    """The declarations of the topics a stage consumes."""
    by_suffix = {spec.suffix: spec for spec in ALL_TOPICS}
    return [by_suffix[suffix] for suffix in STAGES[stage].inputs]


def decode_assignment(raw: bytes) -> dict[str, list[int]]:
    """The partitions a member owns, from its (consumer protocol) assignment bytes."""
    if not raw:
        return {}
    try:
        assignment = MemberAssignment.decode(raw)
    except Exception:  # a protocol we cannot read: show no partitions, not an error
        return {}
    return {topic: sorted(parts) for topic, parts in assignment.assignment}


def _with_reported(view: GroupView, reports: dict[str, WorkerReport], ttl_s: float) -> GroupView:
    """The view with each member's assignment from its own report where the broker
    returned none (Tansu does not; Apache Kafka does). Such a broker may also keep
    listing a member that stopped: one that said it was leaving, or whose last report
    is older than `ttl_s`, is left out; one that has not reported yet stays in."""
    members = []
    now = time.time()
    for m in view.members:
        report = reports.get(m.member_id)
        if not m.assignment and report is not None:
            if report.leaving or now - report.reported_at.timestamp() > ttl_s:
                continue
            m = Member(m.member_id, f"pid {report.pid}", report.host, report.assignment)
        members.append(m)
    view.members = members
    return view


class GroupReader:
    """Reads every stage's group from the broker (one admin client and one consumer
    without a group, for high watermarks), reused across observations."""

    def __init__(self, bootstrap_servers: str, settings: AppSettings) -> None:
        self.bootstrap = bootstrap_servers
        self.settings = settings
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._latest: dict[str, WorkerReport] = {}
        self._position: int | None = None

    async def __aenter__(self) -> GroupReader:
        self._admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap, request_timeout_ms=ADMIN_TIMEOUT_MS
        )
        await self._admin.start()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, group_id=None
        )
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        if self._admin is not None:
            await self._admin.close()

    async def observe(self, stages: list[str] | None = None) -> list[GroupView]:
        """Every stage's group (or those of `stages`), read now."""
        names = stages or list(STAGES)
        reports = await self.reports()
        views = [await self.group(name) for name in names]
        ttl = 3 * self.settings.worker_report_interval_s
        return [_with_reported(view, reports, ttl) for view in views]

    async def reports(self) -> dict[str, WorkerReport]:
        """The latest report of each worker, by member id (read on from where the last
        call stopped; the first call reads the most recent `MAX_REPORTS` only)."""
        assert self._consumer is not None
        tp = TopicPartition(worker_spec.name(self.settings), 0)
        try:
            ends = await asyncio.wait_for(self._consumer.end_offsets([tp]), REPORTS_TIMEOUT_S)
        except (TimeoutError, KafkaError):
            return self._latest  # no worker has reported yet: the topic does not exist
        end = ends.get(tp, 0)
        if self._position is None:
            self._consumer.assign([tp])
            self._position = max(end - MAX_REPORTS, 0)
            self._consumer.seek(tp, self._position)
        deadline = time.monotonic() + REPORTS_TIMEOUT_S
        while self._position < end and time.monotonic() < deadline:
            batch = await self._consumer.getmany(tp, timeout_ms=500)
            for record in batch.get(tp, []):
                self._position = record.offset + 1
                try:
                    report = WorkerReport.from_bytes(record.value or b"")
                except ValueError:
                    continue
                self._latest[report.member_id] = report
        return self._latest

    async def group(self, stage: str) -> GroupView:
        """One stage's group: members with their assignments, and lag per partition."""
        assert self._admin is not None and self._consumer is not None
        group = self.settings.worker_group(stage)
        state, members = await self._describe(group)
        # Partition counts are configuration (topics.TopicSpec), the same the topics
        # were created with: no metadata round trip per topic.
        partitions = [
            TopicPartition(spec.name(self.settings), p)
            for spec in input_specs(stage)
            for p in range(spec.partitions(self.settings))
        ]
        committed = await self._admin.list_consumer_group_offsets(group, partitions=partitions)
        ends = await self._consumer.end_offsets(partitions) if partitions else {}
        starts = await self._consumer.beginning_offsets(partitions) if partitions else {}
        lags = []
        for tp in partitions:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else None
            high = ends.get(tp, 0)
            base = done if done is not None else starts.get(tp, 0)
            lags.append(PartitionLag(tp.topic, tp.partition, done, high, max(high - base, 0)))
        return GroupView(stage, group, state, members, lags)

    async def _describe(self, group: str) -> tuple[str, list[Member]]:
        assert self._admin is not None
        [response] = await self._admin.describe_consumer_groups([group])
        described = response.groups[0]
        # DescribeGroups v0-v4: (error, group_id, state, protocol_type, protocol, members)
        state, raw_members = str(described[2]), described[5]
        members = [
            Member(
                member_id=str(m[0]),
                client_id=str(m[1]),
                host=str(m[2]),
                assignment=decode_assignment(bytes(m[-1] or b"")),
            )
            for m in raw_members
        ]
        return state or "Dead", members
