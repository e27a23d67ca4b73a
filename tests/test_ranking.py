"""Ranking behaviours of issue #9: soft coordination, common words, proximity.

The collection: 120 short reports that all mention الناس (so it is a
common word: in more than COMMON_FRACTION of the documents and in at least
COMMON_MIN_DOCS of them), a third of them with عام and a third with العالم
(generic words, but not common ones), and documents built to show one rule
each. tests/test_ranking_equivalence.py
checks that the pruned path ranks exactly as the exhaustive one under these
rules; here each rule is checked for what a user sees.
"""

import pytest

from search_app import scoring
from search_app.engine import SearchEngine
from tests.conftest import index_records

PLACES = ["السوق", "المدينة", "القرية", "الساحة", "الميناء", "الجامعة"]
DAYS = ["السبت", "الأحد", "الاثنين", "الثلاثاء", "الأربعاء", "الخميس", "الجمعة", "الصباح", "المساء", "الليل"]

GENERIC = ["عن العام الماضي", "عن العالم", "عن الطقس"]  # a third each: عام, العالم, neither

FILLER = [
    {"id": f"report-{i}", "title": "تقرير",
     "text": f"اجتمع الناس في {PLACES[i % len(PLACES)]} يوم {DAYS[i % len(DAYS)]} وتحدثوا {GENERIC[i % 3]}"}
    for i in range(120)
]

DOCS = FILLER + [
    # Two generic words against one rare, decisive name.
    {"id": "generic", "title": "خبر", "text": "توفي في عام مضى رجل من العالم العربي"},
    {"id": "generic-2", "title": "خبر", "text": "في عام جديد يتغير العالم كله"},
    {"id": "generic-3", "title": "خبر", "text": "العالم في عام الحرب"},
    {"id": "name", "title": "خبر", "text": "ولد البخاري في بخارى وطلب الحديث صغيرا"},
    # Only the common word, many times, in a short text; and the rare word in a long one.
    {"id": "common-only", "title": "خبر", "text": "الناس الناس يقول الناس للناس"},
    {"id": "rare-long", "title": "خبر",
     "text": "رحل المحدث إلى مكة والمدينة والبصرة والكوفة وبغداد ودمشق ومصر ونيسابور ومرو وبلخ "
             "وسمع من شيوخ كثيرين وكتب عنهم وحفظ ثم عاد فصنف كتابه الذي سماه الصحيح "
             "وأخذ عنه الترمذي والنسائي وغيرهما من الأئمة وكان يقوم الليل ويصوم النهار ويكثر من "
             "قراءة القرآن ويتصدق على الفقراء والمساكين ويزور المرضى ويشيع الجنائز ويصل الرحم "
             "ويكرم الضيف ويحسن إلى الجيران حتى توفي في قرية قريبة من سمرقند بعد سفر طويل"},
    # The same words, far apart and close together (a stopword between them in the query).
    {"id": "far", "title": "خبر",
     "text": "صلاة الجماعة فضلها كبير وقد حث عليها العلماء والفقهاء قديما وحديثا وهي في المسجد"},
    {"id": "near", "title": "خبر",
     "text": "فضلها كبير وقد حث عليها العلماء والفقهاء قديما وحديثا صلاة الجماعة وهي في المسجد"},
]


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ranking")
    index_records(folder / "ix", DOCS)
    return folder / "ix"


@pytest.fixture(scope="module")
def engine(index):
    engine = SearchEngine(index, warmup=0)
    yield engine
    engine.close()


def first_hits(index, q):
    """Ids for `q` from a new engine (no result cache from another setting)."""
    engine = SearchEngine(index, warmup=0)
    try:
        return engine.search(q, limit=100)
    finally:
        engine.close()


def ids(result):
    return [h["id"] for h in result["hits"]]


def test_a_rare_name_outranks_two_generic_words(engine):
    # With strict tiers, "generic" (عام and العالم) outranked "name" (the one word
    # that says what the question is about).
    result = ids(engine.search("البخاري عام العالم", limit=20))
    assert result[0] == "name"
    assert {"generic", "generic-2", "generic-3"} <= set(result)


def test_a_document_with_every_word_still_ranks_first(engine):
    result = ids(engine.search("العالم عام توفي", limit=20))
    assert result[0] == "generic"  # the only one with all three words


def test_coordination_weights_the_words_by_rarity(engine):
    # A rare word (in one document) weighs more than a generic one (in 43).
    weights, rare = scoring.clause_weights(engine.view(), [_word(engine, "البخاري"), _word(engine, "العالم")])
    assert weights[0] > weights[1] > 0
    assert rare.all()


def _word(engine, text):
    from search_app.engine import Deadline
    from search_app.query import Word
    scorer, _, _, _ = engine._plan(engine.view(), Word(text, None), Deadline(10))
    return scorer


def test_a_common_word_never_lifts_a_document_above_a_rare_word(index, monkeypatch):
    # Without coordination, "common-only" (الناس four times in a short text) would
    # outscore "rare-long" (الترمذي once in a long text); the common-word rule
    # alone keeps it below every document with the rare word.
    monkeypatch.setattr(scoring, "COORD_POWER", 0.0)
    result = first_hits(index, "الترمذي الناس")
    assert ids(result)[0] == "rare-long"
    # Documents with only the common word still match and are counted.
    assert result["total"] == 1 + len(FILLER) + 1
    assert "common-only" in ids(result)

    monkeypatch.setattr(scoring, "COMMON_FRACTION", 1.0)  # no word is common
    assert ids(first_hits(index, "الترمذي الناس"))[0] == "common-only"


def test_when_every_word_is_common_they_rank_as_usual(engine):
    result = engine.search("الناس", limit=100)
    assert result["total"] == len(FILLER) + 1
    assert ids(result)[0] == "common-only"  # the most occurrences in the shortest text


def test_query_words_close_together_rank_above_words_far_apart(engine):
    # The query has a stopword (في) between its words; "far" comes first in
    # document order, so only proximity puts "near" above it.
    for q in ("الجماعة في المسجد", "صلاة الجماعة في المسجد"):
        result = ids(engine.search(q))
        assert result.index("near") < result.index("far"), q
