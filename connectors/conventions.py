"""What the pipeline does with a channel's conventional events instead of reading them
as questions: a new follower, /start or /help is welcomed with the tenant's text (never
the NLU's "I'm not sure I understood"), an unfollow is recorded and not answered, files
sent without a word are acknowledged, and a refused file is explained. None of them
counts as an unclear turn."""

from __future__ import annotations

from collections.abc import Mapping

from clawdesk.tenants import TenantProfile
from schemas import (
    Channel,
    ConversationSnapshot,
    InboundMessage,
    MessageKind,
    Reply,
    TurnOutcome,
)

WELCOMED = frozenset({MessageKind.FOLLOW, MessageKind.COMMAND})
RECEIVED_INTENT = "file_received"
REFUSED_INTENT = "file_refused"

_NOUNS = {
    "en": {"image": "photo", "voice": "voice note", "audio": "recording", "video": "video"},
    "zh": {"image": "图片", "voice": "语音", "audio": "录音", "video": "视频"},
}
RECEIVED = {
    "en": "Thanks, I've received your {noun}. It is attached to this conversation, so our "
    "team can see it too. What is it about? If something arrived damaged, tell me the "
    "order number and what happened.",
    "zh": "谢谢,已收到您的{noun},已附在本次对话中,我们的客服人员也能看到。请问是关于什么问题?"
    "如果商品到货时有损坏,请告诉我订单号和具体情况。",
}
REFUSED = {
    "en": {
        "too_large": "Sorry, I couldn't take your file: it is larger than {limit}. Could "
        "you send a smaller one, or a photo instead?",
        "type_not_allowed": "Sorry, I can't take this kind of file. Please send a photo "
        "(JPEG, PNG, GIF, WebP), a PDF, a voice note or an MP4 video.",
        "gone": "Sorry, I couldn't download your file. Could you send it again?",
    },
    "zh": {
        "too_large": "抱歉,文件超过 {limit},无法接收。请发送小一些的文件,或改为发送图片。",
        "type_not_allowed": "抱歉,无法接收此类文件。"
        "请发送图片(JPEG、PNG、GIF、WebP)、PDF、语音或 MP4 视频。",
        "gone": "抱歉,无法下载您的文件,请重新发送。",
    },
}
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


def welcome_text(language: str, tenant_welcome: Mapping[str, str], profile: TenantProfile) -> str:
    """The tenant's welcome in the language (as stored with the tenant), else its
    profile's (configuration: names and welcome, neutral for an unknown tenant)."""
    return tenant_welcome.get(language) or profile.welcome_in(language)


def received_text(language: str, kinds: list[str]) -> str:
    """The acknowledgement of files sent without a word."""
    nouns = _NOUNS.get(language, _NOUNS["en"])
    default = "文件" if language == "zh" else "file"
    first = kinds[0] if kinds else "file"
    return RECEIVED.get(language, RECEIVED["en"]).format(noun=nouns.get(first, default))


def refused_text(language: str, reason: str, limit_bytes: int) -> str:
    """Why a file was not taken, in the customer's language."""
    texts = REFUSED.get(language, REFUSED["en"])
    limit = f"{limit_bytes / (1024 * 1024):g} MB"
    return texts.get(reason, texts["gone"]).format(limit=limit)


def direct_reply(
    msg: InboundMessage, text: str, language: str, intent: str, *, suffix: str = ""
) -> Reply:
    """A reply composed without the NLU (its id derives from the message, as the reply
    stage's do, so a redelivered message is answered once)."""
    return Reply(
        **msg.lineage(),
        reply_id=f"r-{msg.event_id}{suffix}",
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
