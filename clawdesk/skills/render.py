"""Skill results as chat text, in English or Chinese, quoting only what the result holds.

The reply stage calls `render(result)`; None means no skill spoke (the knowledge base or
small talk answers). What is said about one skill comes from that skill: its manifest's
templates (`SkillManifest.templates`, `confirmation`) and, for results simple
substitution cannot say, its own `reply` function. This module holds the rest: the
texts every skill shares (asking for what is missing, failures, handoff, declined and
expired questions) and the formatting helpers. Status codes from the providers
(Shopify's `financial_status`, `shipment_status`, ...) are translated when known and
shown as they are otherwise: nothing is filled in that the provider did not say.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from clawdesk.skills.replies import Data, Rendered
from schemas import SkillResult, SkillStatus

if TYPE_CHECKING:
    from clawdesk.skills.base import Skill
    from clawdesk.skills.registry import SkillRegistry

__all__ = ["CODES", "TEXT", "Data", "Rendered", "localise", "needs_input_text", "render"]

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "handoff": "I'm connecting you with a human agent now; they will reply here shortly.",
        "handoff.negative_sentiment": "I'm sorry about this. ",
        "handoff.low_confidence": "I'm having trouble understanding. ",
        "handoff.skill_failure": "I couldn't complete that myself. ",
        "handoff.skill": "A person needs to handle this. ",
        "need_order": "Could you tell me your order number (for example #1001)?",
        "bad_order": "I couldn't read the order number {order}. It looks like #1001; "
        "could you send it again?",
        "need_email": "To {action} order {order}, please tell me the e-mail address the "
        "order was placed with.",
        "need_sign_in": "Please sign in (or write to us from the e-mail address you order "
        "with) so I can list your orders, or tell me an order number.",
        "no_order": "I couldn't find an order {order}. Please check the number "
        "(it looks like #1001) and send it again.",
        "no_parcel": "I couldn't find a parcel with tracking number {tracking_number}.",
        "confirm.other": "Shall I go ahead: {message} Reply yes to confirm, or no to cancel.",
        "declined.other": "OK, I won't do that.",
        "expired": "That request has expired, so I haven't done anything. Please ask again if "
        "you still want it.",
        "failed": "Sorry, I couldn't {action} just now. Please try again in a moment, or say "
        '"human" to talk to a person.',
        "unavailable": "Sorry, I can't {action} from here right now. Would you like a human "
        'agent to help? Just say "human".',
        "refused": 'Sorry, that isn\'t something I can do in this chat. Say "human" to talk '
        "to a person.",
        "in_progress": "That request is already being carried out. Please check again in a minute.",
        "action.other": "do that",
        # A shadow run (replay) holds side effects back; this text is never sent.
        "would_run": "[replay] I would {action} now ({arguments}).",
    },
    "zh": {
        "handoff": "正在为您转接人工客服,请稍候,客服人员会在这里回复您。",
        "handoff.negative_sentiment": "非常抱歉给您带来不便。",
        "handoff.low_confidence": "抱歉,我没能理解您的问题。",
        "handoff.skill_failure": "抱歉,这件事我没能办好。",
        "handoff.skill": "这件事需要人工处理。",
        "need_order": "请提供您的订单号(例如 #1001)。",
        "bad_order": "无法识别订单号 {order},格式应类似 #1001,请重新发送。",
        "need_email": "为订单 {order}{action},请告诉我下单时使用的电子邮箱。",
        "need_sign_in": "请先登录(或用下单邮箱给我们发邮件),我才能列出您的订单;"
        "也可以直接告诉我订单号。",
        "no_order": "没有找到订单 {order},请核对订单号(格式如 #1001)后再发一次。",
        "no_parcel": "没有找到运单号为 {tracking_number} 的包裹。",
        "confirm.other": "要继续吗:{message} 回复“确认”继续,回复“不”取消。",
        "declined.other": "好的,不做任何操作。",
        "expired": "该请求已过期,我没有做任何操作。如仍需要,请重新告诉我。",
        "failed": "抱歉,暂时无法{action},请稍后再试,或回复“转人工”联系人工客服。",
        "unavailable": "抱歉,目前无法在这里{action}。需要人工客服帮忙吗?回复“转人工”即可。",
        "refused": "抱歉,这项操作无法在聊天中办理。回复“转人工”可联系人工客服。",
        "in_progress": "该请求正在处理中,请稍后再查看。",
        "action.other": "办理此项",
        "would_run": "[回放] 此时将{action}({arguments})。",
    },
}

# Provider status codes, translated where we know them; any other code is shown as is.
CODES: dict[str, dict[str, str]] = {
    "en": {
        "paid": "paid",
        "pending": "pending",
        "authorized": "authorised",
        "partially_paid": "partially paid",
        "partially_refunded": "partially refunded",
        "refunded": "refunded",
        "voided": "voided",
        "fulfilled": "shipped",
        "partial": "partly shipped",
        "unfulfilled": "not shipped yet",
        "in_transit": "in transit",
        "out_for_delivery": "out for delivery",
        "attempted_delivery": "delivery attempted",
        "delivered": "delivered",
        "label_printed": "label printed",
        "pre-transit": "announced to the carrier",
        "transit": "in transit",
        "failure": "delivery problem",
        "succeeded": "succeeded",
    },
    "zh": {
        "paid": "已支付",
        "pending": "待支付",
        "authorized": "已授权",
        "partially_paid": "部分支付",
        "partially_refunded": "部分退款",
        "refunded": "已退款",
        "voided": "已作废",
        "fulfilled": "已发货",
        "partial": "部分发货",
        "unfulfilled": "未发货",
        "in_transit": "运输中",
        "out_for_delivery": "派送中",
        "attempted_delivery": "派送未成功",
        "delivered": "已签收",
        "label_printed": "已打单",
        "pre-transit": "已通知承运商",
        "transit": "运输中",
        "failure": "配送异常",
        "succeeded": "成功",
        "pending_refund": "处理中",
    },
}
STATUS_FIELDS = ("financial_status", "fulfillment_status", "shipment_status", "status")


def language_of(result: SkillResult) -> str:
    """The reply language: Chinese for Chinese-speaking customers, else English."""
    return "zh" if result.context.nlu.language == "zh" else "en"


def localise(data: Data, lang: str) -> Data:
    """The data with known status codes translated (unknown ones kept as they are)."""
    codes = CODES[lang]
    out = dict(data)
    for key in STATUS_FIELDS:
        value = out.get(key)
        if isinstance(value, str):
            out[key] = codes.get(value, value.replace("_", " "))
    return out


def installed_skills() -> SkillRegistry:
    """The skills whose templates the reply stage speaks with: the process's loaded
    registry (`registry.installed`)."""
    from clawdesk.skills.registry import installed

    return installed()


def render(result: SkillResult, skills: SkillRegistry | None = None) -> Rendered | None:
    """The text for this result, or None when no skill spoke. `skills` gives the
    skills' manifests and replies (default: the installed registry)."""
    lang = language_of(result)
    data = localise(result.data, lang)
    if result.skill == "handoff":
        return _handoff(TEXT[lang], data)
    if result.skill is None:
        return None
    registry = skills if skills is not None else installed_skills()
    skill = registry.find(result.skill)
    t = texts(skill, lang)
    if "dialogue" in data:
        return Rendered(_dialogue(t, data))
    if data.get("would_run"):
        return Rendered(_would_run(t, data))
    if skill is not None and skill.reply is not None:
        own = skill.reply(result.status, t, data, lang)
        if own is not None:
            return own
    render_status = BY_STATUS.get(result.status)
    return render_status(t, skill, data, result) if render_status else None


