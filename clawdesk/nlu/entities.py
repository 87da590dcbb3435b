"""Rule-based entity extraction for customer-service messages (English and Chinese).

Extracted kinds:

* ``order_number``   – shop order references: ``#1001``, ``ORD-123456``, "order 1001",
  "order number: A-1001", "订单号 1001", "订单编号：1001".
* ``tracking_number`` – parcel tracking numbers that carry a check rule: UPS ``1Z`` + 16
  (check digit verified), UPU S10 ``AB123456789CN`` (mod-11 check digit verified) and
  10-digit DHL Express waybills (mod-7 check digit, only next to a carrier/tracking word).
  Carrier formats with a fixed prefix (YunExpress ``YT``, SF Express ``SF``, 4PX,
  Cainiao ``LP``, JD, PostNL ``3S``, Yanwen) and any other code of 8–30 characters
  (mostly digits) right after a tracking word ("tracking number …", "运单号 …").
* ``email``          – e-mail addresses (validated: label rules, no ``..``).
* ``phone``          – E.164 numbers (``+14155552671``, ``+86 138 1234 5678``) and Chinese
  mobile numbers (``13812345678``, ``138-1234-5678``); value normalised to E.164.
* ``money``          – amounts with a currency: ``$12.50``, ``¥99``, ``12.5 元``, ``€3``,
  ``USD 20``, ``20 dollars``; value normalised to ``"<amount> <ISO code>"``.

Everything is regular expressions plus validators: it is cheap, deterministic and has no
model to load, so the service can run it on every message.  Candidates that overlap are
resolved by priority (a span recognised with a keyword such as "order" beats a bare
pattern), then by length.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

__all__ = [
    "ENTITY_KINDS",
    "Entity",
    "dhl_check_digit",
    "extract_entities",
    "fold_width",
    "s10_check_digit",
    "ups_check_digit",
]

ENTITY_KINDS = ("order_number", "tracking_number", "email", "phone", "money")


@dataclass(frozen=True)
class Entity:
    """One entity found in a text.

    ``start``/``end`` are character offsets into the original text (``text[start:end]``
    is the matched surface form); ``value`` is the normalised value; ``attrs`` holds
    extra facts such as the carrier of a tracking number or the currency of an amount.
    """

    kind: str
    value: str
    start: int
    end: int
    attrs: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class _Candidate:
    entity: Entity
    priority: int  # higher wins when spans overlap


# --------------------------------------------------------------------------- check digits


def ups_check_digit(body: str) -> int:
    """Check digit of a UPS ``1Z`` number, computed over the 15 characters after ``1Z``.

    Letters map to digits as ``(ord(c) - 63) % 10`` (A=2 … I=0 …), odd positions count
    once and even positions twice, and the check digit brings the sum to a multiple of 10.
    """
    total = 0
    for i, ch in enumerate(body.upper()):
        v = int(ch) if ch.isdigit() else (ord(ch) - 63) % 10
        total += v * (2 if i % 2 else 1)
    return (10 - total % 10) % 10


_S10_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)


def s10_check_digit(serial: str) -> int:
    """Check digit of a UPU S10 item identifier from its 8-digit serial number."""
    total = sum(int(d) * w for d, w in zip(serial, _S10_WEIGHTS, strict=True))
    check = 11 - total % 11
    if check == 10:
        return 0
    if check == 11:
        return 5
    return check


def dhl_check_digit(first9: str) -> int:
    """Check digit of a 10-digit DHL Express waybill: the first nine digits mod 7."""
    return int(first9) % 7


# --------------------------------------------------------------------------- patterns

# Digits must not run on into neighbouring digits/letters, or we would cut an ID in half.
_NB = r"(?<![0-9A-Za-z])"
_NA = r"(?![0-9A-Za-z])"

# All patterns use re.ASCII: with Unicode \w a Chinese character counts as a "word"
# character, and "订单号1001已发货" would then have no boundary around the number.
_A = re.ASCII
_AI = re.ASCII | re.IGNORECASE

_UPS_RE = re.compile(_NB + r"(1Z)([0-9A-Z]{15})([0-9])" + _NA, _AI)
_S10_RE = re.compile(_NB + r"([A-Z]{2})(\d{8})(\d)([A-Z]{2})" + _NA, _AI)
_DHL_RE = re.compile(_NB + r"(\d{10})" + _NA, _A)
# A bare 10-digit number is as likely a phone or order number; only a nearby carrier or
# tracking word makes it a DHL waybill (the mod-7 check alone passes 1 in 7 numbers).
_DHL_CONTEXT_RE = re.compile(
    r"(dhl|tracking|track|waybill|awb|shipment|parcel|运单|快递|物流|单号|追踪|跟踪)",
    _AI,
)
_DHL_CONTEXT_WINDOW = 40

# Carriers whose numbers carry a fixed prefix (no check digit): the prefix and length
# alone tell them from order numbers. The most specific pattern first.
_CARRIER_PREFIXES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (carrier, re.compile(_NB + pattern + _NA, _AI))
    for carrier, pattern in (
        ("yunexpress", r"YT\d{16}"),
        ("sf_express", r"SF\d{12,13}"),
        ("4px", r"4PX\d{10,16}(?:[A-Z]{2})?"),
        ("cainiao", r"LP\d{14,16}"),
        ("jd_logistics", r"JD[A-Z]{0,2}\d{11,15}"),
        ("postnl", r"3S[A-Z]{4}\d{7,10}"),
        ("yanwen", r"(?:UG|VR)\d{9}YW"),
    )
)
# Any other carrier's number: a code of 8-30 letters and digits, mostly digits, right
# after a tracking word ("tracking number 15502123456789", "运单号 7312345678901").
_CONTEXT_CODE_RE = re.compile(
    r"(?:tracking(?:\s*(?:number|no\.?|#|code|id))?|waybill|awb|consignment|parcel number"
    r"|运单号?|快递单号?|物流单号?|单号|追踪号|跟踪号)\s*(?:is|:|：|=|是|为)?\s*"
    r"([A-Z0-9]{8,30})" + _NA,
    _AI,
)

_EMAIL_RE = re.compile(
    r"(?<![\w.+-])([A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?)@"
    r"((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24})(?![\w-])",
    _A,
)

# E.164: "+", country code not starting with 0, then digits with optional separators.
_E164_RE = re.compile(r"(?<![\w+])\+([1-9](?:[\s\-.()]{0,2}\d){7,14})(?!\d)", _A)
# Chinese mobile: 1[3-9] + 9 digits, optionally grouped 3-4-4 with spaces or hyphens.
_CN_MOBILE_RE = re.compile(r"(?<![0-9A-Za-z+])(1[3-9]\d)([ -]?)(\d{4})\2(\d{4})(?!\d)", _A)

_AMOUNT = r"(\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?|\d+(?:\.\d{1,2})?)"
# An amount must not run on into more digits ("$12.505" or "$1,2345" are not amounts).
_AMOUNT_END = r"(?!\d|[.,]\d)"
_SYMBOLS = {
    "US$": "USD",
    "$": "USD",
    "¥": "CNY",  # ¥/￥ are read as yuan: the platform's Chinese market uses them so
    "￥": "CNY",
    "€": "EUR",
    "£": "GBP",
    "HK$": "HKD",
    "RMB": "CNY",
    "CNY": "CNY",
    "USD": "USD",
    "EUR": "EUR",
    "GBP": "GBP",
    "HKD": "HKD",
}
_SUFFIXES = {
    "元": "CNY",
    "块钱": "CNY",
    "块": "CNY",
    "人民币": "CNY",
    "美元": "USD",
    "欧元": "EUR",
    "英镑": "GBP",
    "港币": "HKD",
    "dollars": "USD",
    "dollar": "USD",
    "usd": "USD",
    "euros": "EUR",
    "euro": "EUR",
    "eur": "EUR",
    "pounds": "GBP",
    "gbp": "GBP",
    "yuan": "CNY",
    "rmb": "CNY",
    "cny": "CNY",
    "hkd": "HKD",
}


def _alternation(words: list[str]) -> str:
    # Longest first so "块钱" wins over "块" and "US$" over "$".
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


_PREFIX_MONEY_RE = re.compile(
    r"(?<![\w$¥￥€£])(" + _alternation(list(_SYMBOLS)) + r")\s?" + _AMOUNT + _AMOUNT_END,
    _AI,
)
_SUFFIX_MONEY_RE = re.compile(
    r"(?<![\w.,])" + _AMOUNT + r"\s?(" + _alternation(list(_SUFFIXES)) + r")(?![A-Za-z])",
    _AI,
)

_ORDER_ID = r"(#?[A-Za-z0-9][A-Za-z0-9-]*)"
_SHOP_HASH_RE = re.compile(r"(?<![\w#&])#(\d{3,12})(?!\w)", _A)
_ORD_PREFIX_RE = re.compile(r"(?<![\w-])((?:ORD|ORDER|SO)[-_]?\d{3,15})(?![\w-])", _AI)
_ORDER_KEYWORD_RE = re.compile(
    r"\border\s*(?:number|num|no\.?|id|#|ref(?:erence)?)?\s*(?:is|was|:|=)?\s*[:#]?\s*"
    + _ORDER_ID
    + r"(?!\w)",
    _AI,
)
_ORDER_ZH_RE = re.compile(
    r"订单(?:编号|号码|号|id|ID)?\s*(?:是|为|:)?\s*[:#]?\s*" + _ORDER_ID + r"(?!\w)", _AI
)


# --------------------------------------------------------------------------- finders


def _find_tracking(text: str) -> Iterator[_Candidate]:
    for m in _UPS_RE.finditer(text):
        body = (m.group(2) + m.group(3)).upper()
        if ups_check_digit(body[:15]) == int(body[15]):
            value = "1Z" + body
            yield _Candidate(
                Entity("tracking_number", value, m.start(), m.end(), {"carrier": "ups"}), 50
            )
    for m in _S10_RE.finditer(text):
        serial, check = m.group(2), int(m.group(3))
        if s10_check_digit(serial) == check:
            yield _Candidate(
                Entity(
                    "tracking_number",
                    m.group(0),
                    m.start(),
                    m.end(),
                    {"carrier": "upu_s10", "country": m.group(4)},
                ),
                50,
            )
    for m in _DHL_RE.finditer(text):
        digits = m.group(1)
        if dhl_check_digit(digits[:9]) != int(digits[9]):
            continue
        window = text[max(0, m.start() - _DHL_CONTEXT_WINDOW) : m.start()]
        if _DHL_CONTEXT_RE.search(window):
            yield _Candidate(
                Entity("tracking_number", digits, m.start(), m.end(), {"carrier": "dhl"}), 45
            )


def _find_carrier_codes(text: str) -> Iterator[_Candidate]:
    for carrier, regex in _CARRIER_PREFIXES:
        for m in regex.finditer(text):
            value = m.group(0).upper()
            yield _Candidate(
                Entity("tracking_number", value, m.start(), m.end(), {"carrier": carrier}), 48
            )
    for m in _CONTEXT_CODE_RE.finditer(text):
        code = m.group(1)
        if sum(ch.isdigit() for ch in code) >= 8:
            yield _Candidate(Entity("tracking_number", code.upper(), m.start(1), m.end(1), {}), 44)


def _find_emails(text: str) -> Iterator[_Candidate]:
    for m in _EMAIL_RE.finditer(text):
        local, domain = m.group(1), m.group(2)
        if ".." in local or len(local) > 64 or len(domain) > 253:
            continue
        value = f"{local}@{domain.lower()}"
        yield _Candidate(Entity("email", value, m.start(), m.end()), 60)


def _find_phones(text: str) -> Iterator[_Candidate]:
    for m in _E164_RE.finditer(text):
        digits = re.sub(r"\D", "", m.group(1))
        if 8 <= len(digits) <= 15:
            yield _Candidate(Entity("phone", "+" + digits, m.start(), m.end()), 30)
    for m in _CN_MOBILE_RE.finditer(text):
        digits = m.group(1) + m.group(3) + m.group(4)
        yield _Candidate(Entity("phone", "+86" + digits, m.start(), m.end(), {"region": "CN"}), 30)


def _money_entity(amount_raw: str, currency: str, start: int, end: int) -> Entity | None:
    try:
        amount = Decimal(amount_raw.replace(",", ""))
    except InvalidOperation:  # pragma: no cover - the regex only admits numbers
        return None
    return Entity(
        "money",
        f"{amount} {currency}",
        start,
        end,
        {"currency": currency, "amount": str(amount)},
    )


def _find_money(text: str) -> Iterator[_Candidate]:
    for m in _PREFIX_MONEY_RE.finditer(text):
        symbol = m.group(1)
        currency = _SYMBOLS.get(symbol) or _SYMBOLS.get(symbol.upper())
        if currency is None:  # pragma: no cover - the alternation only admits known keys
            continue
        ent = _money_entity(m.group(2), currency, m.start(), m.end())
        if ent is not None:
            yield _Candidate(ent, 40)
    for m in _SUFFIX_MONEY_RE.finditer(text):
        currency = _SUFFIXES[m.group(2).lower()]
        ent = _money_entity(m.group(1), currency, m.start(), m.end())
        if ent is not None:
            yield _Candidate(ent, 40)


def _order_value(raw: str) -> str:
    return raw.lstrip("#").upper()


def _plausible_order_id(raw: str) -> bool:
    value = raw.lstrip("#")
    digits = sum(ch.isdigit() for ch in value)
    # "order 2 items" / "order 10 pcs" are quantities, not references.
    return 3 <= len(value) <= 24 and digits >= 3


def _find_orders(text: str) -> Iterator[_Candidate]:
    for m in _SHOP_HASH_RE.finditer(text):
        yield _Candidate(
            Entity("order_number", m.group(1), m.start(), m.end(), {"style": "hash"}), 20
        )
    for m in _ORD_PREFIX_RE.finditer(text):
        yield _Candidate(
            Entity("order_number", m.group(1).upper(), m.start(), m.end(), {"style": "prefix"}),
            20,
        )
    # A keyword in front ("order", "订单号") is strong evidence, so these outrank phones,
    # bare tracking patterns and money: "订单号 13812345678" is an order reference.
    for regex in (_ORDER_KEYWORD_RE, _ORDER_ZH_RE):
        for m in regex.finditer(text):
            raw = m.group(1).rstrip("-")  # "order A-1001-" : the dash is punctuation
            if not _plausible_order_id(raw):
                continue
            start = m.start(1)
            if start > 0 and text[start - 1] == "#":  # same span as a bare "#1001"
                start -= 1
            yield _Candidate(
                Entity(
                    "order_number",
                    _order_value(raw),
                    start,
                    m.start(1) + len(raw),
                    {"style": "keyword"},
                ),
                70,
            )


def fold_width(text: str) -> str:
    """Map full-width ASCII forms (``１００１``, ``：``, ``＃``) and the ideographic space to
    their ASCII twins, one character for one, so offsets stay valid for the original text.

    Chinese input methods often produce full-width digits and punctuation.
    """
    return text.translate(_WIDTH_TABLE)


_WIDTH_TABLE = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


_FINDERS: tuple[Callable[[str], Iterator[_Candidate]], ...] = (
    _find_emails,
    _find_tracking,
    _find_carrier_codes,
    _find_money,
    _find_phones,
    _find_orders,
)


def extract_entities(text: str, kinds: tuple[str, ...] | None = None) -> list[Entity]:
    """Return the entities in ``text``, ordered by position, without overlaps.

    ``kinds`` restricts the result to some of :data:`ENTITY_KINDS`.  Overlapping
    candidates are resolved by priority, then by length, then by position.
    """
    if not text:
        return []
    text = fold_width(text)
    candidates = [c for finder in _FINDERS for c in finder(text)]
    candidates.sort(key=lambda c: (-c.priority, -(c.entity.end - c.entity.start), c.entity.start))
    taken: list[Entity] = []
    for cand in candidates:
        e = cand.entity
        if any(e.start < t.end and t.start < e.end for t in taken):
            continue
        taken.append(e)
    if kinds is not None:
        taken = [e for e in taken if e.kind in kinds]
    return sorted(taken, key=lambda e: e.start)


def order_number(reference: str) -> str | None:
    """The digits of an order reference such as `#1001`, `ORD-1001` or `1001`."""
    match = re.search(r"(\d{3,})", reference)
    return match.group(1) if match else None
