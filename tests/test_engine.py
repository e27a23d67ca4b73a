"""The search engine core (no Flask): matching, ranking, snippets, filters, reopening."""


import pytest
from whoosh.query import Or, Term

import schema
from indexer.maintenance import delete_documents
from search_app.engine import QueryError, SearchEngine
from tests.conftest import index_records

DOCS = [
    # The vocalized text a user must find without typing diacritics.
    {"id": "vocal", "title": "في فضل العلم", "text": "قَالَ: مَنْ قَرَأَ وَالْكِتَابِ فَلَهُ أَجْرٌ", "source": "hadith",
     "tags": ["علم"], "date": "2001-05-01"},
    # Exact form الكتاب vs a stem-only form كتابه, same length.
    {"id": "exact", "title": "خبر", "text": "قرأ الطالب الكتاب في البيت", "source": "news", "date": "2015-01-24",
     "tags": ["تعليم"]},
    {"id": "stem-only", "title": "خبر", "text": "قرأ الطالب كتابه في البيت", "source": "news", "date": "2016-03-02",
     "tags": ["تعليم"]},
    # Words together (a phrase) vs the same words apart.
    {"id": "together", "title": "حديث", "text": "قال رسول الله للناس خيرا", "source": "hadith"},
    {"id": "apart", "title": "حديث", "text": "قال رسول كريم إن الله يحب الناس", "source": "hadith"},
    {"id": "algeria", "title": "اجتماع أمني", "text": "عقد اجتماع في الجزائر بين الوزراء", "source": "news",
     "date": "2015-01-20", "tags": ["الجزائر", "أمن"]},
    {"id": "algeria-2", "title": "الجزائر اليوم", "text": "الجزائر وفرنسا تبحثان التعاون", "source": "news",
     "date": "2014-12-31", "tags": ["الجزائر"]},
    {"id": "quran", "title": "سورة الفاتحة", "text": "ٱلْحَمْدُ لِلَّهِ رَبِّ ٱلْعَٰلَمِينَ", "source": "quran"},
    {"id": "xss", "title": "<script>alert(1)</script>", "text": "نص <b>غامق</b> & رموز", "source": "test"},
]


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    folder = tmp_path_factory.mktemp("engine")
    index_records(folder / "ix", DOCS)
    return folder / "ix"


@pytest.fixture(scope="module")
def engine(index):
    return SearchEngine(index)


def ids(result):
    return [h["id"] for h in result["hits"]]


def test_undiacritized_query_finds_and_marks_the_vocalized_word(engine):
    for query in ["الكتاب", "كتاب", "وبالكتاب"]:
        result = engine.search(query)
        assert "vocal" in ids(result), query
    hit = next(h for h in engine.search("الكتاب")["hits"] if h["id"] == "vocal")
    assert "<mark>وَالْكِتَابِ</mark>" in hit["snippet"]


def test_missing_hamza_and_dagger_alef(engine):
    assert "algeria" in ids(engine.search("امني"))  # أمني typed without hamza
    assert ids(engine.search("العالمين")) == ["quran"]  # ٱلْعَٰلَمِينَ


def test_exact_form_ranks_above_stem_only(engine):
    assert ids(engine.search("الكتاب", source="news")) == ["exact", "stem-only"]


def test_words_together_rank_above_words_apart(engine):
    result = ids(engine.search("رسول الله"))
    assert result.index("together") < result.index("apart")


def test_all_words_rank_above_some(engine):
    result = ids(engine.search("الجزائر فرنسا"))
    assert result[0] == "algeria-2"  # has both words
    assert "algeria" in result  # has one of them


def test_quoted_phrase_keeps_stopwords(engine):
    assert ids(engine.search('"في الجزائر"')) == ["algeria"]
    # In the other order the phrase is in no document: its words are searched, and the answer says so.
    reversed_order = engine.search('"الجزائر في"')
    assert reversed_order["searched_for"] == "الجزائر في" and engine.search('"في الجزائر"')["searched_for"] is None


