"""A read-only, numpy-backed view of one Whoosh index generation.

Whoosh stays the index of record; this view reads its postings once per
term (cached per generation) into arrays so that a query scores every
matching document with a few vector operations instead of a Python call per
posting. Scores follow Whoosh's BM25F exactly (same idf, same lossy field
lengths, same average lengths): tests compare them with Whoosh's own search.
"""

import re
import threading
from collections import OrderedDict
from itertools import chain, islice
from math import log
from pickle import loads

import numpy as np
from whoosh.codec.whoosh3 import W3LeafMatcher
from whoosh.matching import FilterMatcher, ListMatcher

from indexer.normalize import normalize, strip_marks
from indexer.tokenize import WORD_PATTERN
from schema import FACET_FIELDS

B = 0.75  # Whoosh's BM25F defaults
K1 = 1.2
NO_DATE = -1
POSITION_BITS = 24  # positions < 16M per field; doc numbers go above
CACHE_POSTINGS = 5_000_000  # postings kept in memory across cached terms
IO_BATCH = 256  # lexicon terms read per hold of the I/O lock
SAMPLE_TEXT_CHARS = 20_000  # of each sampled text, for word frequencies
DISPLAY_SCAN_CHARS = 20_000  # of a text, looking for how a term is written

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
    """One term's postings over the whole index: doc numbers, tf, raw values."""

    __slots__ = ("docs", "tf", "values", "_keys")

    def __init__(self, docs, tf, values):
        self.docs = docs
        self.tf = tf
        self.values = values
        self._keys = None

    def position_keys(self):
        """Sorted doc<<POSITION_BITS | position keys, for vectorised phrase checks."""
        if self._keys is None:
            # Each value is a 4-byte count and a pickled list of position
            # deltas (Whoosh's Positions format). Decode all lists, then undo
            # the deltas for every posting at once with one cumulative sum.
            lists = [loads(value[4:]) for value in self.values]
            lengths = np.fromiter(map(len, lists), np.int64, len(lists))
            total = int(lengths.sum())
            if not total:
                self._keys = np.zeros(0, np.int64)
                return self._keys
            deltas = np.fromiter(chain.from_iterable(lists), np.int64, total)
            running = np.cumsum(deltas)
            starts = np.cumsum(lengths) - lengths
            before = running[starts] - deltas[starts]  # running total before each posting
            positions = running - np.repeat(before, lengths)
            self._keys = (np.repeat(self.docs, lengths) << POSITION_BITS) + positions
        return self._keys

    def positions_of(self, doc):
        i = int(np.searchsorted(self.docs, doc))
        if i >= len(self.docs) or self.docs[i] != doc:
            return ()
        return np.cumsum(loads(self.values[i][4:]))


EMPTY = Postings(np.zeros(0, np.int64), np.zeros(0, np.float64), [])


