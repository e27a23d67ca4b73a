"""Tokenizer: whole vocalized words, original offsets."""

from indexer.analysis import analyze
from indexer.tokenize import word_spans


def spans(text):
    return [text[s:e] for s, e in word_spans(text)]


def test_vocalized_word_is_one_token():
    # Kasra inside الكِتابِ must not split the word (Python's \w misses harakat).
    assert spans("الكِتابِ") == ["الكِتابِ"]


def test_shadda_tanween_and_tatweel_stay_inside_the_word():
    assert spans("مُحَمَّدٌ جـــميل") == ["مُحَمَّدٌ", "جـــميل"]


def test_latin_words_and_numbers_are_tokens():
    assert spans("زار Macron الجزائر في 2024، ثم ١٩٦٢.") == [
        "زار", "Macron", "الجزائر", "في", "2024", "ثم", "١٩٦٢",
    ]


def test_arabic_punctuation_separates_words():
    # ARABIC COMMA, ARABIC SEMICOLON, ARABIC QUESTION MARK
    assert spans("نعم،لا؛ماذا؟") == ["نعم", "لا", "ماذا"]


def test_offsets_point_at_the_original_vocalized_word():
    text = "قَرَأْتُ وَالْكِتَابِ"
    tokens = analyze(text)
    kitab = [t for t in tokens if t.exact == "والكتاب"][0]
    assert text[kitab.start:kitab.end] == "وَالْكِتَابِ"
    assert kitab.stem == "كتاب"


def test_positions_count_words():
    assert [t.position for t in analyze("ذهب الولد إلى المدرسة")] == [0, 1, 2, 3]
