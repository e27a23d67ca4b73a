"""The query files: derived from the Whoosh segments, exact, rebuilt when missing.

Whoosh stays the index of record; each segment's `.arq` file (indexer.query_file)
holds its postings as flat arrays for the query path. These tests check that
the arrays say what Whoosh says, that an index without them (written by
plain Whoosh or an older arsearch) or with a damaged one still serves the
same results, and that the track_total_hits convention of `facets=false`
holds.
"""

import random
from contextlib import contextmanager

import numpy as np
import pytest
from whoosh.util.numeric import byte_to_length

import schema
from indexer import query_file, store
from indexer.segment_writer import FastSegmentWriter
from search_app import index_view, scoring
from search_app.engine import SearchEngine
from tests.conftest import index_records, sample_records
from tests.reference.exhaustive_engine import SearchEngine as ExhaustiveEngine


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory):
    index = tmp_path_factory.mktemp("qf") / "ix"
    records = sample_records()
    index_records(index, records[:250])
    index_records(index, records[250:])  # a second segment
    return index


def _arq_files(index):
    """The segments' query files (the combined file of a commit starts with _)."""
    return sorted(p.name for p in store.live_path(index).glob("*" + query_file.SUFFIX)
                  if not p.name.startswith("_"))


def _combined_files(index):
    return sorted(p.name for p in store.live_path(index).glob("_*" + query_file.SUFFIX))


def test_every_segment_has_a_query_file_that_says_what_whoosh_says(sample_index):
    ix = store.open_index(sample_index)
    reader = ix.reader()
    leaves = list(reader.leaf_readers())
    assert len(leaves) == 2
    assert _arq_files(sample_index) == sorted(s.segment().segment_id() + ".arq" for s, _ in leaves)
    rng = random.Random(3)
    for segreader, _ in leaves:
        qf = query_file.QueryFile.open(store.live_path(sample_index) / query_file.file_name(segreader.segment()))
        assert qf.doc_count == segreader.doc_count_all()
        for field in schema.QUERY_FIELDS:
            f = qf.fields[field]
            terms = list(segreader.lexicon(field))
            assert [f.terms[i] for i in range(len(f))] == terms  # same terms, same order
            for term in rng.sample(terms, min(150, len(terms))):
                i = f.find(term)
                docs, tf = f.postings(i)
                m = segreader.postings(field, term)
                want_docs, want_tf, want_positions = [], [], []
                while m.is_active():
                    want_docs.append(m.id())
                    want_tf.append(m.weight())
                    if f.positioned:
                        want_positions.append(list(m.value_as("positions")))
                    m.next()
                assert docs.tolist() == want_docs, (field, term)
                assert tf.astype(float).tolist() == want_tf, (field, term)
                if f.positioned:
                    counts = tf.astype(np.int64)
                    which, positions = f.positions_at(i, np.cumsum(counts) - counts, counts)
                    got = [positions[which == k].tolist() for k in range(len(docs))]
                    assert got == want_positions, (field, term)
            if f.lengths is not None:
                # The lossy length byte Whoosh scores with.
                assert [byte_to_length(b) for b in f.lengths.tolist()] == [
                    segreader.doc_field_length(d, field) for d in range(segreader.doc_count_all())]
        assert f.find("لا يوجد هذا".encode()) == -1


