"""Normalization rules, one behaviour per test (a superset of Lucene's)."""

import pytest

from indexer.normalize import normalize, words


@pytest.mark.parametrize(
    "written, expected",
    [
        ("أحمد", "احمد"),  # alef with hamza above
        ("إسلام", "اسلام"),  # alef with hamza below
        ("آمن", "امن"),  # alef with madda
        ("ٱلرحمن", "الرحمن"),  # alef wasla (Qur'anic spelling)
        ("مستشفى", "مستشفي"),  # alef maksura -> yeh
        ("مدرسة", "مدرسه"),  # teh marbuta -> heh
        ("فارسی", "فارسي"),  # Farsi yeh -> Arabic yeh
        ("کتاب", "كتاب"),  # keheh -> kaf
    ],
)
def test_letter_folds(written, expected):
    assert normalize(written) == expected


def test_harakat_shadda_sukun_and_tanween_are_removed():
    assert normalize("مُحَمَّدٌ") == "محمد"
    assert normalize("كِتَابًا") == "كتابا"


def test_tatweel_is_removed():
    assert normalize("جـــمـيـل") == "جميل"


def test_decomposed_hamza_matches_composed():
    # ALEF + ARABIC HAMZA ABOVE (NFD) must equal أ, then fold like it.
    assert normalize("\u0627\u0654حمد") == normalize("أحمد") == "احمد"


def test_presentation_forms_fold_to_letters():
    # ARABIC LIGATURE LAM WITH ALEF ISOLATED FORM, and isolated-form letters.
    assert normalize("\ufefb") == "لا"
    assert normalize("\ufedf\ufe8e") == normalize("لا")


def test_hamza_on_waw_and_yeh_stay_distinct():
    assert normalize("مسؤول") == "مسؤول"
    assert normalize("رئيس") == "رئيس"
    # رؤى (visions) must not become روى (he narrated).
    assert normalize("رؤى") != normalize("روى")


def test_quranic_marks_are_removed():
    # ARABIC SMALL HIGH LIGATURE SAD WITH LAM WITH ALEF MAKSURA, SMALL HIGH MEEM ISOLATED FORM,
    # and the small high rounded zero over a letter.
    assert normalize("ٱلْكِتَٰبُ\u06d6") == "الكتب"
    assert normalize("\u06da\u06e2لا") == "لا"
    assert normalize("أَكْبَرُ\u06df") == "اكبر"


def test_zero_width_and_bidi_controls_are_removed():
    # ZERO WIDTH NON-JOINER, RIGHT-TO-LEFT MARK, ARABIC LETTER MARK, BOM inside the word.
    assert normalize("ال\u200cكتاب\u200f") == "الكتاب"
    assert normalize("\u061cمرحبا\ufeff") == "مرحبا"


@pytest.mark.parametrize("digits", ["٢٠٢٤", "۲۰۲۴", "2024"])
def test_arabic_indic_digits_become_ascii(digits):
    # ARABIC-INDIC and EXTENDED ARABIC-INDIC digits.
    assert normalize(digits) == "2024"


def test_latin_is_casefolded_without_accents():
    assert normalize("L'Algérie") == "l'algerie"
    assert normalize("ÉCOLE") == "ecole"
    assert normalize("Straße") == "strasse"


def test_normalize_is_idempotent_on_mixed_text():
    text = "قالَ ﷺ: «إنَّ الله» Algérie ١٢٣ ﻻ"
    once = normalize(text)
    assert normalize(once) == once


def test_ligature_expands_to_words():
    # ARABIC LIGATURE SALLALLAHOU ALAYHE WASALLAM is a whole phrase.
    assert words(normalize("\ufdfa")) == ["صلي", "الله", "عليه", "وسلم"]


def test_empty_and_ascii():
    assert normalize("") == ""
    assert normalize("Hello World") == "hello world"
