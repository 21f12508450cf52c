"""TTS text preparation: what a person would say, in chunks a TTS model can take."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers.workflow import chunk_text, prepare_tts_text, split_sentences
from handlers.workflow._dataset import caption_with_trigger
from handlers.workflow._spoken_numbers import cardinal, decimal, ordinal, year


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("It costs $5.", "It costs five dollars."),
        ("Only $1 today.", "Only one dollar today."),
        ("$1,250.50 in total", "one thousand two hundred fifty dollars and fifty cents in total"),
        ("$0.99", "ninety-nine cents"),
        ("$2.5M raised", "two point five million dollars raised"),
        ("€3 or £10", "three euros or ten pounds"),
        ("50% off", "fifty percent off"),
        ("3.5 kg", "three point five kg"),
        ("Rock & roll", "Rock and roll"),
        ("In 1999 we met.", "In nineteen ninety-nine we met."),
        ("since 2024", "since twenty twenty-four"),
        ("the 1990s", "the nineteen nineties"),
        ("in 2005", "in two thousand five"),
        ("It has 2048 pixels", "It has two thousand forty-eight pixels"),
        ("She came 1st, he 22nd.", "She came first, he twenty-second."),
        ("Meet at 3:30pm.", "Meet at three thirty PM."),
        ("-5 degrees, 20°C", "minus five degrees, twenty degrees Celsius"),
        ("a 3x4 grid", "a three by four grid"),
        ("Call #5", "Call number five"),
        ("apples, e.g. red ones", "apples, for example red ones"),
    ],
)
def test_numbers_and_symbols_are_spoken(text: str, spoken: str) -> None:
    assert prepare_tts_text(text) == spoken


def test_markdown_emoji_and_control_characters_go() -> None:
    text = (
        "# Big **news** 🎉\n\n"
        "Read [the post](https://example.com/post) or visit https://example.com now\u200b!\x07\n"
        "- first point\n"
        "- second `point`\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n"
        "> quoted 👍🏽 _text_\n"
    )
    assert prepare_tts_text(text) == (
        "Big news.\nRead the post or visit now!\nfirst point.\nsecond point.\na, b.\none, two.\nquoted text"
    )


def test_number_words() -> None:
    assert cardinal(0) == "zero"
    assert cardinal(1_234_567) == "one million two hundred thirty-four thousand five hundred sixty-seven"
    assert cardinal(-12) == "minus twelve"
    assert [ordinal(n) for n in (1, 2, 3, 12, 20, 21, 100)] == [
        "first",
        "second",
        "third",
        "twelfth",
        "twentieth",
        "twenty-first",
        "one hundredth",
    ]
    assert [year(n) for n in (1905, 1900, 2000, 2010, 1066)] == [
        "nineteen oh five",
        "nineteen hundred",
        "two thousand",
        "twenty ten",
        "ten sixty-six",
    ]
    assert decimal("3.14") == "three point one four"


def test_sentences_ignore_abbreviations_and_initials() -> None:
    text = "Dr. Smith met Mr. J. R. Jones, e.g. at 5 p.m. on Main St. today. It rained! Did it? Yes, etc. Fine."
    assert split_sentences(text) == [
        "Dr. Smith met Mr. J. R. Jones, e.g. at 5 p.m. on Main St. today.",
        "It rained!",
        "Did it?",
        "Yes, etc.",
        "Fine.",
    ]


def test_paragraph_breaks_end_sentences() -> None:
    assert split_sentences("First line\nSecond line.") == ["First line", "Second line."]


def test_chunks_pack_whole_sentences() -> None:
    text = "One two three. Four five six. Seven eight nine. Ten."
    assert chunk_text(text, 30) == ["One two three. Four five six.", "Seven eight nine. Ten."]


def test_a_long_sentence_is_cut_at_a_clause_then_between_words() -> None:
    sentence = "This sentence is long, it has a clause, and then it goes on and on without a break at all."
    chunks = chunk_text(sentence, 40)
    assert chunks[0] == "This sentence is long, it has a clause,"
    assert all(len(c) <= 40 for c in chunks)
    assert " ".join(chunks) == sentence


def test_a_word_longer_than_the_limit_stays_whole() -> None:
    assert chunk_text("Hi supercalifragilistic end.", 10) == ["Hi", "supercalifragilistic", "end."]


def test_chunk_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_chars"):
        chunk_text("text", 0)


_WORDS = st.lists(
    st.sampled_from(["a", "cat", "Dr.", "sat.", "on", "the", "mat!", "e.g.", "why?", "and,", "longerword", "It"]),
    min_size=1,
    max_size=60,
)


@given(words=_WORDS, limit=st.integers(min_value=12, max_value=80))
def test_chunks_keep_every_word_and_the_limit(words: list[str], limit: int) -> None:
    text = " ".join(words)
    chunks = chunk_text(text, limit)
    assert " ".join(chunks).split() == text.split()  # nothing lost, nothing cut inside a word
    assert all(len(c) <= limit for c in chunks)


def test_prepared_text_has_no_digits_or_markup() -> None:
    prepared = prepare_tts_text("**Total:** $12.30 (25%) on 3/4 🚀 \u2013 call 555 *now*")
    assert not re.search(r"[\d*$%🚀]", prepared)


@pytest.mark.parametrize(
    ("caption", "trigger", "expected"),
    [
        ("a woman smiling", "ohwx", "ohwx, a woman smiling"),
        ("ohwx  woman smiling", "ohwx", "ohwx woman smiling"),
        ("", "ohwx", "ohwx"),
        ("ohwxman at the beach", "ohwx", "ohwx, ohwxman at the beach"),
    ],
)
def test_captions_get_the_trigger_word(caption: str, trigger: str, expected: str) -> None:
    assert caption_with_trigger(caption, trigger) == expected
