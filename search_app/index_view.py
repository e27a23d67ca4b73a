"""A read-only view of one Whoosh index generation, for the query path.

Whoosh stays the index of record: stored fields and documents come from its
reader. Postings, positions, field lengths, dates and facet values come from
the segments' query files (`indexer.query_file`): flat integer arrays,
memory-mapped, so that every process and thread serving this generation
shares one copy through the page cache, nothing is decoded per query, and a
view opens in milliseconds. A segment without a query file (an index written
by plain Whoosh or an older arsearch) gets one built when the view opens.

Scores follow Whoosh's BM25F exactly (same idf, same lossy field lengths,
same average lengths): tests compare them with Whoosh's own search.
"""

import re
import threading
import time
from collections import OrderedDict
from itertools import islice
from math import log

import numpy as np
from whoosh.util.numeric import byte_to_length

from indexer import query_file
from search_app import kernels
from indexer.normalize import normalize, strip_marks
from indexer.tokenize import WORD_PATTERN
from schema import FACET_FIELDS, QUERY_FIELDS

B = 0.75  # Whoosh's BM25F defaults
K1 = 1.2
NO_DATE = -1
POSITION_BITS = 24  # positions < 16M per field; doc numbers go above
TERM_CACHE = 50_000  # (field, term) lookups remembered per view (small tuples)
BLOCK_DOCS = 256  # documents per scoring block (search_app.scoring)
STORED_CACHE = 20_000  # documents' stored fields but the text, kept per view
STATS_CACHE = 8_000  # terms whose block statistics are kept per view
STATS_CACHE_MIN_POSTINGS = 512  # rarer terms' statistics are cheaper to compute again
IO_BATCH = 256  # lexicon terms read per step of a prefix scan
SAMPLE_TEXT_CHARS = 20_000  # of each sampled text, for word frequencies
DISPLAY_SCAN_CHARS = 20_000  # of a text, looking for how a term is written
# The length a Whoosh length byte stands for (byte_to_length as a table).
LENGTH_OF_BYTE = np.array([byte_to_length(b) for b in range(256)], dtype=np.float64)
EMPTY_DOCS = np.zeros(0, np.int32)

# A lone surrogate (U+D800..U+DFFF) is a code point no encoding can write:
# one stored in an index (a JSON "\ud800" escape, accepted before the indexer
# refused them) would make every response that shows it fail.
_UNENCODABLE = re.compile("[\ud800-\udfff]")
REPLACEMENT_CHARACTER = "\ufffd"


def safe_text(value):
    """`value` with every code point that cannot be encoded replaced by U+FFFD.

    The one place text is made writable: stored fields as they leave the
    index (`IndexView.stored`, `IndexView.document`) and queries as they
    enter the engine. Anything but a str is returned as it is.
    """
    if isinstance(value, str):
        try:
            value.encode("utf-8")  # the fastest check on a long text (C, no regex)
        except UnicodeEncodeError:
            return _UNENCODABLE.sub(REPLACEMENT_CHARACTER, value)
    return value


def _safe_fields(fields):
    return {name: safe_text(value) for name, value in fields.items()}


class Postings:
    """One term's postings over the whole view: global doc numbers and tf.

    `docs` are decoded from the query files' runs (int64), `tf` a view into
    the mapped file when the index has one segment. The query path reads
    postings per scoring block instead (BlockStats, search_app.scoring).
    """

    __slots__ = ("docs", "tf")

    def __init__(self, docs, tf):
        self.docs = docs
        self.tf = tf

    def __len__(self):
        return len(self.docs)


EMPTY = Postings(EMPTY_DOCS, np.zeros(0, np.uint8))


