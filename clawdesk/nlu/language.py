"""Cheap language identification for routing and reply-language choice.

This is a script-ratio heuristic, not a statistical model: customer messages are short and
often mixed ("我的order #1001还没到"), and what the platform needs is the language to answer
in.  The rules, in order:

1. Count "units" per script.  One CJK ideograph, kana or Hangul syllable is one unit; a
   Latin/Cyrillic/... word is one unit.  Tokens that are codes rather than words (anything
   with a digit, e-mails, URLs, ``#1001``) are ignored, so an order or tracking number in
   a Chinese sentence does not make it English.
2. Kana present (and at least a fifth of the CJK units) -> ``"ja"``; Hangul -> ``"ko"``;
   Han -> ``"zh"`` unless Latin words clearly dominate (more than twice the Han units).
3. Other scripts map to their main language (Cyrillic ``"ru"``, Arabic ``"ar"``, Thai
   ``"th"``, Greek ``"el"``, Hebrew ``"he"``, Devanagari ``"hi"``).
4. Latin text is told apart by stop words (en, es, fr, de, pt, it, nl, id); English wins
   ties and text without any stop word, because it is the platform's other main language.
5. Nothing to go on (empty, digits, emoji) -> ``"und"`` (undetermined, as in BCP 47).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

__all__ = ["UNDETERMINED", "detect_language", "reply_language", "script_counts"]

UNDETERMINED = "und"

# Code-like tokens carry no language: URLs, e-mails, anything containing a digit.
# Codes (order and tracking numbers, SKUs) are ASCII runs with a digit: `\S*\d\S*` also
# ate whole Chinese sentences, which have no spaces ("订单1004发出来了吗" became nothing).
_CODE_RE = re.compile(r"https?://\S+|www\.\S+|\S+@\S+|[!-~]*\d[!-~]*")
_WORD_RE = re.compile(r"[^\W\d_]+", re.UNICODE)

_STOP_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset(
        "the a an and or is are was were be been to of in on for with my your i you it "
        "this that what how why when where can could would should do does did not no have "
        "has had me we they please hi hello thanks".split()
    ),
    "es": frozenset(
        "el la los las un una y o es son está estoy de del en por para con mi mis tu su que "
        "qué cómo por qué cuando dónde no sí hola gracias pedido quiero".split()
    ),
    "fr": frozenset(
        "le la les un une et ou est sont suis de du des en pour avec mon ma mes ton votre "
        "que qui quoi comment pourquoi quand où ne pas oui bonjour merci commande je".split()
    ),
    "de": frozenset(
        "der die das ein eine und oder ist sind bin zu von im in für mit mein meine dein "
        "ihr was wie warum wann wo nicht kein ja hallo danke bestellung ich".split()
    ),
    "pt": frozenset(
        "o a os as um uma e ou é são estou de do da em por para com meu minha seu que "
        "como quando onde não sim olá obrigado pedido eu".split()
    ),
    "it": frozenset(
        "il lo la i gli le un una e o è sono di del della in per con mio mia tuo che come "
        "perché quando dove non sì ciao grazie ordine io".split()
    ),
    "nl": frozenset(
        "de het een en of is zijn ben van in voor met mijn jouw wat hoe waarom wanneer waar "
        "niet geen ja hallo bedankt bestelling ik".split()
    ),
    "id": frozenset(
        "yang dan atau adalah di ke dari untuk dengan saya anda apa bagaimana kenapa kapan "
        "mana tidak ya halo terima kasih pesanan".split()
    ),
}

_SCRIPT_LANG = {
    "cyrillic": "ru",
    "arabic": "ar",
    "thai": "th",
    "greek": "el",
    "hebrew": "he",
    "devanagari": "hi",
}


def _script_of(ch: str) -> str | None:
    cp = ord(ch)
    if 0x3040 <= cp <= 0x30FF or 0x31F0 <= cp <= 0x31FF or 0xFF66 <= cp <= 0xFF9D:
        return "kana"
    if 0xAC00 <= cp <= 0xD7AF or 0x1100 <= cp <= 0x11FF or 0x3130 <= cp <= 0x318F:
        return "hangul"
    if (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0xF900 <= cp <= 0xFAFF
        or 0x20000 <= cp <= 0x2FA1F
    ):
        return "han"
    if ch.isascii() and ch.isalpha():
        return "latin"
    if 0x00C0 <= cp <= 0x024F or 0x1E00 <= cp <= 0x1EFF:
        return "latin"
    if 0x0400 <= cp <= 0x04FF:
        return "cyrillic"
    if 0x0600 <= cp <= 0x06FF or 0x0750 <= cp <= 0x077F:
        return "arabic"
    if 0x0E00 <= cp <= 0x0E7F:
        return "thai"
    if 0x0370 <= cp <= 0x03FF:
        return "greek"
    if 0x0590 <= cp <= 0x05FF:
        return "hebrew"
    if 0x0900 <= cp <= 0x097F:
        return "devanagari"
    return None


def script_counts(text: str) -> Counter[str]:
    """Count language units per script in ``text`` (see the module docstring)."""
    counts: Counter[str] = Counter()
    cleaned = _CODE_RE.sub(" ", text)
    for ch in cleaned:
        script = _script_of(ch)
        if script in ("han", "kana", "hangul"):
            counts[script] += 1
    for word in _WORD_RE.findall(cleaned):
        # A "word" of the regex may be a run of ideographs; only alphabetic scripts count
        # per word, and a word counts for the script of its first letter.
        script = _script_of(word[0])
        if script not in (None, "han", "kana", "hangul"):
            counts[script] += 1
    return counts


def _latin_language(text: str) -> str:
    words = [w.lower() for w in _WORD_RE.findall(_CODE_RE.sub(" ", text))]
    scores = {lang: sum(w in stops for w in words) for lang, stops in _STOP_WORDS.items()}
    best = max(scores.values())
    if best == 0 or scores["en"] == best:
        return "en"
    return max(scores, key=lambda lang: scores[lang])


def detect_language(text: str) -> str:
    """Return an ISO 639-1 code for ``text`` (``"zh"``, ``"en"``, ``"ja"``, …) or ``"und"``.

    Robust to mixed Chinese/English text: the answer is the language the sentence is
    written in, not the language of embedded product names or codes.
    """
    counts = script_counts(text)
    if not counts:
        return UNDETERMINED
    cjk = counts["han"] + counts["kana"] + counts["hangul"]
    latin = counts["latin"]
    if cjk:
        if counts["kana"] and counts["kana"] * 5 >= counts["han"] + counts["kana"]:
            lang = "ja"
        elif counts["hangul"] >= counts["han"]:
            lang = "ko"
        else:
            lang = "zh"
        # A Chinese name in an English sentence ("my name is 王小明 and ...") should not
        # flip the answer; a couple of English words in a Chinese sentence should not either.
        if latin > 2 * cjk:
            return _latin_language(text)
        return lang
    script, _ = max(counts.items(), key=lambda kv: kv[1])
    if script == "latin":
        return _latin_language(text)
    return _SCRIPT_LANG.get(script, UNDETERMINED)


SHORT_WORDS = 2  # "ok thanks" in a Chinese conversation is still answered in Chinese


def reply_language(text: str, remembered: str | None = None, earlier: Sequence[str] = ()) -> str:
    """The language to answer `text` in: its own, or the conversation's (`remembered`)
    when it has none ("1005", an e-mail address) or is a word or two of English in a
    Chinese conversation ("ok", "yes please"). With nothing remembered yet, the
    customer's `earlier` messages decide: a burst ("hi" / "my order" / "1002") arrives
    before the first turn's language is remembered."""
    detected = detect_language(text)
    known = remembered if remembered not in (None, UNDETERMINED) else None
    if known is None:
        if detected == UNDETERMINED and earlier:
            return detect_language(" ".join(earlier))
        return detected
    if detected == UNDETERMINED:
        return known
    if known == "zh" and detected == "en" and len(text.split()) <= SHORT_WORDS:
        return known
    return detected
