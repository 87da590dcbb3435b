"""A worker's skill runtime and who a skill acts for: shared by the skills stage and, in
LLM mode, the reply stage (whose model calls skills as tools), without either importing
the other's agents."""

from __future__ import annotations

from clawdesk.services import current
from clawdesk.skills.base import SkillContext
from clawdesk.skills.worker_skills import SkillRuntime
from schemas import Channel, InboundMessage, RetrievalContext

APP_EMAIL = "app.email"  # in-app metadata: the signed-in user's e-mail, from the app backend


def skill_runtime() -> SkillRuntime:
    """The worker's skill runtime: the installed services' (built with them)."""
    return current().skill_runtime()


def use_runtime(runtime: SkillRuntime) -> None:
    """Run skills with `runtime` in the installed services (tests, embedding apps)."""
    current().skills = runtime


def verified_email(msg: InboundMessage) -> str | None:
    """An e-mail the channel vouches for: the sender of an e-mail, or the address an
    in-app backend (authenticated by its API key) gives for its signed-in user. Never
    an address typed in the chat."""
    if msg.channel is Channel.EMAIL and "@" in msg.customer_id:
        return msg.customer_id
    if msg.channel is Channel.INAPP:
        return msg.metadata.get(APP_EMAIL) or None
    return None


def skill_context(context: RetrievalContext) -> SkillContext:
    """Who the skill acts for; the runtime adds the providers and sources."""
    msg = context.nlu.accepted.message
    return SkillContext(
        tenant_id=context.tenant_id,
        conversation_id=context.conversation_id,
        customer_id=msg.customer_id,
        customer_email=verified_email(msg),
        customer_name=msg.metadata.get("customer_name"),
        language=context.nlu.language or "en",
    )
