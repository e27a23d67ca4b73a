"""The bundled sample corpus and its cached index."""

from whoosh.qparser import QueryParser

from indexer import store
from indexer.records import read_input
from indexer.records import Document
from indexer.sample import ensure_sample_index, sample_path


def test_sample_corpus_is_clean_and_contains_the_seed_article():
    items = list(read_input(str(sample_path())))
    docs = [i for i in items if isinstance(i, Document)]
    assert len(docs) == len(items) >= 300  # no bad records, no warnings
    assert len({d.id for d in docs}) == len(docs)
    assert all(d.source for d in docs)
    seed = [d for d in docs if d.id == "seed-article"]
    assert seed and seed[0].title.startswith("اجتماع أمني مرتقب بين الجزائر وفرنسا")


def test_sample_index_is_built_once_then_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("ARSEARCH_HOME", str(tmp_path / "home"))
    directory = ensure_sample_index()
    assert directory == tmp_path / "home" / "sample-index"
    generation = store.live_path(directory)
    assert ensure_sample_index() == directory
    assert store.live_path(directory) == generation  # not rebuilt
    ix = store.open_index(directory)
    with ix.searcher() as s:
        # The seed article is searchable, and an undiacritized word finds the Qur'an.
        hits = s.search(QueryParser("text", ix.schema).parse("الجزائر"), limit=None)
        assert "seed-article" in [h["id"] for h in hits]
        hits = s.search(QueryParser("text_exact", ix.schema).parse("العالمين"), limit=None)
        assert any(h["id"].startswith("quran:") for h in hits)


def test_sample_index_is_rebuilt_when_the_analysis_version_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("ARSEARCH_HOME", str(tmp_path / "home"))
    directory = ensure_sample_index()
    old = store.live_path(directory)
    store.write_meta(old, analysis_version=store.ANALYSIS_VERSION - 1)
    ensure_sample_index()
    assert store.live_path(directory) != old
    assert store.check_version(directory)


def test_a_damaged_sample_index_is_built_again(tmp_path, monkeypatch):
    monkeypatch.setenv("ARSEARCH_HOME", str(tmp_path / "home"))
    directory = ensure_sample_index()
    old = store.live_path(directory)
    segment = max(old.glob("*.seg"), key=lambda p: p.stat().st_size)
    with open(segment, "r+b") as f:
        f.truncate(1000)
    ensure_sample_index()
    assert store.live_path(directory) != old
    assert store.open_index(directory).doc_count() >= 300
