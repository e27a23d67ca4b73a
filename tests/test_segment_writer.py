"""FastSegmentWriter must write exactly what Whoosh's own writer writes."""

import random

import pytest
from whoosh import index as whoosh_index
from whoosh.qparser import MultifieldParser, QueryParser
from whoosh.writing import SegmentWriter

import schema
from indexer.records import make_document
from indexer.segment_writer import FastSegmentWriter


def documents(sample, n=120):
    docs = []
    for record in sample[:n]:
        doc, _ = make_document(record, "sample")
        docs.append(schema.document_fields(doc))
    # A word in every document: its posting list spans several 128-posting
    # blocks, and rarer words are stored inline (<= 4 postings).
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