class IndexView:
    def __init__(self, ix, scored_fields):
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
        self.live = np.ones(self.N, dtype=bool)
        for segreader, offset in self.leaves:
            for d in segreader.deleted_docs_set:
                self.live[offset + d] = False
        self.lengths = {}
        self.avgfl = {}
        for field in scored_fields:
            self.lengths[field] = self._field_lengths(field)
            self.avgfl[field] = self.searcher.avg_field_length(field) or 1
        self._cache = OrderedDict()
        self._cached_postings = 0
        self._lock = threading.Lock()
        # Whoosh readers seek() and read() shared file objects: one thread at a time.
        self.io = threading.RLock()
        self._display = {}
        self._sampled = None
        self.dates = self._dates()
        self.facets = {name: self._facet(name) for name in FACET_FIELDS}

    def close(self):
        self.searcher.close()

    # -- per-document arrays, built once per generation

    def _field_lengths(self, field):
        # doc_field_length gives the lossy one-byte length that Whoosh scores with.
        out = np.zeros(self.N, dtype=np.float64)
        for segreader, offset in self.leaves:
            n = segreader.doc_count_all()
            out[offset:offset + n] = [segreader.doc_field_length(d, field) for d in range(n)]
        return out

    def _dates(self):
        out = np.full(self.N, NO_DATE, dtype=np.int64)
        for segreader, offset in self.leaves:
            if not segreader.has_column("date"):
                continue
            raw = np.array(list(segreader.column_reader("date", translate=False)), dtype=np.uint64)
            values = raw.astype(np.int64)
            values[raw >= np.uint64(1 << 63)] = NO_DATE
            out[offset:offset + len(values)] = values
        return out

    def _facet(self, field):
        """(names, doc array, name-id array) from the field's postings."""
        names, docs, ids = [], [], []
        for term in self.reader.lexicon(field):
            name = term.decode("utf-8") if isinstance(term, bytes) else term
            postings = self.postings(field, name, cache=False)
            names.append(name)
            docs.append(postings.docs)
            ids.append(np.full(len(postings.docs), len(names) - 1, dtype=np.int32))
        if not names:
            return names, np.zeros(0, np.int64), np.zeros(0, np.int32)
        return names, np.concatenate(docs), np.concatenate(ids)

    # -- postings

    def postings(self, field, text, cache=True) -> Postings:
        key = (field, text)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        postings = self._read_postings(field, text)
        if cache:
            with self._lock:
                self._cache[key] = postings
                self._cached_postings += len(postings.docs)
                while self._cached_postings > CACHE_POSTINGS and len(self._cache) > 1:
                    _, old = self._cache.popitem(last=False)
                    self._cached_postings -= len(old.docs)
        return postings

    def _read_postings(self, field, text):
        with self.io:
            return self._read_postings_unlocked(field, text)

    def _read_postings_unlocked(self, field, text):
        docs, tfs, values = [], [], []
        for segreader, offset in self.leaves:
            try:
                m = segreader.postings(field, text)
            except Exception:  # TermNotFound, or a field this segment lacks
                continue
            # Deleted documents come wrapped in a FilterMatcher; read the raw
            # postings (the live mask removes deleted documents later).
            while isinstance(m, FilterMatcher):
                m = m.child
            if isinstance(m, W3LeafMatcher):
                while not m._atend:
                    m._read_data()
                    ids, weights, vals = m._data
                    block = np.cumsum(np.asarray(ids, dtype=np.int64)) + offset
                    docs.append(block)
                    if weights is None:
                        tfs.append(np.ones(len(block)))
                    elif isinstance(weights, float):
                        tfs.append(np.full(len(block), weights))
                    else:
                        tfs.append(np.asarray(weights, dtype=np.float64))
                    values.extend(vals if vals is not None else [b""] * len(block))
                    m._next_block()
            elif isinstance(m, ListMatcher):  # postings stored inline in the term table
                ids = np.asarray(m._ids, dtype=np.int64) + offset
                docs.append(ids)
                tfs.append(np.asarray(m._weights, dtype=np.float64) if m._weights is not None else np.ones(len(ids)))
                values.extend(m._values if m._values else [b""] * len(ids))
            else:
                raise TypeError(f"unexpected matcher {type(m).__name__} for {field}:{text}")
        if not docs:
            return EMPTY
        return Postings(np.concatenate(docs), np.concatenate(tfs).astype(np.float64), values)

    def sample_frequencies(self, sample_docs=400, deadline=None):
        """Document frequencies of exact forms and stems in a sample of documents.

        An estimate of the collection's most frequent words, from a few
        hundred stored texts: reading every term record instead takes seconds.
        """
        import time
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

    def warm(self, seconds, sample_docs=400, per_field=200):
        """Load the most frequent terms' postings (and phrase positions) now.

        A term's first use costs a decode of all its postings; for the few
        hundred words that occur in most documents (قال, الله, رسول) that is
        tens of milliseconds, and it would land on whichever query comes
        first. Which words are frequent is estimated from a sample of stored
        texts (Whoosh's most_frequent_terms reads every term record: seconds).
        Bounded by `seconds`; returns the number of terms loaded.
        """
        import time

        deadline = time.monotonic() + seconds
        exact_df, stem_df = self.sample_frequencies(sample_docs, deadline)
        loaded = 0
        pairs = zip([("text_exact", t) for t, _ in exact_df.most_common(per_field)],
                    [("text", t) for t, _ in stem_df.most_common(per_field)])
        for pair in pairs:
            for field, text in pair:
                if time.monotonic() > deadline:
                    return loaded
                postings = self.postings(field, text)
                if field == "text_exact":
                    postings.position_keys()
                loaded += 1
        return loaded

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
        with self.io:
            return self.reader.doc_frequency(field, text)

    def idf(self, field, text):
        # Whoosh's idf: log(N / (df + 1)) + 1, with N counting deleted documents.
        return log(self.N / (self.doc_frequency(field, text) + 1)) + 1

    def bm25(self, field, text, postings, boost):
        """Whoosh BM25F scores of `postings` (one term in one field), times boost."""
        fl = self.lengths[field][postings.docs]
        tf = postings.tf
        idf = self.idf(field, text)
        return boost * idf * (tf * (K1 + 1)) / (tf + K1 * ((1 - B) + B * fl / self.avgfl[field]))

    def terms_with_prefix(self, field, prefix, limit, deadline=None):
        """(terms, complete): up to `limit` terms of `field` starting with `prefix`.

        Read IO_BATCH terms per hold of the I/O lock, so other threads' reads
        interleave with a long scan (each read seeks to an explicit offset,
        so the lexicon iterator survives them). `complete` is False when the
        deadline stopped the scan before `limit` terms or the lexicon's end.
        """
        terms = self.reader.expand_prefix(field, prefix)
        out = []
        while len(out) < limit:
            wanted = min(IO_BATCH, limit - len(out))
            with self.io:
                batch = list(islice(terms, wanted))
            out.extend(t.decode("utf-8") if isinstance(t, bytes) else t for t in batch)
            if len(batch) < wanted:
                return out, True
            if deadline is not None and len(out) < limit and deadline.passed():
                return out, False
        return out, True

    def stored(self, doc):
        """A document's stored fields by document number, safe to write out."""
        with self.io:
            fields = self.searcher.stored_fields(int(doc))
        return _safe_fields(fields)

    def document(self, doc_id):
        """The stored fields of the live document with id `doc_id`, or None."""
        with self.io:
            fields = self.searcher.document(id=doc_id)
        return None if fields is None else _safe_fields(fields)
