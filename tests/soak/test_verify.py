"""The soak's verifier on crafted rows: it must see a lost, a duplicated and an
out-of-order reply (a real, migrated Postgres)."""

from __future__ import annotations

import time

import psycopg

from clawdesk.soak.driver import Acked
from clawdesk.soak.faults import FaultWindow
from clawdesk.soak.providers import ProviderSend
from clawdesk.soak.verify import verify
from schemas import Channel, InboundMessage


def accept(url: str, channel: Channel, conversation: str, cmid: str, outcome: str | None) -> str:
    """An inbound-log row, as the gateway writes it; the message's event id."""
    msg = InboundMessage(
        conversation_id=conversation,
        tenant_id="demo",
        channel=channel,
        channel_message_id=cmid,
        customer_id="c1",
        text="How long does shipping take?",
    )
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO inbound_log (event_id, tenant_id, conversation_id, channel, payload,"
            " outcome, next_redrive_at) VALUES (%s, 'demo', %s, %s, %s, %s, now())",
            (msg.event_id, conversation, channel.value, msg.to_bytes(), outcome),
        )
    return msg.event_id


def deliver(url: str, reply_id: str, conversation: str, channel: str, status: str) -> None:
    """A delivery row (and, once sent, the stored reply), as the dispatcher writes them."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO deliveries (reply_id, conversation_id, tenant_id, channel, status)"
            " VALUES (%s, %s, 'demo', %s, %s)",
            (reply_id, conversation, channel, status),
        )
        if status == "sent":
            store_reply(conn, reply_id, conversation, channel, "Shipping takes 3 days.")


def store_reply(
    conn: psycopg.Connection, reply_id: str, conversation: str, channel: str, text: str
) -> None:
    conn.execute(
        "INSERT INTO messages (id, conversation_id, tenant_id, user_id, direction, author,"
        " channel, text, \"timestamp\") VALUES (%s, %s, 'demo', 'c1', 'out', 'bot', %s, %s,"
        " now())",
        (reply_id, conversation, channel, text),
    )


def acked(channel: str, conversation: int, k: int, cmid: str) -> Acked:
    now = time.time()
    return Acked(channel, conversation, k, cmid, now, now, 1)


def send(channel: str, chat: str, reply_id: str | None, at: float, text: str = "t") -> ProviderSend:
    return ProviderSend(channel, chat, reply_id, text, at, "ok")


def test_web_message_without_a_sent_delivery_is_lost(database_url: str) -> None:
    answered = accept(database_url, Channel.WEB, "web:a", "m0", "answered")
    deliver(database_url, f"r-{answered}", "web:a", "web", "sent")
    open_one = accept(database_url, Channel.WEB, "web:a", "m1", None)
    deliver(database_url, f"r-{open_one}", "web:a", "web", "queued")

    report = verify(
        database_url, [acked("web", 0, 0, "m0"), acked("web", 0, 1, "m1")], [], [], time.time()
    )

    assert (report.acknowledged, report.answered_once, report.lost) == (2, 1, 1)
    assert report.lost_messages[0]["channel_message_id"] == "m1"
    assert report.lost_messages[0]["outcomes"] == ["open"]
    assert not report.ok


def test_acknowledged_message_missing_from_the_inbound_log_is_lost(database_url: str) -> None:
    report = verify(database_url, [acked("inapp", 0, 0, "never-logged")], [], [], time.time())

    assert report.lost == 1
    assert report.lost_messages[0]["outcomes"] == ["not in the inbound log"]


def test_two_provider_sends_of_one_reply_are_a_duplicate(database_url: str) -> None:
    event = accept(database_url, Channel.WHATSAPP, "whatsapp:p:49", "wamid.A", "answered")
    now = time.time()
    sends = [
        send("whatsapp", "49", f"r-{event}", now),
        send("whatsapp", "49", f"r-{event}", now + 1),
    ]

    report = verify(database_url, [acked("whatsapp", 0, 0, "wamid.A")], sends, [], now + 2)

    assert (report.duplicated, report.lost, report.answered_once) == (1, 0, 0)
    assert report.duplicated_messages[0]["replies"] == {f"r-{event}": 2}
    assert not report.ok


def test_a_failed_send_is_not_a_delivery(database_url: str) -> None:
    event = accept(database_url, Channel.INAPP, "inapp:demo:a", "m0", "answered")
    now = time.time()
    sends = [
        ProviderSend("inapp", "inapp:demo:a", f"r-{event}", "t", now, "5xx"),
        send("inapp", "inapp:demo:a", f"r-{event}", now + 1),
    ]

    report = verify(database_url, [acked("inapp", 0, 0, "m0")], sends, [], now + 2)

    assert (report.answered_once, report.duplicated, report.lost) == (1, 0, 0)


def test_two_replies_to_one_customer_message_are_a_duplicate(database_url: str) -> None:
    # The same channel message taken twice (two event ids), each answered.
    first = accept(database_url, Channel.INAPP, "inapp:demo:a", "m0", "answered")
    second = accept(database_url, Channel.INAPP, "inapp:demo:a", "m0", "answered")
    now = time.time()
    sends = [send("inapp", "a", f"r-{first}", now), send("inapp", "a", f"r-{second}", now + 1)]

    report = verify(database_url, [acked("inapp", 0, 0, "m0")], sends, [], now + 2)

    assert report.duplicated == 1


def test_telegram_text_sent_twice_to_a_chat_is_a_duplicate(database_url: str) -> None:
    event = accept(database_url, Channel.TELEGRAM, "telegram:42", "42:1", "answered")
    with psycopg.connect(database_url) as conn:
        store_reply(conn, f"r-{event}", "telegram:42", "telegram", "Shipping takes 3 days.")
    now = time.time()
    sends = [
        send("telegram", "42", None, now, "Shipping takes 3 days."),
        send("telegram", "42", None, now + 1, "Shipping takes 3 days."),
    ]

    report = verify(database_url, [acked("telegram", 0, 0, "42:1")], sends, [], now + 2)

    assert report.duplicated == 1 and report.lost == 0


def test_reply_to_a_later_message_sent_first_is_out_of_order(database_url: str) -> None:
    events = [
        accept(database_url, Channel.INAPP, "inapp:demo:a", f"m{k}", "answered") for k in range(3)
    ]
    now = time.time()
    # Replies to m0 and m2 go out before the reply to m1.
    sends = [
        send("inapp", "a", f"r-{events[0]}", now),
        send("inapp", "a", f"r-{events[2]}", now + 1),
        send("inapp", "a", f"r-{events[1]}", now + 2),
    ]
    acks = [acked("inapp", 0, k, f"m{k}") for k in range(3)]

    report = verify(database_url, acks, sends, [], now + 3)

    assert report.out_of_order == 1
    assert (report.lost, report.duplicated) == (0, 0)
    assert report.ok  # out of order is reported, but is neither a loss nor a duplicate


def test_handed_off_message_is_not_lost_and_faults_get_recovery_times(database_url: str) -> None:
    answered = accept(database_url, Channel.INAPP, "inapp:demo:a", "m0", "answered")
    accept(database_url, Channel.INAPP, "inapp:demo:a", "m1", "human")
    now = time.time()
    sends = [send("inapp", "a", f"r-{answered}", now + 5)]
    kill = FaultWindow("worker", now + 1, now + 1, "worker-1")  # after the accept

    report = verify(
        database_url,
        [acked("inapp", 0, 0, "m0"), acked("inapp", 0, 1, "m1")],
        sends,
        [kill],
        now + 6,
    )

    assert (report.human, report.lost) == (1, 0)
    fault = report.faults[0]
    assert fault.next_reply_s is not None and 3.5 < fault.next_reply_s < 4.5
    assert report.latency_s["during faults"]["n"] == 1


def test_unrecorded_telegram_reply_with_an_earlier_text_is_neither_lost_nor_dup(
    database_url: str,
) -> None:
    # k=1's send timed out (not stored, outcome unknown) but reached the chat; its text
    # is the same as k=0's reply.
    first = accept(database_url, Channel.TELEGRAM, "telegram:42", "42:1", "answered")
    accept(database_url, Channel.TELEGRAM, "telegram:42", "42:2", "unknown")
    with psycopg.connect(database_url) as conn:
        store_reply(conn, f"r-{first}", "telegram:42", "telegram", "Shipping takes 3 days.")
    now = time.time()
    sends = [
        send("telegram", "42", None, now, "Shipping takes 3 days."),
        ProviderSend("telegram", "42", None, "Shipping takes 3 days.", now + 1, "timeout"),
    ]
    acks = [acked("telegram", 0, 0, "42:1"), acked("telegram", 0, 1, "42:2")]

    report = verify(database_url, acks, sends, [], now + 2)

    assert (report.lost, report.duplicated, report.answered_once) == (0, 0, 2)
