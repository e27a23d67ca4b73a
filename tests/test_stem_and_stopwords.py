"""Light stemming and stopwords on the analysed stream."""

import pytest

from indexer.analysis import analyze
from indexer.stem import _strip_suffixes, stem, stem_exclusions
from indexer.stopwords import parse_stopwords, stopwords


def stems(text):
    return [t.stem for t in analyze(text)]


def test_prefix_variants_share_a_stem():
    # الكتاب / كتاب / والكتاب / بالكتاب all index كتاب.
    assert {stem(w) for w in ["الكتاب", "كتاب", "والكتاب", "بالكتاب", "فالكتاب"]} == {"كتاب"}


def test_plural_suffixes_are_removed():
    assert stem("معلمون") == stem("معلمين") == stem("معلمات") == "معلم"


def test_short_words_are_protected():
    # و- needs four letters: ولد (boy) is not و + لد.
    assert stem("ولد") == "ولد"
    assert stem("الو") == "الو"


def test_vocalized_stopwords_are_caught():
    # مِنْ and عَلَى (with alef maksura) are stopwords once normalized.
    assert stems("مِنْ البيت عَلَى الطاولة") == [None, "بيت", None, "طاول"]


def test_hamza_less_spelling_of_a_stopword_is_caught():
    assert "ان" in stopwords()  # the list writes أن and إن
    assert stems("ان") == [None]


def test_exact_stream_keeps_stopwords():
    tokens = analyze("في الجزائر")
    assert [t.exact for t in tokens] == ["في", "الجزائر"]
    assert [t.stem for t in tokens] == [None, "جزائر"]


def test_stopword_file_parsing_ignores_comments_and_normalizes():
    # Hamza and harakat are normalized away; alef maksura is kept (see below).
    assert parse_stopwords(["# comment", "إلى  # to", "", "عَلَى"]) == frozenset({"الى", "على"})


def test_stopwords_are_removed_before_yeh_and_alef_maksura_merge():
    # على (on) is a stopword; علي, the name Ali, folds to the same exact form
    # but keeps its stem (and light10 does not cut it to عل).
    on, ali = analyze("على"), analyze("علي")
    assert on[0].exact == ali[0].exact == "علي"
    assert on[0].stem is None
    assert ali[0].stem == "علي"
    assert [t.stem for t in analyze("قال علي بن أبي طالب")][1] == "علي"


@pytest.mark.parametrize("written", ["في", "فى", "حتى", "حتي", "الذي", "الذى", "هي", "هى"])
def test_stopwords_written_with_either_final_letter_are_caught(written):
    assert stems(written) == [None]


def test_stem_cache_returns_same_result():
    stem.cache_clear()
    first = stem("والمعلمون")
    assert stem("والمعلمون") == first == "معلم"
    assert stem.cache_info().hits >= 1


def test_conjunction_then_article_is_removed():
    # Deviation from Lucene (which gives بالكتاب): و then بال, as Larkey's light10.
    assert stem("وبالكتاب") == "كتاب"
    assert stem("وللطلاب") == "طلاب"
    # ...but never a second single-letter prefix, and never below two letters.
    assert stem("وولد") == "ولد"
    assert stem("والد") == "الد"  # as Lucene: وال would leave one letter


def stem_of(word):
    return analyze(word)[0].stem


# Pairs light10 merges by cutting a suffix off the first word: the stem
# exclusion set keeps them apart.
MERGED_BY_LIGHT10 = [
    ("الإنسان", "أنس"),  # human / the name Anas
    ("عمران", "عمر"),  # (Al) Imran / Umar
    ("الآخرة", "آخر"),  # the hereafter / other
    ("سليمان", "سليم"),  # Sulayman / Salim
    ("الإيمان", "أيم"),  # faith / widow
]


@pytest.mark.parametrize("word, other", MERGED_BY_LIGHT10)
def test_excluded_words_do_not_merge_with_another_word(word, other):
    assert stem_of(word) != stem_of(other)


def test_excluded_words_still_lose_their_prefixes():
    # القرآن with the article, with و + article and with ب + article: one stem.
    assert stem_of("القرآن") == stem_of("والقرآن") == stem_of("بالقرآن") == stem_of("قرآن") == "قران"
    assert stem_of("الآخرة") == stem_of("والآخرة") == "اخره"


def test_names_keep_their_last_letter():
    assert [stem_of(w) for w in ("موسى", "عيسى", "يحيى", "هارون")] == ["موسي", "عيسي", "يحيي", "هارون"]


def test_every_exclusion_entry_is_a_word_light10_would_change():
    """An entry light10 leaves alone would only lengthen the list."""
    for word in stem_exclusions():
        assert _strip_suffixes(word) != word, word


@pytest.mark.parametrize("written, stem_expected", [
    ("كتاباً", "كتاب"),  # tanween fath, the alef written
    ("سلاما", "سلام"),
    ("مسلما", "مسلم"),
    ("رسولا", "رسول"),
])
def test_accusative_alef_is_dropped(written, stem_expected):
    assert stem_of(written) == stem_expected == stem_of(stem_expected)


@pytest.mark.parametrize("word", [
    "علما",  # four letters: too short to tell from a word ending in alef
    "كتابنا",  # نا: "our"
    "كتبوا",  # وا: the verb's plural
    "سوريا",  # يا: a country, not سوري (Syrian)
    "دنيا",
])
def test_alef_that_is_not_accusative_stays(word):
    assert stem_of(word).endswith("ا")


def test_fused_question_words_are_stopwords():
    # ماهي حكم / ماهو / بماذا, typed without the space.
    assert stems("ماهي ماهو بماذا") == [None, None, None]
    assert stems("ماهي الصلاة")[1] == stem_of("الصلاة")
