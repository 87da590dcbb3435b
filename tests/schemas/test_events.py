"""Events are frozen, strict, versioned, and exported as JSON Schema."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from schemas import (
    ALL_EVENTS,
    Channel,
    ControlAction,
    ConversationControl,
    InboundMessage,
    export_json_schemas,
)


def inbound(**changes):
    fields = dict(
        conversation_id="c1",
        tenant_id="demo",
        channel=Channel.WEB,
        channel_message_id="m1",
        customer_id="u1",
        text="hi",
    )
    fields.update(changes)
    return InboundMessage(**fields)


def test_round_trip_on_the_wire():
    msg = inbound()
    assert InboundMessage.from_bytes(msg.to_bytes()) == msg


@pytest.mark.parametrize(
    "bad",
    [
        {"surprise": 1},
        {"tenant_id": "bad tenant!"},
        {"channel": "fax"},
        {"conversation_id": ""},
    ],
)
def test_invalid_fields_are_refused(bad):
    with pytest.raises(ValidationError):
        inbound(**bad)


def test_events_are_frozen():
    msg = inbound()
    with pytest.raises(ValidationError):
        msg.text = "changed"  # type: ignore[misc]


def test_every_event_exports_a_versioned_schema(tmp_path):
    paths = export_json_schemas(tmp_path)
    assert len(paths) == len(ALL_EVENTS)
    schema = json.loads((tmp_path / "inbound_message.v1.schema.json").read_text())
    assert schema["additionalProperties"] is False
    assert {
        "event_id",
        "conversation_id",
        "tenant_id",
        "channel",
        "occurred_at",
        "schema_version",
    } <= set(schema["properties"])


@pytest.mark.parametrize(
    ("action", "text", "valid"),
    [
        (ControlAction.AGENT_REPLY, "Your refund went out today.", True),
        (ControlAction.AGENT_REPLY, " \n ", False),
        (ControlAction.AGENT_REPLY, "", False),
        (ControlAction.HAND_BACK, "", True),
    ],
)
def test_an_agent_reply_control_carries_its_text(action, text, valid):
    fields = dict(
        conversation_id="c1",
        tenant_id="demo",
        channel=Channel.WEB,
        action=action,
        agent_id="alice",
        text=text,
    )
    if valid:
        control = ConversationControl(**fields)
        assert ConversationControl.from_bytes(control.to_bytes()) == control
    else:
        with pytest.raises(ValidationError, match="text of the reply"):
            ConversationControl(**fields)
