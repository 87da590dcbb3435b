"""Skill results as chat text, in English or Chinese, quoting only what the result holds.

The reply stage calls `render(result)`; None means no skill spoke (the knowledge base or
small talk answers). Status codes from the providers (Shopify's `financial_status`,
`shipment_status`, ...) are translated when known and shown as they are otherwise:
nothing is filled in that the provider did not say.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from schemas import SkillResult, SkillStatus

Data = dict[str, Any]

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
        "order": "Order {order}: payment {financial_status}, fulfilment {fulfillment_status}"
        ", total {total}.",
        "order.tracking": " Shipped with {carrier}, tracking number {tracking_number}"
        " (status: {shipment_status}).",
        "order.cancelled": " This order was cancelled.",
        "orders": "Your recent orders: {orders}.",
        "orders.more": " (the {shown} newest of {count})",
        "orders.item": "{order} ({total}, {fulfillment_status})",
        "orders.none": "I couldn't find any orders for your e-mail address.",
        "track.unshipped": "Order {order} hasn't shipped yet (fulfilment: {fulfillment_status}).",
        "track.shop": "Order {order} was shipped with {carrier}, tracking number "
        "{tracking_number} (status: {status}).",
        "track.carrier": "Parcel {tracking_number} ({carrier}): {summary}.",
        "track.where": "{description} in {location}",
        "track.eta": " Expected delivery: {estimated_delivery}.",
        "confirm.refund": "Shall I refund {amount} {currency} for order {order} to the original "
        "payment method? Reply yes to confirm, or no to cancel.",
        "confirm.cancel_order": "Shall I cancel order {order} ({items}, {amount} {currency})? "
        "Reply yes to confirm, or no to keep it.",
        "confirm.other": "Shall I go ahead: {message} Reply yes to confirm, or no to cancel.",
        "done.refund": "Done: {amount} for order {order} is refunded to the original payment "
        "method (refund {refund_id}, status: {status}).",
        "done.cancel_order": "Done: order {order} is cancelled.",
        "done.cancel_order.already": "Order {order} was already cancelled.",
        "done.create_ticket": "I've opened ticket #{ticket_id} for this; our team will follow "
        "up with you.",
        "declined.refund": "OK, I won't refund order {order}.",
        "declined.cancel_order": "OK, order {order} stays as it is.",
        "declined.other": "OK, I won't do that.",
        "expired": "That request has expired, so I haven't done anything. Please ask again if "
        "you still want it.",
        "failed.not_refundable": "Order {order} can't be refunded (payment status: "
        "{financial_status}).",
        "failed.too_much": "That is more than can be refunded for order {order} "
        "(at most {refundable}).",
        "failed.already_refunded": "Order {order} has already been refunded.",
        "failed.shipped": "Order {order} has already shipped, so it can't be cancelled; you "
        "can return it instead.",
        "failed": "Sorry, I couldn't {action} just now. Please try again in a moment, or say "
        '"human" to talk to a person.',
        "unavailable": "Sorry, I can't {action} from here right now. Would you like a human "
        'agent to help? Just say "human".',
        "refused": 'Sorry, that isn\'t something I can do in this chat. Say "human" to talk '
        "to a person.",
        "in_progress": "That request is already being carried out. Please check again in a minute.",
        "action.order_status": "look up orders",
        "action.order_list": "look up orders",
        "action.track_shipment": "track parcels",
        "action.refund": "refund",
        "action.cancel_order": "cancel",
        "action.create_ticket": "open a support ticket",
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
        "order": "订单 {order}:支付状态 {financial_status},履约状态 {fulfillment_status},"
        "金额 {total}。",
        "order.tracking": "已由 {carrier} 发货,运单号 {tracking_number}(状态:{shipment_status})。",
        "order.cancelled": "该订单已取消。",
        "orders": "您最近的订单:{orders}。",
        "orders.more": "(共 {count} 个,显示最新 {shown} 个)",
        "orders.item": "{order}({total},{fulfillment_status})",
        "orders.none": "没有找到您邮箱下的订单。",
        "track.unshipped": "订单 {order} 尚未发货(履约状态:{fulfillment_status})。",
        "track.shop": "订单 {order} 已由 {carrier} 发货,运单号 {tracking_number}(状态:{status})。",
        "track.carrier": "包裹 {tracking_number}({carrier}):{summary}。",
        "track.where": "{description}(位置:{location})",
        "track.eta": " 预计送达:{estimated_delivery}。",
        "confirm.refund": "要为订单 {order} 退款 {amount} {currency}(原路退回)吗?"
        "回复“确认”或“是的”继续,回复“不”取消。",
        "confirm.cancel_order": "要取消订单 {order}({items},{amount} {currency})吗?"
        "回复“确认”或“是的”继续,回复“不”保留订单。",
        "confirm.other": "要继续吗:{message} 回复“确认”继续,回复“不”取消。",
        "done.refund": "已完成:订单 {order} 的 {amount} 已原路退回(退款单号 {refund_id},"
        "状态:{status})。",
        "done.cancel_order": "已完成:订单 {order} 已取消。",
        "done.cancel_order.already": "订单 {order} 之前已经取消了。",
        "done.create_ticket": "已为您创建工单 #{ticket_id},我们的团队会跟进处理。",
        "declined.refund": "好的,不为订单 {order} 退款。",
        "declined.cancel_order": "好的,订单 {order} 保持不变。",
        "declined.other": "好的,不做任何操作。",
        "expired": "该请求已过期,我没有做任何操作。如仍需要,请重新告诉我。",
        "failed.not_refundable": "订单 {order} 无法退款(支付状态:{financial_status})。",
        "failed.too_much": "超出订单 {order} 可退金额(最多 {refundable})。",
        "failed.already_refunded": "订单 {order} 已经退过款了。",
        "failed.shipped": "订单 {order} 已发货,无法取消;您可以申请退货。",
        "failed": "抱歉,暂时无法{action},请稍后再试,或回复“转人工”联系人工客服。",
        "unavailable": "抱歉,目前无法在这里{action}。需要人工客服帮忙吗?回复“转人工”即可。",
        "refused": "抱歉,这项操作无法在聊天中办理。回复“转人工”可联系人工客服。",
        "in_progress": "该请求正在处理中,请稍后再查看。",
        "action.order_status": "查询订单",
        "action.order_list": "查询订单",
        "action.track_shipment": "查询物流",
        "action.refund": "办理退款",
        "action.cancel_order": "取消订单",
        "action.create_ticket": "创建工单",
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


@dataclass(frozen=True)
class Rendered:
    """Chat text for a skill result. `with_kb`: put the knowledge-base answer first,
    when there is one (a return ticket goes with the return policy)."""

    text: str
    sources: list[str] = field(default_factory=list)
    handoff: bool = False
    with_kb: bool = False


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


def render(result: SkillResult) -> Rendered | None:
    """The text for this result, or None when no skill spoke."""
    lang = language_of(result)
    t, data = TEXT[lang], localise(result.data, lang)
    if result.skill == "handoff":
        return _handoff(t, data)
    if result.skill is None:
        return None
    if "dialogue" in data:
        return Rendered(_dialogue(t, result.skill, data))
    if data.get("would_run"):
        return Rendered(_would_run(t, result.skill, data))
    render_status = BY_STATUS.get(result.status)
    return render_status(t, result.skill, data, result) if render_status else None


def _handoff(t: dict[str, str], data: Data) -> Rendered:
    reason = str(data.get("reason", ""))
    known = {"negative_sentiment", "low_confidence", "skill_failure", "customer_request"}
    key = f"handoff.{reason}" if reason in known else "handoff.skill"
    return Rendered(t.get(key, "") + t["handoff"], handoff=True)


def _action(t: dict[str, str], skill: str) -> str:
    return t.get(f"action.{skill}", t["action.other"])


def _would_run(t: dict[str, str], skill: str, data: Data) -> str:
    args = data.get("arguments") or {}
    listed = ", ".join(f"{k}={v}" for k, v in sorted(args.items()))
    return t["would_run"].format(action=_action(t, skill), arguments=listed)


def _dialogue(t: dict[str, str], skill: str, data: Data) -> str:
    if data["dialogue"] == "expired":
        return t["expired"]
    key = f"declined.{skill}" if "order" in data else "declined.other"
    return t.get(key, t["declined.other"]).format(**data)


def _ok(t: dict[str, str], skill: str, data: Data, result: SkillResult) -> Rendered | None:
    render_skill = BY_SKILL.get(skill)
    return render_skill(t, data) if render_skill else None


def _order(t: dict[str, str], data: Data) -> Rendered:
    text = t["order"].format(**data)
    if data.get("tracking_number"):
        text += t["order.tracking"].format(**data)
    if data.get("cancelled"):
        text += t["order.cancelled"]
    return Rendered(text, [f"order:{data['order']}"])


def _orders(t: dict[str, str], data: Data) -> Rendered:
    orders = data.get("orders") or []
    if not orders:
        return Rendered(t["orders.none"])
    lang = "zh" if t is TEXT["zh"] else "en"
    items = "; ".join(t["orders.item"].format(**localise(o, lang)) for o in orders)
    text = t["orders"].format(orders=items)
    if data.get("count", len(orders)) > len(orders):
        text += t["orders.more"].format(shown=len(orders), count=data["count"])
    return Rendered(text, [f"order:{o['order']}" for o in orders])


def _tracking(t: dict[str, str], data: Data) -> Rendered:
    if data.get("shipped") is False:
        return Rendered(t["track.unshipped"].format(**data), [f"order:{data['order']}"])
    source = [f"tracking:{data['tracking_number']}"]
    if data.get("source") != "dhl":
        return Rendered(t["track.shop"].format(**data), source)
    summary = str(data.get("description") or data.get("status") or "")
    if data.get("location"):
        summary = t["track.where"].format(description=summary, location=data["location"])
    text = t["track.carrier"].format(**{**data, "summary": summary})
    if data.get("estimated_delivery"):
        eta = str(data["estimated_delivery"])[:10]  # the date; the hour is the carrier's guess
        text += t["track.eta"].format(estimated_delivery=eta)
    return Rendered(text, source)


def _refunded(t: dict[str, str], data: Data) -> Rendered:
    return Rendered(t["done.refund"].format(**data), [f"refund:{data['refund_id']}"])


def _cancelled(t: dict[str, str], data: Data) -> Rendered:
    key = "done.cancel_order.already" if data.get("already") else "done.cancel_order"
    return Rendered(t[key].format(**data), [f"order:{data['order']}"])


def _ticket(t: dict[str, str], data: Data) -> Rendered:
    return Rendered(
        t["done.create_ticket"].format(**data), [f"ticket:{data['ticket_id']}"], with_kb=True
    )


def _confirm(t: dict[str, str], skill: str, data: Data, result: SkillResult) -> Rendered:
    key = f"confirm.{skill}"
    if key in t and "order" in data:
        items = ", ".join(data.get("items") or [])
        return Rendered(t[key].format(**{**data, "items": items}))
    return Rendered(t["confirm.other"].format(message=result.message))


def _needs_input(t: dict[str, str], skill: str, data: Data, result: SkillResult) -> Rendered:
    missing = data.get("missing")
    if missing == "email":
        text = t["need_email"].format(action=_action(t, skill), order=data["order"])
    elif missing == "sign_in":
        text = t["need_sign_in"]
    elif missing == "order" and data.get("order"):
        text = t["bad_order"].format(**data)
    else:
        text = t["need_order"]
    # Only a parcel problem gets the guidance first ("my parcel hasn't moved"): a plain
    # "where is my order?" or "refund order 1002" wants the question, not a passage.
    return Rendered(text, with_kb=skill == "track_shipment")


def _not_found(t: dict[str, str], skill: str, data: Data, result: SkillResult) -> Rendered:
    if "tracking_number" in data and "order" not in data:
        return Rendered(t["no_parcel"].format(**data))
    order = data.get("order") or data.get("reference")
    if order:
        return Rendered(t["no_order"].format(order=order))
    return Rendered(t["unavailable"].format(action=_action(t, skill)))


def _failed(t: dict[str, str], skill: str, data: Data, result: SkillResult) -> Rendered:
    if "order" in data:
        if data.get("code") == "charge_already_refunded":
            return Rendered(t["failed.already_refunded"].format(**data))
        if "refundable" in data:
            return Rendered(t["failed.too_much"].format(**data))
        if "financial_status" in data and skill == "refund":
            return Rendered(t["failed.not_refundable"].format(**data))
        if data.get("reason") == "fulfilled":
            return Rendered(t["failed.shipped"].format(**data))
    return Rendered(t["failed"].format(action=_action(t, skill)), with_kb=True)


def _unavailable(t: dict[str, str], skill: str, data: Data, result: SkillResult) -> Rendered:
    return Rendered(t["unavailable"].format(action=_action(t, skill)), with_kb=True)


def _refused(t: dict[str, str], skill: str, data: Data, result: SkillResult) -> Rendered:
    return Rendered(t["refused"], with_kb=True)


def _in_progress(t: dict[str, str], skill: str, data: Data, result: SkillResult) -> Rendered:
    return Rendered(t["in_progress"])


StatusRenderer = Callable[[dict[str, str], str, Data, SkillResult], "Rendered | None"]
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
BY_SKILL: dict[str, Callable[[dict[str, str], Data], Rendered]] = {
    "order_status": _order,
    "order_list": _orders,
    "track_shipment": _tracking,
    "refund": _refunded,
    "cancel_order": _cancelled,
    "create_ticket": _ticket,
}
