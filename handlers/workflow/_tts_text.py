"""Text prepared for a TTS model: what a person would say aloud, in chunks the model can take.

:func:`prepare_tts_text` strips markdown, emoji and control characters and speaks numbers and symbols (``"$5"`` ->
"five dollars", ``"50%"`` -> "fifty percent", ``"3.5"`` -> "three point five", years, ordinals, ``"&"`` -> "and").
:func:`split_sentences` and :func:`chunk_text` cut long text at sentence boundaries into chunks of at most N
characters, never inside a word, and do not end a sentence at abbreviations such as "Dr." or "e.g.". English only.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Final

from handlers.workflow._spoken_numbers import cardinal, decimal, ordinal, year

__all__ = ["chunk_text", "prepare_tts_text", "speak_numbers", "split_sentences", "strip_markdown"]

# -- markdown -------------------------------------------------------------------------------------------------------

_FENCE = re.compile(r"^\s*(```|~~~).*$", re.MULTILINE)
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_REF_LINK = re.compile(r"\[([^\]]+)\]\[[^\]]*\]")
_URL = re.compile(r"<?\bhttps?://[^\s>)]+>?")
_HTML_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)
_RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$", re.MULTILINE)
_QUOTE = re.compile(r"^\s{0,3}>\s?", re.MULTILINE)
_BULLET = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)])\s+", re.MULTILINE)
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$", re.MULTILINE)
_EMPHASIS = re.compile(r"(\*{1,3}|_{1,3}|~~)(?=\S)(.+?)(?<=\S)\1")
_INLINE_CODE = re.compile(r"`+([^`]*)`+")
_TERMINAL = frozenset(".!?:;…")


def strip_markdown(text: str) -> str:
    """Markdown reduced to its words: links keep their text, images their alt text, URLs and tags go, headings
    and list items become sentences of their own."""
    text = _FENCE.sub("", text)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _REF_LINK.sub(r"\1", text)
    text = _URL.sub("", text)
    text = _HTML_TAG.sub("", text)
    text = _RULE.sub("", text)
    text = _TABLE_RULE.sub("", text)
    text = _QUOTE.sub("", text)
    lines = []
    for raw in text.split("\n"):
        heading = _HEADING.match(raw)
        item = _BULLET.match(raw)
        line = heading.group(1) if heading else raw[item.end() :] if item else raw
        table = "|" in line
        if table:
            line = ", ".join(cell.strip() for cell in line.strip().strip("|").split("|") if cell.strip())
        if (heading or item or table) and line and line.rstrip()[-1] not in _TERMINAL:
            line = line.rstrip() + "."
        # A heading, list item or table row is said as a sentence of its own: a paragraph break ends the one before it.
        lines.append(f"\n{line}\n" if heading or item or table else line)
    text = "\n".join(lines)
    for _ in range(2):  # nested emphasis: ***bold italic*** or **_both_**
        text = _EMPHASIS.sub(r"\2", text)
    return _INLINE_CODE.sub(r"\1", text)


# -- emoji and control characters -----------------------------------------------------------------------------------

_KEEP_CONTROL: Final = frozenset("\n\t")


def _is_dropped(char: str) -> bool:
    if char in _KEEP_CONTROL:
        return False
    category = unicodedata.category(char)
    # Cc control, Cf format (zero-width joiner, variation selectors' kin, BOM, soft hyphen), Cs/Co surrogates and
    # private use, So other symbols (emoji, dingbats, arrows), Sk modifiers (skin tones), Mn marks left after emoji.
    if category in {"Cc", "Cf", "Cs", "Co", "So", "Sk"}:
        return True
    code = ord(char)
    return 0xFE00 <= code <= 0xFE0F or 0x1F3FB <= code <= 0x1F3FF or code == 0x20E3


def _drop_symbols(text: str) -> str:
    return "".join(" " if char in "\r\v\f\x85\u2028\u2029" else char for char in text if not _is_dropped(char))


# -- numbers and symbols --------------------------------------------------------------------------------------------

_CURRENCIES: Final = {"$": ("dollar", "dollars", "cent", "cents"), "€": ("euro", "euros", "cent", "cents")}
_CURRENCIES_MORE: Final = {"£": ("pound", "pounds", "penny", "pence"), "¥": ("yen", "yen", "sen", "sen")}
_ALL_CURRENCIES: Final = {**_CURRENCIES, **_CURRENCIES_MORE}
_SCALE_WORDS: Final = {"k": "thousand", "m": "million", "mn": "million", "b": "billion", "bn": "billion"}
_NUMBER: Final = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+"
_MONEY = re.compile(
    rf"(?P<sign>-)?(?P<cur>[$€£¥])\s?(?P<num>{_NUMBER})"
    r"(?:\s?(?P<scale>thousand|million|billion|trillion|[kK]|[mM]n?|[bB]n?)\b)?"
)
_PERCENT = re.compile(rf"(?P<sign>-)?(?P<num>{_NUMBER})\s?%")
_ORDINAL = re.compile(r"\b(?P<num>\d+)(?P<suffix>st|nd|rd|th)\b", re.IGNORECASE)
_TIME = re.compile(r"\b(?P<h>[01]?\d|2[0-3]):(?P<m>[0-5]\d)(?:\s?(?P<ampm>[ap])\.?m\b\.?)?(?!\d)", re.IGNORECASE)
_YEAR = re.compile(r"(?<![\d.,$€£¥-])\b(?P<num>1[1-9]\d\d|20\d\d)(?P<s>s)?\b(?![.,]?\d|\s?%)")
_PLAIN = re.compile(rf"(?<![\w.])(?P<sign>-)?(?P<num>{_NUMBER})(?![\w])")
_SYMBOLS: Final = (
    (re.compile(r"\s*&\s*"), " and "),
    (re.compile(r"(?<=\w)\s*\+\s*(?=\w)"), " plus "),
    (re.compile(r"(?<=\w)\s*=\s*(?=\w)"), " equals "),
    (re.compile(r"(?<=\w)\s*@\s*(?=\w)"), " at "),
    (re.compile(r"#(?=\d)"), "number "),
    (re.compile(r"(?<=\d)\s*°\s*C\b"), " degrees Celsius"),
    (re.compile(r"(?<=\d)\s*°\s*F\b"), " degrees Fahrenheit"),
    (re.compile(r"\s*°"), " degrees"),
    (re.compile(r"(?<=\d)\s*[x\u00d7]\s*(?=\d)"), " by "),
    (re.compile(r"~(?=\s*\d)"), "about "),
    (re.compile(r"(?<=\w)/(?=\w)"), " or "),
)
_ABBREVIATIONS_SPOKEN: Final = (
    (re.compile(r"\be\.g\.(?=\s|,|$)", re.IGNORECASE), "for example"),
    (re.compile(r"\bi\.e\.(?=\s|,|$)", re.IGNORECASE), "that is"),
    (re.compile(r"\betc\.(?=\s|,|$)"), "et cetera."),
    (re.compile(r"\bvs\.?(?=\s)"), "versus"),
)


def _number_words(text: str) -> str:
    clean = text.replace(",", "")
    if "." in clean:
        return decimal(clean)
    return cardinal(int(clean))


def _money(match: re.Match[str]) -> str:
    one, many, sub_one, sub_many = _ALL_CURRENCIES[match["cur"]]
    number = match["num"].replace(",", "")
    scale = match["scale"]
    minus = "minus " if match["sign"] else ""
    if scale:
        scale_word = _SCALE_WORDS.get(scale.lower(), scale.lower())
        return f"{minus}{_number_words(number)} {scale_word} {many}"
    whole, _, cents = number.partition(".")
    amount = int(whole or "0")
    unit = one if amount == 1 else many
    if not cents:
        return f"{minus}{cardinal(amount)} {unit}"
    if len(cents) == 2:
        sub = int(cents)
        sub_unit = sub_one if sub == 1 else sub_many
        if amount == 0:
            return f"{minus}{cardinal(sub)} {sub_unit}"
        return f"{minus}{cardinal(amount)} {unit}" + (f" and {cardinal(sub)} {sub_unit}" if sub else "")
    return f"{minus}{decimal(number)} {many}"


def _percent(match: re.Match[str]) -> str:
    return ("minus " if match["sign"] else "") + _number_words(match["num"]) + " percent"


def _time(match: re.Match[str]) -> str:
    hours, minutes = int(match["h"]), int(match["m"])
    ampm = f" {match['ampm'].upper()}M" if match["ampm"] else ""
    if ampm and match.group().endswith("."):
        rest = match.string[match.end() :].lstrip()
        ampm += "." if not rest or rest[0].isupper() else ""  # "p.m." ended the sentence too
    if minutes == 0:
        return f"{cardinal(hours)}{ampm or ' o clock'}".replace(" o clock", " o'clock")
    spoken = cardinal(minutes) if minutes >= 10 else f"oh {cardinal(minutes)}"
    return f"{cardinal(hours)} {spoken}{ampm}"


_YEAR_CONTEXT: Final = frozenset(
    [
        "in",
        "since",
        "from",
        "by",
        "until",
        "till",
        "year",
        "years",
        "of",
        "circa",
        "around",
        "before",
        "after",
        "during",
        "early",
        "late",
        "mid",
        "spring",
        "summer",
        "autumn",
        "fall",
        "winter",
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
        "class",
    ]
)


def _is_year(match: re.Match[str]) -> bool:
    if match["s"]:
        return True  # the 1990s
    before = match.string[: match.start()].rstrip()
    after = match.string[match.end() :].lstrip()
    if before.endswith("(") and after.startswith(")"):
        return True  # (1999)
    if re.search(r"\b[A-Z][a-z]+ \d{1,2},$", before):
        return True  # May 5, 2024
    previous = re.findall(r"[A-Za-z]+", before[-20:])
    return bool(previous) and previous[-1].lower() in _YEAR_CONTEXT


def _year(match: re.Match[str]) -> str:
    if not _is_year(match):
        return cardinal(int(match["num"]))
    words = year(int(match["num"]))
    if match["s"]:  # the 1990s
        return words[:-1] + "ies" if words.endswith("y") else words + "s"
    return words


def _plain(match: re.Match[str]) -> str:
    return ("minus " if match["sign"] else "") + _number_words(match["num"])


_NUMBER_RULES: Final[tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...]] = (
    (_MONEY, _money),
    (_PERCENT, _percent),
    (_TIME, _time),
    (_ORDINAL, lambda m: ordinal(int(m["num"]))),
    (_YEAR, _year),
    (_PLAIN, _plain),
)


def speak_numbers(text: str) -> str:
    """Numbers, amounts and symbols as words. A four-digit number from 1100 to 2099 standing alone is read as a year
    ("in 1999" -> "in nineteen ninety-nine"); write "1,999" for the quantity."""
    for pattern, spoken in _ABBREVIATIONS_SPOKEN:
        text = pattern.sub(spoken, text)
    for pattern, rule in _NUMBER_RULES[:2]:
        text = pattern.sub(rule, text)
    for pattern, replacement in _SYMBOLS:
        text = pattern.sub(replacement, text)
    for pattern, rule in _NUMBER_RULES[2:]:
        text = pattern.sub(rule, text)
    return text


_SPACES = re.compile(r"[ \t]+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?])")
_REPEATED_PUNCT = re.compile(r"([.!?])[.!?]*\.(?!\.)")


def prepare_tts_text(text: str) -> str:
    """``text`` as a TTS model should read it: plain words and sentence punctuation on one line per paragraph."""
    text = unicodedata.normalize("NFKC", text)
    text = strip_markdown(text)
    text = speak_numbers(text)  # before dropping symbols: it speaks some of them (degrees)
    text = _drop_symbols(text)
    text = text.replace("*", " ").replace("_", " ").replace("`", "").replace("|", ", ")
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        joined = " ".join(line.strip() for line in block.split("\n") if line.strip())
        joined = _SPACES.sub(" ", joined)
        joined = _SPACE_BEFORE_PUNCT.sub(r"\1", joined)
        joined = _REPEATED_PUNCT.sub(r"\1", joined).strip()
        if joined:
            paragraphs.append(joined)
    return "\n".join(paragraphs)


# -- sentences and chunks -------------------------------------------------------------------------------------------

#: Abbreviations after which a period never ends a sentence (titles, and Latin that always continues).
NEVER_ENDS: Final = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "mx",
        "dr",
        "prof",
        "sr",
        "jr",
        "st",
        "mt",
        "rev",
        "hon",
        "gen",
        "col",
        "lt",
        "sgt",
        "capt",
        "gov",
        "sen",
        "rep",
        "fr",
        "vs",
        "cf",
        "e.g",
        "i.e",
        "approx",
        "fig",
        "figs",
        "vol",
        "eq",
        "dept",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "a.m",
        "p.m",
        "u.s",
        "u.k",
    ]
)
#: Abbreviations that may end a sentence: a boundary only when a capital letter follows.
MAY_END: Final = frozenset(["etc", "inc", "ltd", "co", "corp", "al"])
_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*(?=\s+|$)")


def _is_boundary(text: str, end: int, match_text: str) -> bool:
    if not match_text.startswith("."):
        return True  # ! ? … always end
    start = text.rfind(" ", 0, end - len(match_text)) + 1
    word = text[start : end - len(match_text)].lstrip("\"'\u201c\u2018([").lower()
    following = text[end:].lstrip()
    if not following:
        return True
    if word in NEVER_ENDS or (len(word) == 1 and word.isalpha()):
        return False  # a title, a Latin abbreviation or an initial ("J. R. R. Tolkien")
    if word in ("no", "nos") and following[0].isdigit():
        return False  # "No. 5"
    if word in MAY_END or "." in word:
        return following[0].isupper()
    return not following[0].islower()


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``, their punctuation kept; line breaks between paragraphs end a sentence too."""
    sentences: list[str] = []
    for paragraph in re.split(r"\n+", text):
        start = 0
        for match in _SENTENCE_END.finditer(paragraph):
            if _is_boundary(paragraph, match.end(), match.group()):
                sentence = paragraph[start : match.end()].strip()
                if sentence:
                    sentences.append(sentence)
                start = match.end()
        rest = paragraph[start:].strip()
        if rest:
            sentences.append(rest)
    return sentences