class BlockStats:
    """One term's postings per scoring block: rows, best score, first position.

    For block b: the postings at rows lo[b]:hi[b] of segment part part[b]
    (an index into `found`, -1 where the term is absent), the best BM25
    score among them without boost (`best`, rounded up to float32: a bound),
    and where their positions start relative to the term's (`pos_lo`).
    """

    __slots__ = ("found", "lo", "hi", "part", "part_blocks", "best", "pos_lo", "postings")

    def __init__(self, view, field, text):
        nb = view.block_count
        self.found = view._locate(field, text)
        self.lo = np.zeros(nb, np.int32)
        self.hi = np.zeros(nb, np.int32)
        self.part = np.full(nb, -1, np.int16)
        best = np.zeros(nb)
        self.pos_lo = np.zeros(nb, np.int64)
        self.postings = 0
        norm = view.norm.get(field)
        scored = norm is not None
        weight = view.idf(field, text) * (K1 + 1) if scored else 0.0
        if not scored:
            norm = np.zeros(1)
        self.part_blocks = np.array([view.segment_blocks[offset] for _, _, offset in self.found],
                                    dtype=np.int64).reshape(-1, 2)
        for k, (f, i, offset) in enumerate(self.found):
            b0, b1 = view.segment_blocks[offset]
            low, tf, run_blocks, run_counts = f.compact(i)
            self.postings += len(low)
            kernels.block_stats(low, tf, run_blocks, run_counts, query_file.BLOCK, offset, b0, view.block_docs,
                                weight, norm, scored, self.lo, self.hi, best, self.pos_lo)
            self.part[b0:b1] = k
        rounded = best.astype(np.float32)
        low = rounded < best
        rounded[low] = np.nextafter(rounded[low], np.float32(np.inf))
        self.best = rounded


class Facet:
    """One facet field's values, laid out for counting a result's documents.

    A field with at most one value per document (source) keeps an array of
    value ids by document: counting is one gather and one bincount over the
    matches. A field with several (tags) keeps its (document, value) pairs:
    few matches gather their rows, many matches mark their documents and
    read every pair once.
    """

    def __init__(self, names, docs, ids, n_docs):
        self.names = names
        order = np.argsort(docs, kind="stable")
        self.docs = docs[order].astype(np.int32)  # pair documents, ascending
        self.ids = ids[order]
        self.n_docs = n_docs
        self.single = not len(self.docs) or bool(np.all(self.docs[1:] != self.docs[:-1]))
        if self.single:
            self.value = np.full(n_docs + 1, len(names), np.int32)  # len(names): no value
            self.value[self.docs] = self.ids
        else:
            self.starts = np.searchsorted(self.docs, np.arange(n_docs + 1))

    def count(self, docs):
        n = len(self.names)
        counts = np.zeros(n + 1, np.int64)
        if self.single:
            kernels.count_single(docs, self.value, counts)
        else:
            kernels.count_multi(docs, self.starts, self.ids, counts)
        return counts[:n]