def texts(skill: Skill | None, lang: str) -> dict[str, str]:
    """The shared texts in `lang` overlaid with the skill's templates."""
    if skill is None:
        return TEXT[lang]
    return {**TEXT[lang], **skill.manifest.texts(lang)}


def fill(template: str | None, values: Data) -> str | None:
    """The template filled from `values`, or None if it names a value they lack."""
    if template is None:
        return None
    try:
        return template.format(**values)
    except (KeyError, IndexError):
        return None


def _handoff(t: dict[str, str], data: Data) -> Rendered:
    reason = str(data.get("reason", ""))
    known = {"negative_sentiment", "low_confidence", "skill_failure", "customer_request"}
    key = f"handoff.{reason}" if reason in known else "handoff.skill"
    return Rendered(t.get(key, "") + t["handoff"], handoff=True)


def _action(t: dict[str, str]) -> str:
    return t.get("action", t["action.other"])


def _would_run(t: dict[str, str], data: Data) -> str:
    args = data.get("arguments") or {}
    listed = ", ".join(f"{k}={v}" for k, v in sorted(args.items()))
    return t["would_run"].format(action=_action(t), arguments=listed)


def _dialogue(t: dict[str, str], data: Data) -> str:
    if data["dialogue"] == "expired":
        return t["expired"]
    return fill(t.get("declined"), data) or t["declined.other"]