def test_exclusion_or_fields_and_source(engine):
    assert ids(engine.search("الجزائر -فرنسا")) == ["algeria"]
    assert set(ids(engine.search("فرنسا OR الوزراء"))) == {"algeria", "algeria-2"}
    assert ids(engine.search("title:الجزائر")) == ["algeria-2"]
    assert set(ids(engine.search("source:hadith"))) == {"vocal", "together", "apart"}
    assert set(ids(engine.search("الله source:hadith"))) == {"together", "apart"}


def test_prefix_and_fuzzy(engine):
    assert {"algeria", "algeria-2"} <= set(ids(engine.search("الجزا*")))
    assert "algeria" in ids(engine.search("الجزاير~"))  # one letter off


def test_punctuation_and_malformed_syntax_never_fail(engine):
    assert "algeria" in ids(engine.search("ماذا حدث في الجزائر؟"))
    for query in ['"', '"الجزائر', "-", "OR", "title:", "*", "الجزائر*?", "((", "foo:bar", "؟ ، ؛", "ج*"]:
        result = engine.search(query)
        assert result["total"] >= 0


def test_filters_facets_and_date_sort(engine):
    result = engine.search("الجزائر OR الكتاب")
    assert result["facets"]["source"]["news"] == 4
    assert result["facets"]["tags"]["الجزائر"] == 2
    assert set(ids(engine.search("الجزائر OR الكتاب", tag="تعليم"))) == {"exact", "stem-only"}
    dated = engine.search("الجزائر OR الكتاب", date_from="2015-01-01", date_to="2015-12-31")
    assert set(ids(dated)) == {"exact", "algeria"}
    by_date = engine.search("الجزائر OR الكتاب", sort="date", source="news")
    assert ids(by_date) == ["stem-only", "exact", "algeria", "algeria-2"]
    assert by_date["hits"][0]["date"] == "2016-03-02"


def test_every_hit_has_fields_and_a_score(engine):
    hit = engine.search("الجزائر", limit=1)["hits"][0]
    assert set(hit) == {"id", "score", "title", "snippet", "url", "date", "source", "tags"}
    assert hit["score"] > 0


def test_html_is_escaped(engine):
    hit = engine.search("غامق")["hits"][0]
    assert hit["title"] == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert "&lt;b&gt;<mark>غامق</mark>&lt;/b&gt; &amp;" in hit["snippet"]


def test_did_you_mean_and_keyboard_layout(engine):
    assert engine.search("الجزاير")["suggestion"] == "الجزائر"
    result = engine.search("hgpl]")  # الحمد typed on a Latin layout
    assert result["searched_for"] == "الحمد" and ids(result) == ["quran"]


def test_pagination(engine):
    first = engine.search("الجزائر OR الكتاب OR الله", limit=2, page=1)
    second = engine.search("الجزائر OR الكتاب OR الله", limit=2, page=2)
    assert first["total"] == second["total"] >= 4
    assert not set(ids(first)) & set(ids(second))


@pytest.mark.parametrize("kwargs, message", [
    ({"q": ""}, "q is required"),
    ({"q": "ا" * 600}, "too long"),
    ({"q": "x", "limit": 0}, "limit must be between 1 and 100"),
    ({"q": "x", "limit": 101}, "limit must be between 1 and 100"),
    ({"q": "x", "page": 0}, "page must be 1 or more"),
    ({"q": "x", "page": 500, "limit": 100}, "too deep"),
    ({"q": "x", "date_from": "24/01/2015"}, "date_from must be a date"),
    ({"q": "x", "sort": "popular"}, "sort must be"),
])
def test_bad_requests_say_what_to_fix(engine, kwargs, message):
    with pytest.raises(QueryError, match=message):
        engine.search(**kwargs)


def test_time_limit_flags_partial(index):
    slow = SearchEngine(index, time_limit=0.0)
    assert slow.search("الجزائر الكتاب")["partial"] is True


def test_documents_and_suggestions(engine):
    doc = engine.document("vocal", q="الكتاب")
    assert "<mark>وَالْكِتَابِ</mark>" in doc["text_html"]
    assert engine.document("nope") is None
    assert "الجزائر" in engine.suggest("الجز")
    assert engine.health()["documents"] == len(DOCS)