_CLAUSE = re.compile(r"(?<=[,;:\u2014\u2013])\s+")


def _split_long(sentence: str, limit: int) -> list[str]:
    """A sentence longer than ``limit``: cut after clause punctuation where possible, else between words."""
    pieces: list[str] = []
    for clause in _CLAUSE.split(sentence):
        pieces.extend(_pack(clause.split(" "), limit) if len(clause) > limit else [clause])
    return _pack(pieces, limit)


def _pack(parts: list[str], limit: int) -> list[str]:
    chunks: list[str] = []
    current = ""
    for part in parts:
        if not part:
            continue
        candidate = f"{current} {part}" if current else part
        if len(candidate) <= limit or not current:
            current = candidate  # a single word longer than the limit stays whole: never cut mid-word
        else:
            chunks.append(current)
            current = part
    if current:
        chunks.append(current)
    return chunks


def chunk_text(text: str, max_chars: int = 300) -> list[str]:
    """``text`` cut into chunks of at most ``max_chars`` characters, whole sentences packed together; a sentence
    too long for one chunk is cut at a clause, then between words. Only a single word longer than ``max_chars``
    makes a longer chunk."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1 (got {max_chars})")
    pieces: list[str] = []
    for sentence in split_sentences(text):
        pieces.extend([sentence] if len(sentence) <= max_chars else _split_long(sentence, max_chars))
    return _pack(pieces, max_chars)
