"""FastSegmentWriter must write exactly what Whoosh's own writer writes."""

import random
import shutil
import tracemalloc
from pathlib import Path

import pytest
from whoosh import index as whoosh_index
from whoosh.codec.whoosh3 import W3Codec, W3TermInfo
from whoosh.filedb.filestore import FileStorage
from whoosh.qparser import MultifieldParser, QueryParser
from whoosh.writing import SegmentWriter

import schema
from indexer import query_file
from indexer.form_codes import FormCodes
from indexer.records import make_document
from indexer.segment_writer import (
    WHOOSH_STORED_LEVEL,
    BatchCodec,
    BatchFieldWriter,
    FastSegmentWriter,
)
from indexer.whoosh_analysis import term_positions


def documents(sample, n=120):
    docs = []
    for record in sample[:n]:
        doc, _ = make_document(record, "sample")
        docs.append(schema.document_fields(doc))
    # A word in every document: its posting list spans several 128-posting
    # blocks (most terms fit in one).
    for i, fields in enumerate(docs):
        fields["text"] = fields["text_exact"] = fields["text"] + " كلمةمشتركة" * (1 + i % 3)
    return docs


def build(path, docs, writer_class, **kwargs):
    path.mkdir()
    ix = whoosh_index.create_in(str(path), schema.build_schema())
    writer = writer_class(ix, **kwargs)
    for fields in docs:
        writer.add_document(**fields)
    writer.commit()
    return whoosh_index.open_dir(str(path))


def dump(ix):
    """Everything a search can observe: terms, postings, positions, lengths, stored fields."""
    out = {}
    with ix.searcher() as s:
        r = s.reader()
        by_id = {r.stored_fields(d)["id"]: d for d in r.all_doc_ids()}
        ids = {d: i for i, d in by_id.items()}
        for field in r.indexed_field_names():
            fieldobj = ix.schema[field]
            for term in r.lexicon(field):
                info = r.term_info(field, term)
                m = r.postings(field, term)
                postings = []
                while m.is_active():
                    value = m.value_as("positions") if fieldobj.format.supports("positions") else None
                    postings.append((ids[m.id()], round(m.weight(), 4), value))
                    m.next()
                out[(field, term)] = (
                    info.doc_frequency(), round(info.weight(), 4),
                    info.min_length(), info.max_length(), sorted(postings, key=str),
                )
        for doc_id, d in by_id.items():
            out[("stored", doc_id)] = r.stored_fields(d)
            for field in ("title", "text", "title_exact", "text_exact"):
                out[("length", doc_id, field)] = r.doc_field_length(d, field)
    return out


@pytest.fixture(scope="module")
def docs(sample):
    return documents(sample)


def test_same_index_as_whoosh_writer(tmp_path, docs):
    plain = build(tmp_path / "plain", docs, SegmentWriter)
    fast = build(tmp_path / "fast", docs, FastSegmentWriter)
    expected, got = dump(plain), dump(fast)
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key] == expected[key], key


def test_same_scores_and_phrases(tmp_path, docs):
    plain = build(tmp_path / "plain", docs, SegmentWriter)
    fast = build(tmp_path / "fast", docs, FastSegmentWriter)
    queries = ["الله", "رسول الله", '"رسول الله"', "الصلاة", "كلمةمشتركة", "الرحمن الرحيم", '"الحمد لله"']
    for q in queries:
        results = []
        for ix in (plain, fast):
            with ix.searcher() as s:
                parser = MultifieldParser(list(schema.SEARCH_FIELDS), ix.schema)
                hits = s.search(parser.parse(q), limit=20)
                results.append([(h["id"], round(h.score, 4)) for h in hits])
        assert results[0] == results[1], q
        assert results[0], f"{q} found nothing"


def test_several_segments_deletions_and_merge(tmp_path, docs):
    plain = build(tmp_path / "plain", docs, SegmentWriter)
    # A tiny postings budget forces a segment flush every few documents.
    fast = build(tmp_path / "fast", docs, FastSegmentWriter, segment_postings=3000)
    assert len(fast._segments()) > 3
    assert dump(fast) == dump(plain)
    # Delete some documents, then merge everything through the writer's pool.
    victims = [d["id"] for d in random.Random(7).sample(docs, 10)]
    for ix in (plain, fast):
        w = FastSegmentWriter(ix) if ix is fast else SegmentWriter(ix)
        for v in victims:
            assert w.delete_by_term("id", v) == 1
        w.commit(optimize=True)
    plain, fast = (whoosh_index.open_dir(str(tmp_path / n)) for n in ("plain", "fast"))
    assert len(fast._segments()) == 1
    assert fast.doc_count() == len(docs) - 10
    assert dump(fast) == dump(plain)