class IndexView:
    def __init__(self, ix, scored_fields, log=None):
        self.ix = ix
        self.searcher = ix.searcher()
        reader = self.searcher.reader()
        self.reader = reader
        # The generation this reader shows (the TOC number it read), not
        # whatever is latest on disk by now.
        self.generation = reader.generation()
        self.leaves = list(reader.leaf_readers())
        self.N = reader.doc_count_all()
        self.doc_count = reader.doc_count()
        schema = ix.schema
        folder = ix.storage.folder
        # One file over every segment (written at commit, or combined now from
        # the segments' files): the query path reads one set of arrays.
        segments = [segreader.segment() for segreader, _ in self.leaves]
        combined = query_file.open_combined(folder, segments, self.generation) if len(segments) > 1 else None
        if combined is None:
            per_segment = [query_file.open_or_build(folder, segreader, schema, QUERY_FIELDS, log)
                           for segreader, _ in self.leaves]
            if len(per_segment) > 1:
                combined = query_file.combined_or_build(folder, per_segment, segments, self.generation)
        if combined is not None:
            self.files = [(combined, 0)]  # (QueryFile, doc offset)
        else:
            self.files = [(qf, offset) for qf, (_, offset) in zip(per_segment, self.leaves)]
        self.live = np.ones(self.N, dtype=bool)
        for segreader, offset in self.leaves:
            deleted = list(segreader.deleted_docs_set)
            if deleted:
                self.live[offset + np.asarray(deleted, dtype=np.int64)] = False
        # Scoring blocks: BLOCK_DOCS documents each, never across two files.
        starts, self.segment_blocks = [], {}
        for qf, offset in self.files:
            first = len(starts)
            starts.extend(range(offset, offset + qf.doc_count, BLOCK_DOCS))
            self.segment_blocks[offset] = (first, len(starts))
        self.block_starts = np.array(starts + [self.N], dtype=np.int64)
        self.block_count = len(starts)
        # The postings of a scoring block are in one block of the query file's
        # docs encoding (a posting's document: block_base + its low bits).
        if query_file.BLOCK % BLOCK_DOCS:
            raise ValueError(f"BLOCK_DOCS ({BLOCK_DOCS}) must divide query_file.BLOCK ({query_file.BLOCK})")
        self.block_docs = BLOCK_DOCS
        self.block_base = np.zeros(self.block_count, np.int64)
        for qf, offset in self.files:
            b0, b1 = self.segment_blocks[offset]
            local = self.block_starts[b0:b1] - offset
            self.block_base[b0:b1] = offset + local - local % query_file.BLOCK
        self.avgfl = {}
        self.norm = {}
        for field in scored_fields:
            self.avgfl[field] = self.searcher.avg_field_length(field) or 1
            lengths = self._per_doc(lambda qf: qf.fields[field].lengths if field in qf.fields else None,
                                    np.uint8, 0)
            # BM25's length normalisation per document, computed once per view.
            self.norm[field] = K1 * ((1 - B) + B * LENGTH_OF_BYTE[lengths] / self.avgfl[field])
        self._terms = OrderedDict()
        self._stats = OrderedDict()
        self._stored = OrderedDict()
        self._threads = threading.local()
        self._lock = threading.Lock()
        # Whoosh readers seek() and read() shared file objects: one thread at a time.
        self.io = threading.RLock()
        self._display = {}
        self._facet_docs = {}  # at most a facet field's postings in all (a few bytes a document)
        self._sampled = None
        self.dates = self._per_doc(lambda qf: qf.dates, np.int64, NO_DATE)
        self.dates[self.dates < 0] = NO_DATE  # Whoosh's "no value" is above 2**63
        self.block_max_date = (np.maximum.reduceat(np.where(self.live, self.dates, NO_DATE),
                                                   self.block_starts[:-1])
                               if self.block_count else np.zeros(0, np.int64))
        self.facets = {name: self._facet(name) for name in FACET_FIELDS}

    def close(self):
        self.searcher.close()
        self.files = []

    # -- per-document arrays, built once per generation

    def _per_doc(self, pick, dtype, missing):
        out = np.full(self.N, missing, dtype=dtype)
        for qf, offset in self.files:
            values = pick(qf)
            if values is not None and len(values):
                out[offset:offset + len(values)] = values
        return out

    def _facet(self, field):
        """A field's values per document: Facet (names, and each document's ids)."""
        index, docs, ids = {}, [], []
        for qf, offset in self.files:
            f = qf.fields.get(field)
            if f is None:
                continue
            for i in range(len(f)):
                name = f.term(i)
                number = index.setdefault(name, len(index))
                d, _ = f.postings(i)
                docs.append(d.astype(np.int64) + offset)
                ids.append(np.full(len(d), number, dtype=np.int32))
        # Numbered in term order over all segments, as Whoosh's lexicon lists them.
        names = sorted(index, key=lambda name: name.encode("utf-8"))
        if not docs:
            return Facet(names, np.zeros(0, np.int64), np.zeros(0, np.int32), self.N)
        rank = np.empty(len(names), np.int32)
        rank[[index[name] for name in names]] = np.arange(len(names), dtype=np.int32)
        return Facet(names, np.concatenate(docs), rank[np.concatenate(ids)], self.N)

    def facet_counts(self, name, docs):
        """{value: documents among `docs` (sorted) with it}, most frequent first."""
        facet = self.facets[name]
        if not facet.names or not len(docs):
            return {}
        tally = facet.count(docs)
        names = facet.names
        return {names[i]: int(tally[i]) for i in np.argsort(-tally, kind="stable") if tally[i]}

    def facet_docs(self, name, value):
        """Sorted documents whose `name` facet has `value` (decoded once per view)."""
        key = (name, value)
        docs = self._facet_docs.get(key)
        if docs is None:
            docs = self.postings(name, value).docs
            if len(docs):  # values in the index only: the cache stays bounded
                self._facet_docs[key] = docs
        return docs

    # -- postings

    def _locate(self, field, text):
        """[(FieldFile, term index, doc offset)] of a term, per segment holding it."""
        key = (field, text)
        with self._lock:
            hit = self._terms.get(key)
            if hit is not None:
                self._terms.move_to_end(key)
                return hit
        tbytes = text.encode("utf-8")
        found = []
        for qf, offset in self.files:
            f = qf.fields.get(field)
            if f is not None:
                i = f.find(tbytes)
                if i >= 0:
                    found.append((f, i, offset))
        found = tuple(found)
        with self._lock:
            self._terms[key] = found
            if len(self._terms) > TERM_CACHE:
                self._terms.popitem(last=False)
        return found

    def scratch(self, make):
        """This thread's scratch object for this view (`make(N)` on first use)."""
        scratch = getattr(self._threads, "scratch", None)
        if scratch is None:
            scratch = self._threads.scratch = make(self.N)
        return scratch

    def block_of(self, docs):
        """The scoring block of each document number."""
        return np.searchsorted(self.block_starts, docs, side="right") - 1

    def block_stats(self, field, text):
        """A term's postings per scoring block (see BlockStats); kept for frequent terms."""
        key = (field, text)
        with self._lock:
            hit = self._stats.get(key)
            if hit is not None:
                self._stats.move_to_end(key)
                return hit
        stats = BlockStats(self, field, text)
        if stats.postings >= STATS_CACHE_MIN_POSTINGS:
            with self._lock:
                self._stats[key] = stats
                while len(self._stats) > STATS_CACHE:
                    self._stats.popitem(last=False)
        return stats

    def holds(self, field, text, doc) -> bool:
        """Whether document `doc` has a posting of `text` in `field` (without decoding the others)."""
        for f, i, offset in self._locate(field, text):
            local = int(doc) - offset
            if local >= 0 and local < self.N and f.holds(i, local):
                return True
        return False

    def postings(self, field, text) -> Postings:
        found = self._locate(field, text)
        if not found:
            return EMPTY
        if len(found) == 1:
            f, i, offset = found[0]
            docs, tf = f.postings(i)
            return Postings(docs + offset if offset else docs, tf)
        docs, tfs = [], []
        for f, i, offset in found:
            d, tf = f.postings(i)
            docs.append(d + offset)
            tfs.append(tf.astype(np.float32))
        return Postings(np.concatenate(docs), np.concatenate(tfs))

    def sample_frequencies(self, sample_docs=400, deadline=None):
        """Document frequencies of exact forms and stems in a sample of documents.

        An estimate of the collection's most frequent words, from a few
        hundred stored texts: reading every term record instead takes seconds.
        """
        from collections import Counter

        from indexer.whoosh_analysis import term_positions

        if self._sampled is not None:
            return self._sampled
        exact_df, stem_df = Counter(), Counter()
        live = np.flatnonzero(self.live)
        step = max(1, len(live) // sample_docs)
        for doc in live[::step][:sample_docs]:
            text = self.stored(doc).get("text") or ""
            exact, stems, _ = term_positions(text[:SAMPLE_TEXT_CHARS])
            exact_df.update(exact.keys())
            stem_df.update(stems.keys())
            if deadline is not None and time.monotonic() > deadline:
                break
        self._sampled = (exact_df, stem_df)
        return self._sampled

    def warm(self, seconds, sample_docs=400):
        """Read the query files into the page cache and sample word frequencies.

        Nothing is decoded: the first query touching a common word reads
        mapped pages that are already in memory (shared with every other
        process serving this index). Bounded by `seconds`; returns the bytes
        read.
        """
        deadline = time.monotonic() + seconds
        done = 0
        for qf, _ in self.files:
            if qf.path is None:
                continue
            try:
                with open(qf.path, "rb") as f:
                    while time.monotonic() < deadline:
                        chunk = f.read(1 << 22)
                        if not chunk:
                            break
                        done += len(chunk)
            except OSError:
                continue
        if time.monotonic() < deadline:
            self.sample_frequencies(sample_docs, deadline)
        return done

    def display_form(self, exact):
        """How an index term is written in the collection, for showing to users.

        Index terms are normalized (مدرسه, علي); suggestions should read as
        Arabic is written (مدرسة, على): take the first document holding the
        term and its original spelling there, without diacritics.
        """
        cached = self._display.get(exact)
        if cached is not None:
            return cached
        form = None
        postings = self.postings("text_exact", exact)
        for doc in postings.docs[:5]:
            text = self.stored(doc).get("text") or ""
            # Bounded on a long text: the form shown falls back to the term.
            for match in WORD_PATTERN.finditer(text, 0, DISPLAY_SCAN_CHARS):
                candidate = strip_marks(match.group())
                # Skip spellings that only match through the dagger-alef
                # alternate (ٱلْكِتَٰبُ shows as الكتب, not الكتاب).
                if normalize(candidate) == exact:
                    form = candidate
                    break
            if form:
                break
        self._display[exact] = form or exact
        return self._display[exact]

    def doc_frequency(self, field, text):
        # Whoosh's document frequency: postings in every segment, deleted documents included.
        return sum(f.doc_frequency(i) for f, i, _ in self._locate(field, text))

    def idf(self, field, text):
        return self.idf_of(self.doc_frequency(field, text))

    def idf_of(self, df):
        # Whoosh's idf: log(N / (df + 1)) + 1, with N counting deleted documents (always > 0).
        return log(self.N / (df + 1)) + 1

    def bm25(self, field, text, postings, boost):
        """Whoosh BM25F scores of `postings` (one term in one field), times boost."""
        tf = postings.tf.astype(np.float64)
        return (boost * self.idf(field, text) * (K1 + 1)) * tf / (tf + self.norm[field][postings.docs])

    def terms_with_prefix(self, field, prefix, limit, deadline=None):
        """(terms, complete): up to `limit` terms of `field` starting with `prefix`, in order.

        Read from the query files' sorted term tables, IO_BATCH at a time per
        segment; `complete` is False when the deadline stopped the scan
        before `limit` terms or the end of the range.
        """
        tbytes = prefix.encode("utf-8")
        streams = []
        for qf, _ in self.files:
            f = qf.fields.get(field)
            if f is not None:
                streams.append((f, f.prefix_range(tbytes)))
        if len(streams) == 1:
            f, rng = streams[0]
            out = []
            for start in range(rng.start, rng.stop, IO_BATCH):
                if len(out) >= limit:
                    break
                if deadline is not None and out and deadline.passed():
                    return out, False
                out.extend(f.term(i) for i in range(start, min(start + IO_BATCH, rng.stop)))
            return out[:limit], True
        seen = set()
        for f, rng in streams:
            for n, i in enumerate(islice(rng, limit)):
                if n % IO_BATCH == 0 and deadline is not None and seen and deadline.passed():
                    return sorted(seen)[:limit], False
                seen.add(f.term(i))
        return sorted(seen)[:limit], True

    def stored(self, doc, text=True):
        """A document's stored fields by document number, safe to write out.

        Without `text`, the fields but the text: those of the most recently
        shown documents are kept (STORED_CACHE of them, small), since reading
        one through Whoosh costs a seek, a decompression of the whole record
        and an unpickling, and the same documents come back on popular
        queries. The text is always read (it can be megabytes).
        """
        doc = int(doc)
        if not text:
            with self._lock:
                hit = self._stored.get(doc)
                if hit is not None:
                    self._stored.move_to_end(doc)
                    return dict(hit)
        with self.io:
            fields = _safe_fields(self.searcher.stored_fields(doc))
        meta = {name: value for name, value in fields.items() if name != "text"}
        with self._lock:
            self._stored[doc] = meta
            if len(self._stored) > STORED_CACHE:
                self._stored.popitem(last=False)
        return fields if text else dict(meta)

    def document(self, doc_id):
        """The stored fields of the live document with id `doc_id`, or None."""
        with self.io:
            fields = self.searcher.document(id=doc_id)
        return None if fields is None else _safe_fields(fields)
