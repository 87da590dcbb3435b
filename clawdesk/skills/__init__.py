"""Skills: the actions clawdesk can take for a customer, as plugins.

A skill is a `Skill` (a `SkillManifest` + `async run(ctx, args)`), found through the
`clawdesk.skills` entry-point group (`registry`), and run only through
`runner.run_skill`, which applies the tenant's allow-list, the argument schema, the
confirmation gate for side effects, idempotency, a timeout, retries and the audit log.
"""

from clawdesk.skills.audit import AuditEntry, AuditLog, MemoryAudit, PostgresAudit
from clawdesk.skills.base import OutcomeStatus, Skill, SkillContext, SkillOutcome
from clawdesk.skills.manifest import SkillManifest, load_skill_md
from clawdesk.skills.registry import (
    ENTRY_POINT_GROUP,
    InvalidArguments,
    SkillRegistry,
    UnknownSkill,
    load_registry,
    register,
)
from clawdesk.skills.runner import RunPolicy, idempotency_key, run_skill

__all__ = [
    "ENTRY_POINT_GROUP",
    "AuditEntry",
    "AuditLog",
    "InvalidArguments",
    "MemoryAudit",
    "OutcomeStatus",
    "PostgresAudit",
    "RunPolicy",
    "Skill",
    "SkillContext",
    "SkillManifest",
    "SkillOutcome",
    "SkillRegistry",
    "UnknownSkill",
    "idempotency_key",
    "load_registry",
    "load_skill_md",
    "register",
    "run_skill",
]