def test_index_stays_readable_by_plain_whoosh(tmp_path, docs):
    fast = build(tmp_path / "fast", docs[:20], FastSegmentWriter)
    # The TOC names only Whoosh's own codec, so adding with Whoosh's writer works.
    w = SegmentWriter(fast)
    w.add_document(**docs[20])
    w.commit()
    ix = whoosh_index.open_dir(str(tmp_path / "fast"))
    assert ix.doc_count() == 21
    with ix.searcher() as s:
        q = QueryParser("text", ix.schema).parse("كلمةمشتركة")
        assert len(s.search(q, limit=None)) == 21


# With posting compression off and stored fields at Whoosh's level, nothing
# is left to differ: our writer must write the very bytes Whoosh's writer
# writes (term table, postings, columns), so Whoosh's reading and merging
# code sees exactly what it expects.
def plain_writer(ix, **kwargs):
    return SegmentWriter(ix, codec=W3Codec(compression=0), compound=False, **kwargs)


def fast_writer(ix, **kwargs):
    codec = BatchCodec(compression=0, stored_level=WHOOSH_STORED_LEVEL)
    return FastSegmentWriter(ix, codec=codec, compound=False, **kwargs)


def segment_files(path):
    """{segment id: (documents, {file name without the segment id: bytes})}."""
    ix = whoosh_index.open_dir(str(path))
    out = {}
    for segment in ix._segments():
        prefix = segment.segment_id()
        files = {f.name[len(prefix):]: f.read_bytes() for f in Path(path).glob(prefix + ".*")}
        out[prefix] = (segment.doc_count_all(), files)
    return out


def assert_same_files(a, b):
    """Same segments: those copied into both indexes, and the new ones (by size)."""
    segments_a, segments_b = segment_files(a), segment_files(b)
    shared = segments_a.keys() & segments_b.keys()
    new_a = sorted((v for k, v in segments_a.items() if k not in shared), key=lambda v: v[0])
    new_b = sorted((v for k, v in segments_b.items() if k not in shared), key=lambda v: v[0])
    assert new_a, "no segment was written"
    assert [v[0] for v in new_a] == [v[0] for v in new_b]
    for (_, files_a), (_, files_b) in zip(new_a, new_b):
        assert ".pst" in files_a and files_a.keys() == files_b.keys()
        for name in files_a:
            assert files_a[name] == files_b[name], name


def test_same_bytes_as_whoosh_writer(tmp_path, docs):
    build(tmp_path / "plain", docs, plain_writer)
    build(tmp_path / "fast", docs, fast_writer)
    assert_same_files(tmp_path / "plain", tmp_path / "fast")


def test_merge_writes_the_same_bytes_as_whoosh_merge(tmp_path, docs):
    # Segments from both writers, with deleted documents and a replaced one.
    base = build(tmp_path / "base", docs[:80], fast_writer, segment_postings=3000)
    w = plain_writer(base)
    for fields in docs[80:90]:
        w.add_document(**fields)
    w.commit(merge=False)
    w = plain_writer(whoosh_index.open_dir(str(tmp_path / "base")))
    for victim in random.Random(3).sample(docs[:90], 12):
        w.delete_by_term("id", victim["id"])
    w.update_document(**dict(docs[5], text="نص جديد للوثيقة", text_exact="نص جديد للوثيقة"))
    w.commit(merge=False)
    assert len(whoosh_index.open_dir(str(tmp_path / "base"))._segments()) > 4
    for name, make in (("plain", plain_writer), ("fast", fast_writer)):
        shutil.copytree(tmp_path / "base", tmp_path / name)
        w = make(whoosh_index.open_dir(str(tmp_path / name)))
        for fields in docs[90:95]:  # new documents in the merged segment too
            w.add_document(**fields)
        w.commit(optimize=True)
    assert len(whoosh_index.open_dir(str(tmp_path / "fast"))._segments()) == 1
    assert_same_files(tmp_path / "plain", tmp_path / "fast")


