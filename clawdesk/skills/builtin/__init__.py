"""The built-in skills, one module each, with their manifests (routes, confirmation
question, reply templates) beside their code. The order skills share `orders`.

Orders are read from `ctx.order_source` (Shopify, or the packaged demo shop, behind the
cache) and parcels from `ctx.tracker` (DHL). A NEEDS_INPUT outcome names what is
missing in `data["missing"]` ("order", "email", "sign_in") so the pipeline can ask for
it and resume. The side-effecting skills' previews return NEEDS_CONFIRMATION with the
facts to confirm (`action`, `order`, `amount`, `currency`) for the reply to quote.

The entry points `clawdesk.skills.builtin:<name>` name the objects re-exported here.
"""

from clawdesk.skills.base import Skill
from clawdesk.skills.builtin.cancel_order import cancel_order
from clawdesk.skills.builtin.create_ticket import create_ticket
from clawdesk.skills.builtin.crm_lookup import crm_lookup
from clawdesk.skills.builtin.handoff import handoff
from clawdesk.skills.builtin.order_list import order_list
from clawdesk.skills.builtin.order_status import order_status
from clawdesk.skills.builtin.orders import summarise_order
from clawdesk.skills.builtin.refund import refund
from clawdesk.skills.builtin.track_shipment import track_shipment

BUILTIN_SKILLS: tuple[Skill, ...] = (
    order_status,
    order_list,
    track_shipment,
    refund,
    cancel_order,
    crm_lookup,
    create_ticket,
    handoff,
)

__all__ = [
    "BUILTIN_SKILLS",
    "cancel_order",
    "create_ticket",
    "crm_lookup",
    "handoff",
    "order_list",
    "order_status",
    "refund",
    "summarise_order",
    "track_shipment",
]