def test_scores_are_whoosh_bm25f(engine):
    """Our vectorised scores equal Whoosh's own BM25F for the same term query."""
    view = engine.view()
    for word in ["الجزائر", "الكتاب", "الله"]:
        result = engine.search(word, limit=100)
        terms = []
        from indexer.analysis import analyze

        token = analyze(word)[0]
        pairs = [("text", token.stem), ("title", token.stem), ("text_exact", token.exact),
                 ("title_exact", token.exact)] + [("text_root", r) for r in token.roots]
        for field, text in pairs:
            terms.append(Term(field, text, boost=schema.FIELD_BOOSTS[field]))
        whoosh_hits = view.searcher.search(Or(terms), limit=None)
        expected = {h["id"]: round(h.score, 4) for h in whoosh_hits}
        assert {h["id"]: h["score"] for h in result["hits"]} == pytest.approx(expected, abs=1e-3)


def test_new_commits_merges_and_rebuilds_are_seen_without_duplicates(tmp_path):
    index = tmp_path / "ix"
    index_records(index, DOCS)
    engine = SearchEngine(index)
    assert engine.search("الجزائر")["total"] == 2
    # Several commits, then a merge of all segments (optimize), as a writer
    # in another process would do.
    for i in range(3):
        extra = [{"id": f"new-{i}", "title": "جديد", "text": "خبر جديد عن الجزائر"}]
        index_records(index, extra)
        assert engine.search("الجزائر")["total"] == 3 + i
    from indexer import store
    from indexer.segment_writer import FastSegmentWriter

    ix = store.open_index(index)
    writer = FastSegmentWriter(ix)
    writer.commit(optimize=True)
    result = engine.search("الجزائر", limit=100)
    assert result["total"] == 5
    assert len(ids(result)) == len(set(ids(result))) == 5
    delete_documents(index, ["new-0"])
    assert engine.search("الجزائر")["total"] == 4
    index_records(index, DOCS[:1], rebuild=True)
    assert engine.health()["documents"] == 1
    assert engine.search("الجزائر")["total"] == 0


def test_query_typed_with_dagger_alef_or_ligature(engine):
    # ٱلْعَٰلَمِينَ typed as in the mushaf: either of its spellings matches.
    # (The spelling without the alef, العلمين, also stems like العلم, so the
    # title "في فضل العلم" matches too, lower.)
    assert ids(engine.search("ٱلْعَٰلَمِينَ"))[0] == "quran"
    # "الحمد,لله" without a space: both words are required.
    assert ids(engine.search("الحمد,لله")) == ["quran"]


def test_did_you_mean_leaves_real_words_and_stopwords_alone(tmp_path):
    # معنى is in no document as written, but its stem is (والمعنى): a real
    # word, not a typo of the more frequent مني. الي is a stopword's spelling.
    records = [{"id": f"d{i}", "title": "خبر", "text": text} for i, text in enumerate([
        "هذا والمعنى في اللغة", "منى ومنى ومني في الطريق", "مني الطالب", "مني", "ذهب الى السوق"])]
    index_records(tmp_path / "ix", records)
    engine = SearchEngine(tmp_path / "ix", warmup=0)
    assert engine.search("معنى")["suggestion"] is None
    assert engine.search("الي السوق")["suggestion"] is None
    # A word found in no form still gets one: السوك -> السوق.
    assert engine.search("السوك")["suggestion"] == "السوق"


def test_a_quoted_question_found_nowhere_searches_its_words(engine):
    # Pasted in quotes, a question is one exact phrase: no document has it.
    result = engine.search('"الحمد في الكتاب"')
    assert result["total"] > 0 and result["searched_for"] == "الحمد في الكتاب"
    assert result["hits"] == engine.search("الحمد في الكتاب")["hits"]
    # A phrase that is found stays a phrase.
    assert engine.search('"الحمد لله"')["searched_for"] is None
    # One quoted word is not a phrase to loosen.
    assert engine.search('"زززز"')["searched_for"] is None
