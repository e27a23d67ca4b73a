"""The recall stream's roots (indexer.roots) and the vocalization rule (indexer.vocalization)."""

import pytest

from indexer.analysis import analyze
from indexer.normalize import normalize
from indexer.roots import PROCLITIC_MIN_LETTERS, root, roots
from indexer.vocalization import compatible, is_vocalized


def roots_of(word):
    return analyze(word)[0].roots


# ISRI roots as nltk 3.10.4's ISRIStemmer gives them (indexer/isri.py is its
# code, vendored; on the bundled sample's 43,274 distinct words the two agreed).
ISRI_VECTORS = [
    ("مدرسة", "درس"), ("مدارس", "درس"), ("يكتبون", "كتب"), ("والكتاب", "كتب"),
    ("استخراج", "خرج"), ("رسول", "رسل"), ("ببغداد", "غدد"),
]


@pytest.mark.parametrize("word, expected", ISRI_VECTORS)
def test_isri_roots_match_nltk(word, expected):
    assert root(normalize(word)) == expected


@pytest.mark.parametrize("a, b", [
    ("مدرسة", "مدارس"),  # school, schools: light10 keeps them apart
    ("كتاب", "يكتبون"),  # a book, they write
    ("استخراج", "خرج"),  # extraction, he went out
])
def test_words_of_one_root_meet_in_the_recall_stream(a, b):
    assert set(roots_of(a)) & set(roots_of(b))
    assert analyze(a)[0].stem != analyze(b)[0].stem  # ...and only there


@pytest.mark.parametrize("written, place", [("ببغداد", "بغداد"), ("لباريس", "باريس"), ("بسوسة", "سوسة")])
def test_a_lone_proclitic_also_gives_the_root_without_it(written, place):
    assert set(roots_of(place)) <= set(roots_of(written))


def test_short_words_and_articles_are_not_taken_as_lone_proclitics():
    assert len(roots(normalize("بيت"))) == 1  # بيت (a house): too short to carry one
    assert len("بيت") < PROCLITIC_MIN_LETTERS
    # بال and لل are light10's prefixes, not a lone ب or ل.
    assert roots(normalize("بالمدرسة")) == (root(normalize("بالمدرسة")),)
    assert roots(normalize("للمدرسة")) == (root(normalize("للمدرسة")),)


def test_stopwords_have_no_roots():
    assert roots_of("على") == ()
    assert roots_of("في") == ()


def test_root_search_finds_a_passage_sharing_only_the_root(tmp_path):
    from search_app.engine import SearchEngine
    from tests.conftest import index_records

    index_records(tmp_path / "ix", [
        {"id": "schools", "title": "تعليم", "text": "افتتحت الوزارة مدارس جديدة في الجنوب"},
        {"id": "school", "title": "تعليم", "text": "زار الوزير مدرسة البنات"},
        {"id": "other", "title": "رياضة", "text": "فاز الفريق بالمباراة"},
    ])
    engine = SearchEngine(tmp_path / "ix", warmup=0)
    try:
        hits = [h["id"] for h in engine.search("مدرسة")["hits"]]
        assert hits == ["school", "schools"]  # the word itself first, its root after
    finally:
        engine.close()


@pytest.mark.parametrize("query, written", [
    ("عِلْم", "علم"),  # unvocalized text never disagrees
    ("عِلْمُ", "عِلْمِ"),  # the case ending (last letter) is not compared
    ("عِلْم", "عِلْمٌ"),
    ("عَلِمَ", "عَلِم"),  # partial marks agree where they are written
])
def test_compatible_vocalizations(query, written):
    assert compatible(query, written)


@pytest.mark.parametrize("query, written", [
    ("عِلْم", "عَلِمَ"),  # knowledge / he knew
    ("عَلِمَ", "عَلَّمَ"),  # he knew / he taught (a shadda only in one)
    ("كُتُب", "كَتَبَ"),  # books / he wrote
])
def test_incompatible_vocalizations(query, written):
    assert not compatible(query, written)


def test_only_marks_before_the_last_letter_make_a_word_vocalized():
    assert is_vocalized("عِلْم")
    assert not is_vocalized("علمٌ")  # a case ending alone says nothing about the word
    assert not is_vocalized("علم")


def test_vocalized_query_ranks_compatible_documents_first(tmp_path):
    from search_app.engine import SearchEngine
    from tests.conftest import index_records

    # Same letters, same length, same other words: only the harakat differ.
    # "knew" comes first in document order, so without the rule it would lead.
    index_records(tmp_path / "ix", [
        {"id": "knew", "title": "نص", "text": "قَالَ الرَّجُلُ: عَلِمَ النَّاسُ ذَلِكَ"},
        {"id": "knowledge", "title": "نص", "text": "قَالَ الرَّجُلُ: عِلْمُ النَّاسِ ذَلِكَ"},
    ])
    engine = SearchEngine(tmp_path / "ix", warmup=0)
    try:
        assert [h["id"] for h in engine.search("عِلْم")["hits"]] == ["knowledge", "knew"]
        assert [h["id"] for h in engine.search("عَلِمَ")["hits"]] == ["knew", "knowledge"]
        assert [h["id"] for h in engine.search("علم")["hits"]][0] == "knew"  # no harakat: no rule
    finally:
        engine.close()
