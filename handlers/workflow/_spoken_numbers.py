"""English number words, for text-to-speech: cardinals, ordinals, years, decimals. Small on purpose (no
dependency): TTS needs the common cases said naturally, not every locale."""

from __future__ import annotations

from typing import Final

__all__ = ["cardinal", "decimal", "digits", "ordinal", "year"]

_ONES: Final = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS: Final = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES: Final = (
    (10**18, "quintillion"),
    (10**15, "quadrillion"),
    (10**12, "trillion"),
    (10**9, "billion"),
    (10**6, "million"),
    (1000, "thousand"),
)
_ORDINAL_WORDS: Final = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


def _below_thousand(n: int) -> str:
    words = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words.append(f"{_ONES[hundreds]} hundred")
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(_TENS[tens] + (f"-{_ONES[ones]}" if ones else ""))
    elif rest or not hundreds:
        words.append(_ONES[rest])
    return " ".join(words)


def cardinal(n: int) -> str:
    """``1234`` -> ``"one thousand two hundred thirty-four"``; negatives say "minus". Beyond quintillions the
    digits are read one by one (nobody says those numbers aloud)."""
    if n < 0:
        return "minus " + cardinal(-n)
    if n >= 10**21:
        return digits(str(n))
    words = []
    for scale, name in _SCALES:
        count, n = divmod(n, scale)
        if count:
            words.append(f"{_below_thousand(count)} {name}")
    if n or not words:
        words.append(_below_thousand(n))
    return " ".join(words)


def ordinal(n: int) -> str:
    """``21`` -> ``"twenty-first"``."""
    words = cardinal(n)
    head, sep, last = words.rpartition("-") if "-" in words.rsplit(" ", 1)[-1] else words.rpartition(" ")
    if last in _ORDINAL_WORDS:
        last = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + sep + last


def digits(text: str) -> str:
    """Each digit as a word: ``"042"`` -> ``"zero four two"``."""
    return " ".join(_ONES[int(c)] for c in text if c.isdigit())


def decimal(text: str) -> str:
    """``"3.14"`` -> ``"three point one four"`` (the fraction digit by digit, as people read it)."""
    whole, _, fraction = text.partition(".")
    spoken = cardinal(int(whole or "0"))
    return f"{spoken} point {digits(fraction)}" if fraction else spoken


def year(n: int) -> str:
    """``1999`` -> ``"nineteen ninety-nine"``, ``2005`` -> ``"two thousand five"``, ``2024`` -> ``"twenty
    twenty-four"``, ``1900`` -> ``"nineteen hundred"``."""
    if not 1000 <= n <= 9999:
        return cardinal(n)
    high, low = divmod(n, 100)
    if 2000 <= n <= 2009 or n % 1000 == 0:
        return cardinal(n)
    if low == 0:
        return f"{cardinal(high)} hundred"
    if low < 10:
        return f"{cardinal(high)} oh {_ONES[low]}"
    return f"{cardinal(high)} {cardinal(low)}"