@pytest.mark.parametrize("read_from_file", [False, True], ids=["terms-read-whole", "terms-read-from-file"])
def test_merge_small_segments_like_whoosh(tmp_path, docs, monkeypatch, read_from_file):
    """commit(merge=True): the same segments are merged, into the same bytes.

    A term's postings are read whole, or from the file as a term over
    READ_WHOLE_TERM_BYTES is.
    """
    if read_from_file:
        monkeypatch.setattr(query_file, "READ_WHOLE_TERM_BYTES", 0)
    base = build(tmp_path / "base", docs[:30], fast_writer, segment_postings=1500)
    before = len(base._segments())
    for name, make in (("plain", plain_writer), ("fast", fast_writer)):
        shutil.copytree(tmp_path / "base", tmp_path / name)
        w = make(whoosh_index.open_dir(str(tmp_path / name)))
        w.add_document(**docs[40])
        w.commit(merge=True)
    merged = whoosh_index.open_dir(str(tmp_path / "fast"))
    assert len(merged._segments()) < before
    assert merged.doc_count() == 31
    assert_same_files(tmp_path / "plain", tmp_path / "fast")


class InlineFieldWriter(BatchFieldWriter):
    """What the previous version of our writer wrote: terms of at most four
    postings inline in the term table, their empty values dropped."""

    def write_term(self, btext, ids, weights, values, lengths):
        if len(ids) > 4:
            return super().write_term(btext, ids, weights, values, lengths)
        info = W3TermInfo()
        info._weight, info._df = sum(weights), len(ids)
        present = [lengths[d] for d in ids if lengths[d]] if lengths is not None else []
        if present:
            info._minlength, info._maxlength = min(present), max(present)
        info._maxweight, info._minid, info._maxid = max(weights), ids[0], ids[-1]
        info.set_inlined(ids, weights, [v for v in values if v])
        self._tindex.add(self._fieldid.to_bytes(2, "big") + btext, info.to_bytes())


class InlineCodec(BatchCodec):
    def field_writer(self, storage, segment):
        return InlineFieldWriter(self, storage, segment)


def test_merges_indexes_written_with_inline_postings(tmp_path, docs):
    """Indexes built before this writer stopped writing inline postings
    (which Whoosh cannot merge) are merged by ours into plain segments."""
    for name, codec in (("inline", InlineCodec(compression=0)), ("plain", BatchCodec(compression=0))):
        ix = build(tmp_path / name, docs[:60], FastSegmentWriter, codec=codec,
                   compound=False, segment_postings=3000)
        assert len(ix._segments()) > 1
        if name == "inline":
            with ix.reader() as r:
                first, _ = r.leaf_readers()[0]
                assert first.term_info("id", docs[0]["id"]).is_inlined()
        w = fast_writer(ix)
        for victim in docs[10:15]:
            w.delete_by_term("id", victim["id"])
        w.commit(optimize=True)
    assert_same_files(tmp_path / "inline", tmp_path / "plain")
    # Now Whoosh's own writer can merge it.
    ix = whoosh_index.open_dir(str(tmp_path / "inline"))
    w = ix.writer()
    w.add_document(**docs[70])
    w.commit(optimize=True)
    assert whoosh_index.open_dir(str(tmp_path / "inline")).doc_count() == 56


# Words of a small vocabulary, so that a merge holds many postings of few terms.
WORDS = (
    "قال رسول الله صلى عليه وسلم من كان يؤمن بالله واليوم الآخر فليقل خيرا "
    "أو ليصمت الكتاب العلم المدرسة الجزائر فرنسا"
).split()


