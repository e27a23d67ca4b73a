"""An arsearch index is a plain Whoosh index: Whoosh's own writer can update and merge it.

Each test builds an index with arsearch, changes it with an unmodified Whoosh
writer (`ix.writer()`), and checks the result through Whoosh's searcher and
through arsearch's search engine.
"""

import pytest
from whoosh import index as whoosh_index
from whoosh.qparser import QueryParser
from whoosh.query import Term
from whoosh.writing import SegmentWriter

import schema
from indexer import store
from indexer.records import make_document
from indexer.segment_writer import FastSegmentWriter
from search_app.engine import SearchEngine
from tests.conftest import index_records, run_arsearch, write_jsonl

# Words that no sample document holds (exact form or stem), so their hits
# are exactly the documents a test gave them: computer (documents Whoosh
# adds) and orange (documents arsearch replaced).
ADDED_WORD = "حاسوب"
REPLACED_WORD = "برتقالة"


def fields_of(record):
    doc, _ = make_document(record, "test")
    return schema.document_fields(doc)


def stored_ids(ix):
    with ix.searcher() as s:
        return {fields["id"] for fields in s.all_stored_fields()}


def whoosh_hits(ix, word):
    with ix.searcher() as s:
        hits = s.search(QueryParser("text_exact", ix.schema).parse(word), limit=None)
        return {hit["id"] for hit in hits}


def engine_hits(index, word):
    # Quoted: the documents that hold the word as written (unquoted, the
    # recall stream also finds its root, حاسوب -> حسب, in older passages).
    result = SearchEngine(index, warmup=0).search(f'"{word}"', limit=100)
    assert result["total"] == len(result["hits"])
    return {hit["id"] for hit in result["hits"]}


def build_single(tmp_path, records):
    index = tmp_path / "ix"
    index_records(index, records)
    return index, set()


def build_multi(tmp_path, records):
    """Two `--jobs 2` runs; the second replaces five documents and deletes five."""
    index = tmp_path / "ix"
    first = write_jsonl(tmp_path / "first.jsonl", records)
    run_arsearch("index", "--index", index, "--jobs", "2", "--quiet", first, check=True)
    replaced = [dict(r, text=f"{r['text']} {REPLACED_WORD}") for r in records[:5]]
    deleted = [{"id": r["id"], "deleted": True} for r in records[5:10]]
    second = write_jsonl(tmp_path / "second.jsonl", replaced + deleted)
    run_arsearch("index", "--index", index, "--jobs", "2", "--quiet", second, check=True)
    return index, {r["id"] for r in records[5:10]}


@pytest.mark.parametrize("build", [build_single, build_multi], ids=["one-segment", "jobs-2-replaced-deleted"])
def test_whoosh_writer_adds_deletes_and_optimizes_our_index(tmp_path, sample, build):
    records = sample[:60]
    index, gone = build(tmp_path, records)
    generation = store.live_path(index)
    ix = whoosh_index.open_dir(str(generation))
    expected = {r["id"] for r in records} - gone
    assert stored_ids(ix) == expected
    if build is build_multi:
        # Worker segments, and deleted documents in the first run's.
        assert len(ix._segments()) > 1
        assert any(s.has_deletions() for s in ix._segments())

    writer = ix.writer()
    assert type(writer) is SegmentWriter  # Whoosh's own, unmodified
    added = [dict(r, id=f"whoosh-{i}", text=f"{r['text']} {ADDED_WORD}") for i, r in enumerate(sample[100:103])]
    for record in added:
        writer.add_document(**fields_of(record))
    # One untouched document and one that arsearch replaced.
    removed = [records[20]["id"], records[0]["id"]]
    for doc_id in removed:
        assert writer.delete_by_term("id", doc_id) == 1
    writer.commit(optimize=True)

    expected = (expected - set(removed)) | {r["id"] for r in added}
    ix = whoosh_index.open_dir(str(generation))
    assert len(ix._segments()) == 1
    assert ix.doc_count() == len(expected)
    assert stored_ids(ix) == expected
    with ix.searcher() as s:
        for doc_id in expected:
            assert len(s.search(Term("id", doc_id))) == 1, doc_id
    assert whoosh_hits(ix, ADDED_WORD) == {r["id"] for r in added}
    replaced = {r["id"] for r in records[1:5]} if build is build_multi else set()
    assert whoosh_hits(ix, REPLACED_WORD) == replaced

    # arsearch reads what Whoosh wrote.
    assert engine_hits(index, ADDED_WORD) == {r["id"] for r in added}
    assert engine_hits(index, REPLACED_WORD) == replaced
    assert SearchEngine(index, warmup=0).health()["documents"] == len(expected)


def test_whoosh_merges_our_small_segments(tmp_path, sample):
    """commit(merge=True): Whoosh's merge policy merges segments our writer wrote."""
    path = tmp_path / "ix"
    path.mkdir()
    ix = whoosh_index.create_in(str(path), schema.build_schema())
    writer = FastSegmentWriter(ix, segment_postings=1500)  # a segment every few documents
    records = sample[:30]
    for record in records:
        writer.add_document(**fields_of(record))
    writer.commit()
    ix = whoosh_index.open_dir(str(path))
    before = len(ix._segments())
    assert before >= 5

    writer = ix.writer()
    writer.add_document(**fields_of(dict(sample[40], id="whoosh-0", text=ADDED_WORD)))
    writer.delete_by_term("id", records[3]["id"])
    writer.commit(merge=True)

    ix = whoosh_index.open_dir(str(path))
    assert len(ix._segments()) < before
    assert stored_ids(ix) == {r["id"] for r in records} - {records[3]["id"]} | {"whoosh-0"}
    assert whoosh_hits(ix, ADDED_WORD) == {"whoosh-0"}


def test_arsearch_merges_segments_whoosh_wrote(tmp_path, sample):
    """Our writer's merge (an incremental `arsearch index`) takes in Whoosh's segments."""
    index = tmp_path / "ix"
    index_records(index, sample[:20])
    generation = store.live_path(index)
    for i in range(5):
        writer = whoosh_index.open_dir(str(generation)).writer()
        writer.add_document(**fields_of(dict(sample[30 + i], id=f"whoosh-{i}", text=f"{ADDED_WORD} {i}")))
        if i == 2:
            writer.delete_by_term("id", "whoosh-1")
        writer.commit(merge=False)
    before = whoosh_index.open_dir(str(generation))._segments()
    assert len(before) == 6

    index_records(index, [dict(sample[50], id="late", text=f"{sample[50]['text']} {ADDED_WORD}")])

    ix = whoosh_index.open_dir(str(generation))
    whoosh_ids = {s.segment_id() for s in before}
    assert not any(s.segment_id() in whoosh_ids for s in ix._segments() if s.doc_count_all() < 20)
    assert len(ix._segments()) < len(before)
    added = {"whoosh-0", "whoosh-2", "whoosh-3", "whoosh-4", "late"}
    assert stored_ids(ix) == {r["id"] for r in sample[:20]} | added
    assert whoosh_hits(ix, ADDED_WORD) == added
    assert engine_hits(index, ADDED_WORD) == added