def test_the_combined_file_is_every_segment_in_order(sample_index):
    ix = store.open_index(sample_index)
    reader = ix.reader()
    leaves = list(reader.leaf_readers())
    folder = store.live_path(sample_index)
    assert _combined_files(sample_index) == [query_file.combined_name("MAIN", reader.generation())]
    combined = query_file.open_combined(folder, [s.segment() for s, _ in leaves], reader.generation())
    assert combined.doc_count == reader.doc_count_all()
    parts = [(query_file.QueryFile.open(folder / query_file.file_name(s.segment())), offset)
             for s, offset in leaves]
    for field in schema.QUERY_FIELDS:
        c = combined.fields[field]
        terms = sorted({t for qf, _ in parts for t in (qf.fields[field].terms[i]
                                                        for i in range(len(qf.fields[field])))})
        assert [c.terms[i] for i in range(len(c))] == terms
        for term in terms[:: max(1, len(terms) // 200)]:
            docs, tf = c.postings(c.find(term))
            want_docs, want_tf, want_pos = [], [], []
            for qf, offset in parts:
                f = qf.fields[field]
                i = f.find(term)
                if i < 0:
                    continue
                d, t = f.postings(i)
                want_docs += (d.astype(int) + offset).tolist()
                want_tf += t.tolist()
                if f.positioned:
                    want_pos += _term_positions(f, i)
            assert docs.tolist() == want_docs and tf.tolist() == want_tf, (field, term)
            if c.positioned:
                assert _term_positions(c, c.find(term)) == want_pos
        if c.lengths is not None:
            assert c.lengths.tolist() == [b for qf, _ in parts for b in qf.fields[field].lengths.tolist()]


def _term_positions(f, i):
    """Every position of term `i` of FieldFile `f`, posting after posting."""
    counts = f.postings(i)[1].astype(np.int64)
    return f.positions_at(i, np.cumsum(counts) - counts, counts)[1].tolist()


def _results(engine, queries):
    out = []
    for q in queries:
        r = engine.search(q, snippets=False)
        out.append((r["total"], [(h["id"], h["score"]) for h in r["hits"]], r["facets"]))
    return out


QUERIES = ["رسول الله", '"قال رسول الله"', "الصلاة", "كتا*", "صلاه~", "كتاب -الصلاة", "القرآن الكريم"]


def test_missing_and_damaged_query_files_are_rebuilt_from_the_segments(tmp_path):
    index = tmp_path / "ix"
    index_records(index, sample_records())
    engine = SearchEngine(index, warmup=0)
    before = _results(engine, QUERIES)
    engine.close()
    generation = store.live_path(index)
    [arq] = list(generation.glob("*.arq"))
    arq.unlink()  # as an index written by plain Whoosh or an older arsearch
    engine = SearchEngine(index, warmup=0)
    assert _results(engine, QUERIES) == before
    engine.close()
    assert arq.exists()  # written beside the segment for the next process
    data = arq.read_bytes()
    arq.write_bytes(data[: len(data) // 2])  # truncated
    engine = SearchEngine(index, warmup=0)
    assert _results(engine, QUERIES) == before
    engine.close()
    assert arq.read_bytes() == data
    arq.write_bytes(b"not a query file")
    store.verify_sizes(generation)  # derived data: never a reason to refuse the index


def test_an_index_folder_that_cannot_be_written_gets_query_files_in_memory(tmp_path, monkeypatch):
    index = tmp_path / "ix"
    index_records(index, sample_records()[:80])
    engine = SearchEngine(index, warmup=0)
    before = _results(engine, QUERIES)
    engine.close()
    for arq in store.live_path(index).glob("*.arq"):
        arq.unlink()

    def read_only(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(query_file, "write_file", read_only)
    engine = SearchEngine(index, warmup=0)
    assert _results(engine, QUERIES) == before
    engine.close()
    assert not list(store.live_path(index).glob("*.arq"))


@contextmanager
def _with_reference(index):
    """(engine, exhaustive reference engine) over one index, both closed after."""
    engine, reference = SearchEngine(index, warmup=0), ExhaustiveEngine(index, warmup=0)
    try:
        yield engine, reference
    finally:
        engine.close()
        reference.close()


def _same_as_exhaustive(index):
    # A merge changes Whoosh's statistics a little (total lengths are summed
    # again from the lossy length bytes), so compare with the exhaustive path
    # on the same index, not with before the merge.
    with _with_reference(index) as (engine, reference):
        assert _results(engine, QUERIES) == _results(reference, QUERIES)


def test_merged_segments_get_query_files_and_leave_no_stale_ones(tmp_path):
    index = tmp_path / "ix"
    records = sample_records()
    for start in range(0, 90, 30):
        index_records(index, records[start:start + 30])
    assert len(_arq_files(index)) == 3
    # arsearch's writer merging: the merged segment's file is written before its TOC.
    writer = FastSegmentWriter(store.open_index(index), query_fields=schema.QUERY_FIELDS)
    writer.commit(optimize=True)
    ix = store.open_index(index)
    assert len(ix._segments()) == 1
    assert _arq_files(index) == [s.segment_id() + ".arq" for s in ix._segments()]
    _same_as_exhaustive(index)
    # Whoosh's own writer, which knows nothing of query files: the view builds them.
    index_records(index, records[90:120])
    writer = store.open_index(index).writer()
    writer.commit(optimize=True)
    _same_as_exhaustive(index)
    ix = store.open_index(index)
    assert _arq_files(index) == [s.segment_id() + ".arq" for s in ix._segments()]


def test_without_facets_a_phrase_past_the_threshold_is_counted_as_a_lower_bound(sample_index, monkeypatch):
    # Small blocks and a small threshold: the sample behaves as a large collection.
    monkeypatch.setattr(index_view, "BLOCK_DOCS", 8)
    engine = SearchEngine(sample_index, warmup=0)
    words = engine.search("الله", snippets=False)
    phrase = engine.search('"رسول الله"', snippets=False)
    assert phrase["total_relation"] == "eq" and phrase["total"] > 40
    monkeypatch.setattr(scoring, "TRACK_TOTAL_HITS", 20)
    fast = engine.search('"رسول الله"', snippets=False, facets=False)
    assert fast["facets"] == {}
    assert fast["total_relation"] == "gte"
    assert 20 <= fast["total"] < phrase["total"]
    assert [h["id"] for h in fast["hits"]] == [h["id"] for h in phrase["hits"]]
    # With facets every match is counted (the facets need them all): exact.
    counted = engine.search('"رسول الله"', snippets=False)
    assert counted["total_relation"] == "eq" and counted["total"] == phrase["total"]
    assert counted["facets"] == phrase["facets"]
    # Words are counted from their postings, exactly, whatever the threshold.
    fast_words = engine.search("الله", snippets=False, facets=False)
    assert fast_words["total_relation"] == "eq" and fast_words["total"] == words["total"]
    assert [h["id"] for h in fast_words["hits"]] == [h["id"] for h in words["hits"]]
    engine.close()


def test_deep_pages_rank_again_deeper(sample_index):
    engine = SearchEngine(sample_index, warmup=0)
    first = engine.search("الله", page=1, limit=10, snippets=False)
    deep = engine.search("الله", page=5, limit=10, snippets=False)
    whole = engine.search("الله", page=1, limit=50, snippets=False)
    assert [h["id"] for h in deep["hits"]] == [h["id"] for h in whole["hits"][40:50]]
    assert [h["id"] for h in first["hits"]] == [h["id"] for h in whole["hits"][:10]]
    engine.close()


def test_postings_take_a_byte_each_and_only_the_positions_the_query_path_reads_are_kept(sample_index):
    ix = store.open_index(sample_index)
    reader = ix.reader()
    combined = query_file.open_combined(store.live_path(sample_index),
                                        [s.segment() for s, _ in reader.leaf_readers()], reader.generation())
    for field in schema.QUERY_FIELDS:
        f = combined.fields[field]
        postings = int(f.post_starts[-1])
        # A posting's document: its low byte, plus its run (3 bytes: block, count)
        # for each block of 256 documents the term is in; an int32 took 4 bytes.
        runs = len(f.run_counts)
        assert f.low.nbytes + f.run_blocks.nbytes + f.run_counts.nbytes == postings + 3 * runs
        assert postings + 3 * runs < 4 * postings, field
    # Whoosh keeps the stemmed title's positions, nothing on the query path reads them.
    assert ix.schema["title"].format.supports("positions")
    assert not combined.fields["title"].positioned
    assert not {"title.positions", "title.pos_starts"} & set(combined.header["arrays"])
    for field in query_file.POSITION_FIELDS:
        assert combined.fields[field].positioned, field


def _logical(docs_per_term, positions_per_posting, doc_count, field="text_exact"):
    """(header, arrays) as build_arrays gives them, for one positioned field."""
    docs = [d for term in docs_per_term for d in term]
    counts = [len(p) for term in positions_per_posting for p in term]
    positions = [x for term in positions_per_posting for p in term for x in p]
    starts = np.cumsum([0] + [len(t) for t in docs_per_term])
    pos_starts = np.cumsum([0] + [sum(len(p) for p in t) for t in positions_per_posting])
    terms = [f"ك{k:05d}".encode() for k in range(len(docs_per_term))]
    arrays = {
        f"{field}.terms": np.frombuffer(b"".join(terms), dtype=np.uint8),
        f"{field}.term_starts": np.cumsum([0] + [len(t) for t in terms]).astype(np.int64),
        f"{field}.post_starts": starts.astype(np.int64),
        f"{field}.docs": np.array(docs, dtype=np.int32),
        f"{field}.tf": np.array(counts, dtype=np.uint16),
        f"{field}.pos_starts": pos_starts.astype(np.int64),
        f"{field}.positions": np.array(positions, dtype=np.uint32),
    }
    header = {"format": query_file.FORMAT, "segment": None, "doc_count": doc_count,
              "fields": {field: {"positions": True, "scorable": False, "terms": len(terms)}}}
    return header, arrays


@pytest.mark.parametrize("far", [300, 70_000], ids=["split-positions", "plain-positions"])
def test_documents_and_positions_read_back_as_written(far):
    rng = np.random.default_rng(8)
    doc_count = 20_000_000  # block numbers past 65,535: wider than uint16
    docs_per_term = [
        list(range(256)),  # a whole block: a run of 256 postings
        [255, 256, 511, 512, 65_535, 65_536],  # block edges
        [0],
        sorted(rng.choice(doc_count, 500, replace=False).tolist()),
        [19_999_999],
    ]
    positions, plain = [], far > 65_535
    for term in docs_per_term:
        per_posting = []
        for k, _ in enumerate(term):
            n = 1 + k % 3
            start = int(rng.integers(0, far)) if (plain or k % 10 == 0) else int(rng.integers(0, 200))
            per_posting.append(list(range(start, start + 2 * n, 2)))
        positions.append(per_posting)
    header, arrays = _logical(docs_per_term, positions, doc_count)
    qf = query_file.QueryFile.from_arrays(header, arrays)
    f = qf.fields["text_exact"]
    # Few positions past 255: low bytes with the rest aside; many: plain positions.
    assert (len(f.pos_exc) == 0) == plain
    assert f.positions.dtype == (np.uint32 if plain else np.uint8)
    assert f.all_docs().tolist() == arrays["text_exact.docs"].tolist()
    for i, (want_docs, want_positions) in enumerate(zip(docs_per_term, positions)):
        docs, tf = f.postings(i)
        assert docs.tolist() == want_docs
        counts = tf.astype(np.int64)
        which, got = f.positions_at(i, np.cumsum(counts) - counts, counts)
        assert [got[which == k].tolist() for k in range(len(docs))] == want_positions
        assert all(f.holds(i, d) for d in want_docs)
        assert not any(f.holds(i, d + 1) for d in want_docs if d + 1 not in set(want_docs))


def _long_text(words_before, phrase):
    """An Arabic text with `phrase` after `words_before` other words."""
    filler = "ذهب الرجل الصالح الي السوق واشتري خبزا وتمرا وعاد الي بيته مسرورا".split()
    before = " ".join(filler[k % len(filler)] for k in range(words_before))
    return f"{before} {phrase} وصلي ركعتين ثم نام"


def test_phrases_past_position_255_match_as_whoosh_says(tmp_path):
    # Positions are stored as their low byte and, past 255, their high bits
    # apart: a phrase across 255/256 and far past it must still line up.
    records = [dict(r, id=f"short-{k}") for k, r in enumerate(sample_records()[:200])]
    for k, before in enumerate([10, 200, 254, 255, 300, 700]):
        records.append({"id": f"long-{k}", "title": "زيارة", "text": _long_text(before, "بيت المقدس الشريف")})
        records.append({"id": f"apart-{k}", "title": "زيارة",
                        "text": _long_text(before, "بيت في المقدس ثم الشريف")})
    index = tmp_path / "ix"
    index_records(index, records)
    with _with_reference(index) as (engine, reference):
        f = engine.view().files[0][0].fields["text_exact"]
        assert len(f.pos_exc) and f.positions.dtype == np.uint8  # the split form is in play
        phrase = engine.search('"بيت المقدس الشريف"', snippets=False)
        assert sorted(h["id"] for h in phrase["hits"]) == [f"long-{k}" for k in range(6)]
        queries = ['"بيت المقدس الشريف"', '"المقدس الشريف"', "بيت المقدس", "المقدس الشريف وصلي", "الشريف"]
        assert _results(engine, queries) == _results(reference, queries)


def test_a_query_file_of_another_format_is_rebuilt(tmp_path):
    index = tmp_path / "ix"
    index_records(index, sample_records()[:60])
    engine = SearchEngine(index, warmup=0)
    before = _results(engine, QUERIES)
    engine.close()
    [arq] = list(store.live_path(index).glob("*.arq"))
    data = arq.read_bytes()
    current = f'"format": {query_file.FORMAT},'.encode()
    assert current in data[:200]
    arq.write_bytes(data.replace(current, b'"format": 1,', 1))  # as written by an older arsearch
    engine = SearchEngine(index, warmup=0)
    assert _results(engine, QUERIES) == before
    engine.close()
    assert arq.read_bytes() == data