def _ok(t: dict[str, str], skill: Skill | None, data: Data, result: SkillResult) -> Rendered | None:
    # A skill without its own reply says its "done" template, if it has one.
    text = fill(t.get("done"), data)
    return Rendered(text) if text is not None else None


def _confirm(t: dict[str, str], skill: Skill | None, data: Data, result: SkillResult) -> Rendered:
    question = skill.manifest.confirmation_text(language_of(result)) if skill else None
    arguments = data.get("arguments")
    args: Data = arguments if isinstance(arguments, dict) else {}
    items = ", ".join(data.get("items") or [])
    text = fill(question, {**args, **data, "items": items})
    return Rendered(text if text is not None else t["confirm.other"].format(message=result.message))


def needs_input_text(t: dict[str, str], data: Data) -> str:
    """The question for what a skill is missing (e-mail, sign-in, order number)."""
    missing = data.get("missing")
    if missing == "email":
        return t["need_email"].format(action=_action(t), order=data["order"])
    if missing == "sign_in":
        return t["need_sign_in"]
    if missing == "order" and data.get("order"):
        return t["bad_order"].format(**data)
    return t["need_order"]


def _needs_input(
    t: dict[str, str], skill: Skill | None, data: Data, result: SkillResult
) -> Rendered:
    # The question, not a passage: "where is my order?" wants to be asked which one.
    return Rendered(needs_input_text(t, data))


def _not_found(t: dict[str, str], skill: Skill | None, data: Data, result: SkillResult) -> Rendered:
    if "tracking_number" in data and "order" not in data:
        return Rendered(t["no_parcel"].format(**data))
    order = data.get("order") or data.get("reference")
    if order:
        return Rendered(t["no_order"].format(order=order))
    return Rendered(t["unavailable"].format(action=_action(t)))


def _failed(t: dict[str, str], skill: Skill | None, data: Data, result: SkillResult) -> Rendered:
    return Rendered(t["failed"].format(action=_action(t)), with_kb=True)


def _unavailable(
    t: dict[str, str], skill: Skill | None, data: Data, result: SkillResult
) -> Rendered:
    return Rendered(t["unavailable"].format(action=_action(t)), with_kb=True)


def _refused(t: dict[str, str], skill: Skill | None, data: Data, result: SkillResult) -> Rendered:
    return Rendered(t["refused"], with_kb=True)


def _in_progress(
    t: dict[str, str], skill: Skill | None, data: Data, result: SkillResult
) -> Rendered:
    return Rendered(t["in_progress"])


StatusRenderer = Callable[[dict[str, str], "Skill | None", Data, SkillResult], "Rendered | None"]
BY_STATUS: dict[SkillStatus, StatusRenderer] = {
    SkillStatus.OK: _ok,
    SkillStatus.NEEDS_CONFIRMATION: _confirm,
    SkillStatus.NEEDS_INPUT: _needs_input,
    SkillStatus.NOT_FOUND: _not_found,
    SkillStatus.FAILED: _failed,
    SkillStatus.UNAVAILABLE: _unavailable,
    SkillStatus.REFUSED: _refused,
    SkillStatus.IN_PROGRESS: _in_progress,
}