def test_merge_memory_does_not_grow_with_postings(tmp_path):
    """A merge streams postings to the new segment instead of pooling them.

    Holding them costs ~130 bytes a posting (5.9 MB for these 44,000); the
    streamed merge holds a block per term, the term table and per-document
    data: 0.65 MB here.
    """
    rng = random.Random(5)
    path = tmp_path / "ix"
    path.mkdir()
    ix = whoosh_index.create_in(str(path), schema.build_schema())
    w = FastSegmentWriter(ix, segment_postings=20_000)
    texts = [" ".join(rng.choice(WORDS) for _ in range(30)) for _ in range(1500)]
    for i, text in enumerate(texts):
        w.add_document(id=f"d{i}", text=text, text_exact=text)
    w.commit()
    ix = FileStorage(str(path), supports_mmap=False).open_index()
    assert len(ix._segments()) >= 3
    with ix.reader() as r:
        postings = sum(r.doc_frequency(f, t) for f, t in r.all_terms())
    assert postings > 40_000
    tracemalloc.start()
    try:
        FastSegmentWriter(ix).commit(optimize=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000, f"merge of {postings} postings peaked at {peak / 1e6:.1f} MB"
    ix = whoosh_index.open_dir(str(path))
    assert len(ix._segments()) == 1 and ix.doc_count() == 1500
    with ix.searcher() as s:
        hits = s.search(QueryParser("text_exact", ix.schema).parse("الجزائر"), limit=None)
        assert len(hits) == sum("الجزائر" in t.split() for t in texts) > 0


# Written words that do not give one form at the next position: the
# ligature ﷺ (four words), dagger-alef spellings (two forms at one
# position), a lone tatweel and marks (no form), an underscore (two words).
IRREGULAR_TEXTS = (
    "قال رسول الله ﷺ: الحمد لله",
    # Lone proclitics: two roots at one position in the recall stream.
    "سافر ببغداد ثم لباريس وأقام بسوسة",
    "ٱلْحَمْدُ لِلَّهِ رَبِّ ٱلْعَٰلَمِينَ ذَٰلِكَ ٱلْكِتَٰبُ لَا رَيْبَ فِيهِ",
    "وَأَقِيمُوا ٱلصَّلَوٰةَ وَءَاتُوا ٱلزَّكَوٰةَ ـ ـــ ً الكتاب_المدرسة",
    "",
    "العلم نور والعلم العلم",
)


def test_form_codes_give_the_positions_of_the_analysis():
    """The bulk path's codes and positions say what term_positions says, per term."""
    forms = FormCodes()
    for text in IRREGULAR_TEXTS + tuple(" ".join(WORDS[i:] + WORDS[:i]) for i in range(3)):
        codes, positions, stems = forms.encode(text)
        if positions is None:
            positions = list(range(len(codes)))
        exact, stemmed, roots = {}, {}, {}
        for code, pos in zip(codes, positions):
            exact.setdefault(forms.terms[forms.exact[code]], []).append(pos)
            if forms.stem[code] >= 0:
                stemmed.setdefault(forms.terms[forms.stem[code]], []).append(pos)
            for number in (forms.root[code], forms.root2[code]):
                if number >= 0:
                    roots.setdefault(forms.terms[number], []).append(pos)
        want_exact, want_stems, want_roots = term_positions(text)
        assert exact == want_exact, text
        assert stemmed == want_stems, text
        assert roots == want_roots, text
        assert stems == sum(map(len, want_stems.values()))


def test_irregular_words_index_as_whoosh_indexes_them(tmp_path):
    docs = [{"id": f"d{i}", "title": text[:20], "title_exact": text[:20], "text": text,
             "text_exact": text, "text_root": text} for i, text in enumerate(IRREGULAR_TEXTS * 3)]
    plain = build(tmp_path / "plain", docs, SegmentWriter)
    fast = build(tmp_path / "fast", docs, FastSegmentWriter)
    assert dump(fast) == dump(plain)


def test_known_answers_are_whoosh_answers(tmp_path, sample):
    """_index_field's shortcuts (an ID's one term, remembered values) equal field.index."""
    path = tmp_path / "ix"
    path.mkdir()
    ix = whoosh_index.create_in(str(path), schema.build_schema())
    writer = FastSegmentWriter(ix)
    try:
        for record in sample[:40]:
            doc, _ = make_document(record, "sample")
            for name, value in schema.document_fields(doc).items():
                field = ix.schema[name]
                if not field.indexed or type(field).__name__ == "ArabicTextField":
                    continue
                for _ in range(2):  # the second time from the memo
                    assert list(writer._index_field(name, field, value)) == list(field.index(value)), name
    finally:
        writer.cancel()
