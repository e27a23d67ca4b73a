"""The Whoosh wrappers: same tokens as the pure chain, picklable, usable in an index."""

import pickle

from whoosh.fields import ID, TEXT, Schema
from whoosh.filedb.filestore import RamStorage
from whoosh.qparser import QueryParser

from indexer.analysis import analyze
from indexer.whoosh_analysis import exact_analyzer, stemmed_analyzer

SENTENCE = "وَقَالَ رَسُولُ اللَّهِ ﷺ: اقْرَءُوا الْقُرْآنَ فِي الْكِتَابِ"


def whoosh_tokens(analyzer, text, **kw):
    return [
        (t.text, t.pos, t.startchar, t.endchar)
        for t in analyzer(text, positions=True, chars=True, **kw)
    ]


def test_exact_analyzer_matches_pure_chain():
    pure = [(t.exact, t.position, t.start, t.end) for t in analyze(SENTENCE)]
    assert whoosh_tokens(exact_analyzer(), SENTENCE) == pure


def test_stemmed_analyzer_drops_stopwords_and_keeps_positions():
    pure = [(t.stem, t.position, t.start, t.end) for t in analyze(SENTENCE) if t.stem]
    got = whoosh_tokens(stemmed_analyzer(), SENTENCE)
    assert got == pure
    assert "في" not in [text for text, *_ in got]


def test_stopped_tokens_are_flagged_when_not_removed():
    # Whoosh's highlighter asks for stopwords with removestops=False.
    tokens = [(t.text, t.stopped) for t in stemmed_analyzer()("في البيت", removestops=False)]
    assert tokens == [("في", True), ("بيت", False)]


def test_analyzers_survive_pickling():
    # Whoosh pickles the schema, analyzers included, into the index.
    for analyzer in (exact_analyzer(), stemmed_analyzer()):
        clone = pickle.loads(pickle.dumps(analyzer))
        assert clone == analyzer
        assert whoosh_tokens(clone, SENTENCE) == whoosh_tokens(analyzer, SENTENCE)


def test_undiacritized_query_finds_vocalized_text_in_an_index():
    schema = Schema(id=ID(stored=True), body=TEXT(analyzer=stemmed_analyzer()))
    ix = RamStorage().create_index(schema)
    with ix.writer() as w:
        w.add_document(id="vocalized", body=SENTENCE)
        w.add_document(id="other", body="ذهب الولد إلى المدرسة")
    with ix.searcher() as s:
        parser = QueryParser("body", ix.schema)
        for query in ["الكتاب", "كتاب", "وبالكتاب", "القران"]:
            hits = [h["id"] for h in s.search(parser.parse(query))]
            assert hits == ["vocalized"], query
