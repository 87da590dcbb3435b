"""What the pipeline does with a channel's conventional events instead of reading them
as questions: a new follower, /start or /help is welcomed with the tenant's text (never
the NLU's "I'm not sure I understood"), an unfollow is recorded and not answered, and
files sent without a word are acknowledged. None of them counts as an unclear turn."""

from __future__ import annotations

from collections.abc import Mapping

from schemas import (
    Channel,
    ConversationSnapshot,
    InboundMessage,
    MessageKind,
    Reply,
    TurnOutcome,
)

WELCOME = {
    "en": "Hello! I'm the ClawShop assistant. Ask me about orders, shipping, returns, "
    'refunds, payment or your account — or write "agent" to talk to a person.',
    "zh": "您好!我是 ClawShop 智能客服,可以帮您查询订单、物流、退换货、退款、支付和账户问题;"
    "如需人工客服,请回复“人工”。",
}
WELCOMED = frozenset({MessageKind.FOLLOW, MessageKind.COMMAND})
WELCOME_INTENT = "welcome"


def language_of(msg: InboundMessage, memory: ConversationSnapshot) -> str:
    """The customer's language before they wrote a word: what the conversation spoke,
    else what their client says (Telegram's language_code), else the channel's public."""
    if memory.language in ("en", "zh"):
        return memory.language
    hint = msg.metadata.get("language_hint", "").lower()
    if hint:
        return "zh" if hint.startswith("zh") else "en"
    return "zh" if msg.channel is Channel.WECHAT else "en"


def is_welcomed(msg: InboundMessage) -> bool:
    """Whether the message is answered with the welcome rather than read."""
    return msg.kind in WELCOMED


def welcome_text(language: str, tenant_welcome: Mapping[str, str]) -> str:
    """The tenant's welcome in the language, else the built-in one."""
    return tenant_welcome.get(language) or WELCOME.get(language) or WELCOME["en"]


def direct_reply(msg: InboundMessage, text: str, language: str, intent: str) -> Reply:
    """A reply composed without the NLU (its id derives from the message, as the reply
    stage's do, so a redelivered message is answered once)."""
    return Reply(
        **msg.lineage(),
        reply_id=f"r-{msg.event_id}",
        in_reply_to=msg.event_id,
        customer_id=msg.customer_id,
        text=text,
        language=language,
        intent=intent,
        confidence=1.0,
        received_at=msg.received_at,
        metadata=msg.metadata,
        outcome=TurnOutcome.SMALL_TALK,
    )
