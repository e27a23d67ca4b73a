"""A faster Whoosh segment writer that writes standard Whoosh segments.

Profiling a plain Whoosh build shows most of the time in the writer, not the
analyzer: every posting is a tuple pushed through a sorting pool (temporary
run files, then a merge sort), and at commit each posting is handed one by
one through `add_postings` -> `add` -> `add_posting`, with a per-posting
length lookup, and every term's first block is zlib-compressed even when it
holds a single posting (zlib's set-up alone costs ~10 µs).

This writer keeps Whoosh's file formats, TOC, locking, deletions and merge
policy (it subclasses `SegmentWriter`), and changes only how postings travel:
they are grouped per field and term in memory as documents are added, and each
term's postings are written in one call; a term that fits one block (most do)
is encoded straight to bytes. Memory is bounded by flushing a segment every
`segment_postings` postings, so a large build writes several segments in one
transaction.

Fields analysed by our chain (`ArabicTextField`) take a shorter road still:
each document's words become integer codes of their forms
(`indexer.form_codes`, one dictionary lookup per word), appended to flat
arrays (`TokenColumns`, eight bytes a form); when the segment is written,
one stable numpy sort per field turns them into postings in Whoosh's term
order, terms that fit one block are encoded in batches, and the query file
gets the same arrays without decoding anything. On the benchmark corpus
this took a single-process build from 34 to 19 CPU seconds, and the x10
build from 352 to 183 (185 s to 100 s on 2 cores), measured side by side.

What it writes is what Whoosh's own writer writes, block for block: with
compression off the files are byte-identical (tests check a build and a
merge), so plain Whoosh can read, update and merge the index. The one
difference is that small blocks are stored uncompressed, which every Whoosh
reader handles (compression is a flag in each block's header). Postings are
never stored inline in the term table: Whoosh's reader accepts that layout
but its merge fails on it (the inline matcher gives `''` for a field without
values, which Whoosh's pool rejects), and its own writer never writes it.

Merges stream: a segment that is merged in (`commit(optimize=True)`, or the
merge policy picking small segments) has its documents copied at once and its
postings copied term by term when the new segment is written, renumbered and
without deleted documents, instead of every posting going through the
in-memory pool as in Whoosh's `add_reader`. A merge holds one term's postings
at a time (plus what any Whoosh segment write holds: the term table's index
and the per-document columns), not the merged segments' postings.
"""

import heapq
import zlib
from array import array
from bisect import bisect_left
from pickle import dumps

from whoosh import columns
from whoosh.analysis.tokenizers import IDTokenizer
from whoosh.codec.whoosh3 import (
    LENGTHS_COLUMN,
    STORED_COLUMN,
    WHOOSH3_HEADER_MAGIC,
    W3Codec,
    W3FieldWriter,
    W3PerDocWriter,
    W3PostingsWriter,
    W3Segment,
    W3TermInfo,
    _lenfield,
)
from whoosh.filedb.filetables import _lengths as _KEY_VALUE_LENGTHS
from whoosh.formats import Existence
from whoosh.reading import SegmentReader
from whoosh.system import pack_int, pack_long, pack_ushort
from whoosh.util.numeric import byte_to_length, length_to_byte
from whoosh.writing import IndexingError, SegmentWriter

import numpy as np

from indexer import query_file
from indexer.form_codes import FormCodes
from indexer.query_file import FieldPostings, stored_blocks
from indexer.whoosh_analysis import ArabicTextField

# Blocks whose pickled data is smaller than this are not worth compressing:
# on the benchmark corpus, blocks of 128-255 bytes were 45% of the zlib calls
# and 20% of their time, and compression took them from 5.7 to 4.1 MB.
MIN_COMPRESS_BYTES = 256
# zlib.compress() sets up a 32 KB window and full-size hash tables for every
# call (~50 µs here); blocks are at most a few KB, and a 4 KB window gives the
# same output size in ~8 µs. zlib.decompress reads the window size from the
# stream header, so readers need nothing special.
_WINDOW_BITS = 12
_MEM_LEVEL = 4


def _compress(data, level):
    compressor = zlib.compressobj(level, zlib.DEFLATED, _WINDOW_BITS, _MEM_LEVEL)
    return compressor.compress(data) + compressor.flush()


# Postings (index forms, for fields on the token-array path) per segment.
DEFAULT_SEGMENT_POSTINGS = 6_000_000
# Distinct values per field whose postings a writer remembers (_index_field).
MEMO_VALUES = 10_000
# A term record that points into the postings file: flags (0: not inline),
# total weight, document frequency, min and max length bytes, max weight,
# first and last document; then the offset and length of its postings.
_TERMINFO = W3TermInfo._struct


class BatchPostingsWriter(W3PostingsWriter):
    """Takes a term's postings a run at a time; same blocks as Whoosh.

    Whoosh's `add_posting` fills a block of `blocklimit` postings and writes
    it when the next posting arrives; `add_run` does the same with slices, so
    block boundaries, block statistics and the term info are Whoosh's.
    """

    def add_run(self, ids, weights, values, lengths):
        """Append postings (ids ascending, above those already added) to the current term.

        `values` may hold empty values (b'' or None, for formats without
        values); like `add_posting`, only non-empty values are kept.
        `lengths` maps a document number to its field length, or is None.
        """
        limit = self._blocklimit
        n = len(ids)
        start = 0
        while start < n:
            room = limit - len(self._ids)
            if not room:
                self._write_block()
                room = limit
            end = start + room
            if start == 0 and end >= n:
                chunk_ids, chunk_weights, chunk_values = ids, weights, values
                end = n
            else:
                chunk_ids = ids[start:end]
                chunk_weights = weights[start:end]
                chunk_values = values[start:end]
            self._ids.extend(chunk_ids)
            self._weights.extend(chunk_weights)
            top = max(chunk_weights)
            if top > self._maxweight:
                self._maxweight = top
            self._values.extend([v for v in chunk_values if v])
            if lengths is not None:
                present = [x for x in map(lengths.__getitem__, chunk_ids) if x]
                if present:
                    low = min(present)
                    if self._minlength is None or low < self._minlength:
                        self._minlength = low
                    high = max(present)
                    if high > self._maxlength:
                        self._maxlength = high
            start = end

    def _write_block(self, last=False):
        # Whoosh's block layout, but small blocks skip zlib (see module doc).
        if not self._blockcount:
            self._postfile.write(WHOOSH3_HEADER_MAGIC)
        self._terminfo.add_block(self)
        data = (self._mini_ids(), self._mini_weights(), self._mini_values())
        databytes = dumps(data, 2)
        comp = self._compression if len(databytes) >= MIN_COMPRESS_BYTES else 0
        if comp:
            databytes = _compress(databytes, comp)
        ids = self._ids
        infobytes = dumps(
            (
                len(ids),
                ids[-1],
                self._maxweight,
                comp,
                length_to_byte(self._minlength),
                length_to_byte(self._maxlength),
            ),
            2,
        )
        blocklength = len(infobytes) + len(databytes)
        if last:
            blocklength = -blocklength
        self._postfile.write_int(blocklength)
        self._postfile.write(infobytes)
        self._postfile.write(databytes)
        self._blockcount += 1
        self._new_block()


class BatchFieldWriter(W3FieldWriter):
    def start_field(self, fieldname, fieldobj):
        super().start_field(fieldname, fieldobj)
        codec = self._codec
        self._fixedsize = self._format.fixed_value_size()
        self._compression = codec._compression
        self._postwriter = BatchPostingsWriter(
            self._postfile, codec._blocklimit, compression=codec._compression,
            inlinelimit=codec._inlinelimit,
        )

    def add_run(self, ids, weights, values, lengths):
        """Postings of the term opened by `start_term`; see BatchPostingsWriter.add_run."""
        self._postwriter.add_run(ids, weights, values, lengths)

    def write_term(self, btext, ids, weights, values, lengths):
        """A whole term's postings (ids ascending)."""
        if len(ids) <= self._codec._blocklimit:
            self._write_one_block_term(btext, ids, weights, values, lengths)
            return
        self.start_term(btext)
        self._postwriter.add_run(ids, weights, values, lengths)
        self.finish_term()

    def _write_one_block_term(self, btext, ids, weights, values, lengths):
        # Most terms fit one block (most occur once). This writes the bytes
        # that start_term, add_posting..., finish_term write for them
        # (W3PostingsWriter's block and W3TermInfo's record; a test compares
        # the files byte for byte) without their per-term objects and calls.
        n = len(ids)
        stored = array("f", weights)  # Whoosh keeps weights as 32-bit floats
        top = max(weights)
        maxweight = top if top > 0 else 0
        if lengths is not None:
            present = [x for x in map(lengths.__getitem__, ids) if x]
        else:
            present = None
        if present:
            minlength, maxlength = min(present), max(present)
            minbyte, maxbyte = _length_byte(minlength), _length_byte(maxlength)
        else:
            minlength, maxlength = None, 0
            minbyte = maxbyte = 0
        if n == 1:
            deltas = (ids[0],)
        else:
            deltas = tuple([ids[0]] + [b - a for a, b in zip(ids, ids[1:])])
        if stored.count(1.0) == n:
            miniweights = None
        elif stored.count(stored[0]) == n:
            miniweights = stored[0]
        else:
            miniweights = tuple(stored)
        fixedsize = self._fixedsize
        if fixedsize == 0:
            minivalues = None
        elif fixedsize is None or fixedsize < 0:
            minivalues = tuple([v for v in values if v])
        else:
            minivalues = b"".join([v for v in values if v])
        self._emit_one_block(btext, n, ids[0], ids[-1], deltas, miniweights, minivalues,
                             sum(stored), maxweight, minbyte, maxbyte)

    def write_one_block_terms(self, terms, sizes, docs, weights, values, lengths):
        """Many one-block terms at once (`sizes[i] <= blocklimit`): `_write_one_block_term`'s
        bytes, with its per-posting work done by numpy over all the terms.

        `docs` (ascending per term) and `weights` (float64) are arrays over
        the terms' postings, `values` a list; `lengths` as for write_term.
        """
        if not len(terms):
            return
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        ends = starts + sizes
        docs = docs.astype(np.int64)
        deltas = docs.copy()
        deltas[1:] -= docs[:-1]
        deltas[starts] = docs[starts]
        stored = weights.astype(np.float32)  # Whoosh keeps weights as 32-bit floats
        as_double = stored.astype(np.float64)
        totals = np.add.reduceat(as_double, starts).tolist()
        tops = np.maximum.reduceat(weights, starts).tolist()
        lows = np.minimum.reduceat(as_double, starts)
        highs = np.maximum.reduceat(as_double, starts)
        ones = (lows == 1.0) & (highs == 1.0)
        same = (lows == highs).tolist()
        ones = ones.tolist()
        if lengths is not None:
            doc_lengths = np.frombuffer(lengths, dtype=np.uint32)[docs].astype(np.int64)
            present = np.add.reduceat((doc_lengths > 0).astype(np.int64), starts) > 0
            big = np.iinfo(np.int64).max
            minlengths = np.minimum.reduceat(np.where(doc_lengths > 0, doc_lengths, big), starts)
            maxlengths = np.maximum.reduceat(doc_lengths, starts)
            minbytes = [_length_byte(x) if p else 0 for x, p in zip(minlengths.tolist(), present.tolist())]
            maxbytes = [_length_byte(x) if p else 0 for x, p in zip(maxlengths.tolist(), present.tolist())]
        else:
            minbytes = maxbytes = [0] * len(terms)
        docs_list = docs.tolist()
        deltas_list = deltas.tolist()
        stored_list = stored.tolist()
        one_block = self._one_block
        offset = self._postfile.tell()
        blocks, records = [], []
        for i, (start, end) in enumerate(zip(starts.tolist(), ends.tolist())):
            if ones[i]:
                miniweights = None
            elif same[i]:
                miniweights = stored_list[start]
            else:
                miniweights = tuple(stored_list[start:end])
            top = tops[i]
            data, record = one_block(end - start, docs_list[start], docs_list[end - 1],
                                     tuple(deltas_list[start:end]), miniweights, tuple(values[start:end]),
                                     totals[i], top if top > 0 else 0, minbytes[i], maxbytes[i], offset)
            blocks.append(data)
            records.append(record)
            offset += len(data)
        self._postfile.write(b"".join(blocks))
        prefix = pack_ushort(self._fieldid)
        self._add_term_records([prefix + t for t in terms], records)

    def _emit_one_block(self, btext, n, first, last, deltas, miniweights, minivalues,
                        total, maxweight, minbyte, maxbyte):
        """Write one term whose postings fit one block: its block and its term record."""
        postfile = self._postfile
        data, record = self._one_block(n, first, last, deltas, miniweights, minivalues,
                                       total, maxweight, minbyte, maxbyte, postfile.tell())
        postfile.write(data)
        self._tindex.add(pack_ushort(self._fieldid) + btext, record)

    def _one_block(self, n, first, last, deltas, miniweights, minivalues,
                   total, maxweight, minbyte, maxbyte, offset):
        """(postings bytes, term record) of a one-block term written at `offset`."""
        databytes = dumps((deltas, miniweights, minivalues), 2)
        comp = self._compression if len(databytes) >= MIN_COMPRESS_BYTES else 0
        if comp:
            databytes = _compress(databytes, comp)
        infobytes = dumps((n, last, maxweight, comp, minbyte, maxbyte), 2)
        blocklength = len(infobytes) + len(databytes)
        record = _TERMINFO.pack(
            0, total, n, minbyte, maxbyte, maxweight, first, last,
        ) + pack_long(offset) + pack_int(blocklength + 8)
        # Header, then the one (hence last: negative length) block.
        return WHOOSH3_HEADER_MAGIC + pack_int(-blocklength) + infobytes + databytes, record

    def _add_term_records(self, keys, records):
        """OrderedHashWriter.add for many keys (ascending): the same bytes, one write."""
        tindex = self._tindex
        if keys[0] <= tindex.lastkey:
            raise ValueError(f"Keys must increase: {tindex.lastkey!r}..{keys[0]!r}")
        dbfile = tindex.dbfile
        pos = dbfile.tell()
        parts = []
        index_append = tindex.index.append
        buckets = tindex.buckets
        hashfn = tindex.hashfn
        pack = _KEY_VALUE_LENGTHS.pack
        for key, value in zip(keys, records):
            index_append(pos)
            h = hashfn(key)
            buckets[h & 255].append((h, pos))
            part = pack(len(key), len(value)) + key + value
            parts.append(part)
            pos += len(part)
        dbfile.write(b"".join(parts))
        tindex.lastkey = keys[-1]


# length_to_byte, memoized: lengths read back from a length column are already
# quantized to one byte, so at most 256 distinct values reach it.
_LENGTH_BYTES = {}


def _length_byte(length):
    byte = _LENGTH_BYTES.get(length)
    if byte is None:
        byte = _LENGTH_BYTES[length] = length_to_byte(length)
    return byte


# zlib level for posting blocks and stored fields. Whoosh uses 3; level 1
# compressed the corpus's stored documents 1.85x faster for 3% more bytes.
# Readers only check whether a block is compressed, not at which level.
COMPRESSION_LEVEL = 1
# Whoosh's own level for stored fields (3).
WHOOSH_STORED_LEVEL = STORED_COLUMN._child._level


class BatchPerDocWriter(W3PerDocWriter):
    """Whoosh's per-document writer; stored fields at the codec's `stored_level`.

    The column is Whoosh's (a pickled dict per document, zlib), which
    Whoosh's STORED_COLUMN reads back whatever the level.
    """

    def _create_column(self, fieldname, column):
        if fieldname == "_stored":
            column = columns.PickleColumn(columns.CompressedBytesColumn(level=self._codec.stored_level))
        super()._create_column(fieldname, column)


class BatchCodec(W3Codec):
    """W3Codec whose field writer batches; segments record the plain codec.

    The segment object is pickled into the index's TOC, so it must name only
    Whoosh's own codec: the index stays readable by any Whoosh reader.
    """

    def __init__(self, blocklimit=128, compression=COMPRESSION_LEVEL, inlinelimit=1,
                 stored_level=COMPRESSION_LEVEL):
        super().__init__(blocklimit=blocklimit, compression=compression, inlinelimit=inlinelimit)
        self.stored_level = stored_level

    def field_writer(self, storage, segment):
        return BatchFieldWriter(self, storage, segment)

    def per_document_writer(self, storage, segment):
        return BatchPerDocWriter(self, storage, segment)

    def new_segment(self, storage, indexname):
        return W3Segment(W3Codec(), indexname)


class MemoryPostings:
    """Postings grouped per field and term; replaces Whoosh's sorting pool."""

    def __init__(self):
        self.fields = {}
        self.count = 0
        self.unsorted = set()

    def terms(self, fieldname):
        terms = self.fields.get(fieldname)
        if terms is None:
            terms = self.fields[fieldname] = {}
        return terms

    def add(self, item):
        # Whoosh's pool interface, used by add_reader for readers that are
        # not segments of this index (those are streamed, see FastSegmentWriter).
        fieldname, tbytes, docnum, weight, vbytes = item
        terms = self.terms(fieldname)
        entry = terms.get(tbytes)
        if entry is None:
            terms[tbytes] = ([docnum], [weight], [vbytes])
        else:
            if docnum < entry[0][-1]:
                self.unsorted.add((fieldname, tbytes))
            entry[0].append(docnum)
            entry[1].append(weight)
            entry[2].append(vbytes)
        self.count += 1

    def sorted_entry(self, fieldname, tbytes):
        ids, weights, values = self.fields[fieldname][tbytes]
        if (fieldname, tbytes) in self.unsorted:
            order = sorted(range(len(ids)), key=ids.__getitem__)
            ids = [ids[i] for i in order]
            weights = [weights[i] for i in order]
            values = [values[i] for i in order]
        return ids, weights, values

    def iter_postings(self):
        for fieldname in sorted(self.fields):
            for tbytes in sorted(self.fields[fieldname]):
                ids, weights, values = self.sorted_entry(fieldname, tbytes)
                for docnum, weight, value in zip(ids, weights, values):
                    yield fieldname, tbytes, docnum, weight, value

    def cleanup(self):
        self.fields = {}
        self.count = 0
        self.unsorted = set()


class _Merging:
    """A segment being merged into the writer's current segment.

    Its documents were copied (stored fields, lengths, columns) when it was
    added, as documents `base`, `base + 1`, ...; `docmap[old]` is the new
    number of a live document, -1 for a deleted one (None: nothing deleted).
    Its postings are copied when the segment is flushed, read straight from
    its files: deletions were decided when the documents were copied, so the
    raw postings are renumbered through `docmap` and never filtered twice.
    """

    def __init__(self, segment, base, docmap):
        self.segment = segment
        self.base = base
        self.docmap = docmap
        self.reader = None
        self.postfile = None

    def open(self, storage, schema):
        self.reader = SegmentReader(storage, schema, self.segment)
        self.postfile = self.segment.open_file(self.reader.storage(), W3Codec.POSTS_EXT)

    def close(self):
        if self.postfile is not None:
            self.postfile.close()
        if self.reader is not None:
            self.reader.close()

    def terms(self, fieldname):
        """(term bytes, term info) of one field, in term order."""
        return self.reader.iter_field(fieldname, b"")

    def runs(self, terminfo, fieldobj):
        """A term's live postings, renumbered, as (ids, weights, values) runs of at most a block."""
        base, docmap = self.base, self.docmap
        for ids, weights, values in stored_blocks(self.postfile, terminfo, fieldobj.format):
            if docmap is None:
                yield [base + d for d in ids], weights, values
                continue
            new = [docmap[d] for d in ids]
            if min(new) >= 0:
                yield new, weights, values
                continue
            keep = [i for i, d in enumerate(new) if d >= 0]
            if keep:
                yield ([new[i] for i in keep], [weights[i] for i in keep],
                       [values[i] for i in keep])


def _merged_lexicon(fieldname, pool_terms, merging):
    """(term, [(source, term info)]) in term order; source 0 is the pool."""

    def tagged(terms, i):
        for tbytes, info in terms:
            yield tbytes, i, info

    streams = [tagged(((t, None) for t in sorted(pool_terms)), 0)]
    streams.extend(tagged(s.terms(fieldname), i) for i, s in enumerate(merging, 1))
    current, holders = None, []
    # Ties on the term come out in source order (the tuples differ in `i`).
    for tbytes, i, info in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
        if tbytes != current:
            if holders:
                yield current, holders
            current, holders = tbytes, []
        holders.append((i, info))
    if holders:
        yield current, holders


class TokenColumns:
    """One analysed field's forms in a segment: flat arrays over all its documents.

    `codes[i]` and `positions[i]` are the i-th form's code (indexer.form_codes)
    and position; `docnums[k]` holds `counts[k]` forms in a row. Eight bytes
    a form, where a posting in the pool costs a hundred.
    """

    __slots__ = ("codes", "positions", "docnums", "counts")

    def __init__(self):
        self.codes = array("i")
        self.positions = array("i")
        self.docnums = array("i")
        self.counts = array("i")

    def add(self, docnum, codes, positions):
        if codes:
            self.codes.extend(codes)
            self.positions.extend(range(len(codes)) if positions is None else positions)
            self.docnums.append(docnum)
            self.counts.append(len(codes))


# Encoded value of a one-position posting, by position, per format class
# (bounded by the longest document seen).
_SINGLE_VALUES = {}


def _position_values(encode, format_key, post_starts, freq, positions):
    """Whoosh's value of every posting: `encode(poslist)`, as its writer would call it."""
    singles = _SINGLE_VALUES.setdefault(format_key, [])
    firsts = positions[post_starts]
    top = int(firsts.max()) if len(firsts) else -1
    while len(singles) <= top:
        singles.append(encode([len(singles)]))
    values = list(map(singles.__getitem__, firsts.tolist()))
    several = np.flatnonzero(freq > 1)
    if len(several):
        flat = positions.tolist()
        for i, start, n in zip(several.tolist(), post_starts[several].tolist(), freq[several].tolist()):
            values[i] = encode(flat[start:start + n])
    return values


def columnar_postings(columns, forms, stream):
    """(FieldPostings, posting starts) of one field's TokenColumns, in Whoosh's term order.

    One stable sort by term: the arrays are in document order and, within
    a document, in position order, so each term's postings come out in
    document order with their positions ascending, as Whoosh writes them.
    """
    codes = np.frombuffer(columns.codes, dtype=np.int32)
    docs = np.repeat(np.frombuffer(columns.docnums, dtype=np.int32),
                     np.frombuffer(columns.counts, dtype=np.int32))
    positions = np.frombuffer(columns.positions, dtype=np.int32)
    term = np.frombuffer(getattr(forms, stream), dtype=np.int32)[codes]
    if stream == "root":
        # A word's second root stands at its position, right after the first.
        second = np.frombuffer(forms.root2, dtype=np.int32)[codes]
        term = np.stack([term, second], axis=1).ravel()
        docs, positions = np.repeat(docs, 2), np.repeat(positions, 2)
    if stream != "exact":
        keep = term >= 0  # stopwords have no stem, most words no second root
        term, docs, positions = term[keep], docs[keep], positions[keep]
    used = np.unique(term)
    names = [forms.terms[t].encode("utf-8") for t in used.tolist()]
    order = sorted(range(len(names)), key=names.__getitem__)
    rank = np.zeros(len(forms.terms), dtype=np.int64)
    rank[used[order]] = np.arange(len(order))
    key = rank[term]
    by_term = np.argsort(key, kind="stable")
    key, docs, positions = key[by_term], docs[by_term], positions[by_term]
    n = len(key)
    new_posting = np.ones(n, dtype=bool)
    new_posting[1:] = (key[1:] != key[:-1]) | (docs[1:] != docs[:-1])
    post_starts = np.flatnonzero(new_posting)
    freq = np.diff(np.append(post_starts, n))
    post_key = key[post_starts]
    post_sizes = np.bincount(post_key, minlength=len(order))
    pos_sizes = np.bincount(key, minlength=len(order))
    fp = FieldPostings([names[i] for i in order], post_sizes, docs[post_starts], freq,
                       positions, pos_sizes)
    return fp, post_starts


class FastSegmentWriter(SegmentWriter):
    """Drop-in SegmentWriter (same files, TOC and semantics), faster postings."""

    def __init__(self, ix, segment_postings=DEFAULT_SEGMENT_POSTINGS, query_fields=(), **kwargs):
        kwargs.setdefault("codec", BatchCodec())
        super().__init__(ix, **kwargs)
        # Fields copied into each new segment's query file (indexer.query_file).
        self.query_fields = tuple(query_fields)
        self._held = None  # the last flushed segment's postings, for its query file
        self.pool = MemoryPostings()
        # Fields analysed by our chain keep their forms as token arrays (see
        # TokenColumns), turned into postings when the segment is written.
        self.forms = FormCodes()
        self.columns = {}
        self._memo = {}  # field name -> {value: postings}, see _index_field
        self.segment_postings = segment_postings
        self.flushed_segments = []
        self._merging = []
        self._simple = not any(
            f.vector or f.separate_spelling() for _, f in self.schema.items()
        )

    def add_document(self, **fields):
        if not self._simple or any(name.startswith("_") for name in fields):
            return super().add_document(**fields)
        self._check_state()
        schema = self.schema
        docnum = self.docnum
        pool = self.pool
        perdocwriter = self.perdocwriter
        self._check_fields(schema, fields)
        perdocwriter.start_doc(docnum)
        try:
            for fieldname in sorted(fields):
                value = fields[fieldname]
                if value is None:
                    continue
                field = schema[fieldname]
                length = 0
                if type(field) is ArabicTextField and type(value) is str:
                    codes, positions, stems = self.forms.encode(value)
                    length = stems if field.stemmed else len(codes)
                    if field.root:
                        length += sum(map(self.forms.second_root.__getitem__, codes))
                    columns = self.columns.get(fieldname)
                    if columns is None:
                        columns = self.columns[fieldname] = TokenColumns()
                    columns.add(docnum, codes, positions)
                    pool.count += len(codes)
                elif field.indexed:
                    terms = pool.terms(fieldname)
                    scorable = field.scorable
                    postings = self._index_field(fieldname, field, value)
                    for tbytes, freq, weight, vbytes in postings:
                        if scorable:
                            length += freq
                        entry = terms.get(tbytes)
                        if entry is None:
                            terms[tbytes] = ([docnum], [weight], [vbytes])
                        else:
                            entry[0].append(docnum)
                            entry[1].append(weight)
                            entry[2].append(vbytes)
                        pool.count += 1
                perdocwriter.add_field(fieldname, field, value if field.stored else None, length)
                column = field.column_type
                if column:
                    perdocwriter.add_column_value(fieldname, column, field.to_column_value(value))
        except Exception:
            perdocwriter.cancel_doc()
            raise
        perdocwriter.finish_doc()
        self._added = True
        self.docnum += 1
        if pool.count >= self.segment_postings:
            self._start_next_segment()

    def _index_field(self, fieldname, field, value):
        """`field.index(value)`, without its analyzer where the answer is known.

        An ID field's one term is the value itself; values of other fields
        (a source, a set of tags, a date) repeat from document to document
        and are analysed once per segment. A test checks both against
        `field.index`.
        """
        if type(value) is str:
            if not field.unique:
                memo = self._memo.get(fieldname)
                if memo is None:
                    memo = self._memo[fieldname] = {}
                postings = memo.get(value)
                if postings is None:
                    postings = tuple(field.index(value))
                    if len(memo) < MEMO_VALUES:
                        memo[value] = postings
                return postings
            if type(field.analyzer) is IDTokenizer and type(field.format) is Existence:
                return ((value.encode("utf-8"), 1, field.format.field_boost, b""),)
        return field.index(value)

    def add_reader(self, reader):
        """Merge a reader's live documents into the current segment.

        Segments of this index (what the merge policies pass) are streamed
        at flush time; any other reader goes through the pool like Whoosh's.
        """
        self._check_state()
        leaves = [leaf for leaf, _ in reader.leaf_readers()]
        if not all(isinstance(leaf, SegmentReader) and any(leaf.segment() is s for s in self.segments)
                   for leaf in leaves):
            return super().add_reader(reader)
        for leaf in leaves:
            self._add_segment(leaf)

    def _add_segment(self, reader):
        base = self.docnum
        count = reader.doc_count_all()
        if reader.has_deletions():
            docmap = array("i", [-1]) * count
            new = base
            for d in range(count):
                if not reader.is_deleted(d):
                    docmap[d] = new
                    new += 1
        else:
            docmap, new = None, base + count
        fieldnames = set(self.schema.names())
        fieldnames.update(f for f in reader.indexed_field_names() if f in self.schema)
        self.write_per_doc(fieldnames, reader)
        if self.docnum != new:
            raise IndexingError(
                f"merging segment {reader.segment().segment_id()}: copied "
                f"{self.docnum - base} documents, expected {new - base}"
            )
        self._merging.append(_Merging(reader.segment(), base, docmap))
        self._added = True

    def _field_lengths(self, pdr, fieldname, doccount):
        if not pdr.has_column(_lenfield(fieldname)):
            return None
        column = pdr._cached_reader(_lenfield(fieldname), LENGTHS_COLUMN)
        return array("I", [byte_to_length(column[d]) for d in range(doccount)])

    def _flush_segment(self):
        self.perdocwriter.close()
        pdr = self.per_document_reader()
        merging, self._merging = self._merging, []
        try:
            for source in merging:
                source.open(self.storage, self.schema)
            self._write_postings(pdr, merging)
        finally:
            self.fieldwriter.close()
            for source in merging:
                source.close()
            pdr.close()

    def _write_postings(self, pdr, merging):
        schema = self.schema
        pool = self.pool
        fieldwriter = self.fieldwriter
        columnar = {}
        for fieldname, columns in self.columns.items():
            if not len(columns.codes):
                continue
            fieldobj = schema[fieldname]
            data, post_starts = columnar_postings(columns, self.forms, fieldobj.stream)
            if merging or pool.fields.get(fieldname):
                self._pool_postings(fieldname, fieldobj, data, post_starts)
            else:
                columnar[fieldname] = (data, post_starts)
        self.columns = {}
        names = {name for name, terms in pool.fields.items() if terms}
        names.update(columnar)
        for source in merging:
            names.update(f for f in source.reader.indexed_field_names()
                         if f in schema and schema[f].format is not None)
        held = {}
        for fieldname in sorted(names):
            fieldobj = schema[fieldname]
            lengths = self._field_lengths(pdr, fieldname, self.docnum) if fieldobj.scorable else None
            terms = pool.fields.get(fieldname, {})
            if merging:
                self._merge_field(fieldname, fieldobj, terms, merging, lengths)
                continue
            # The query file's postings, kept while the segment is finished
            # (references to the pool's lists, no copies).
            fieldwriter.start_field(fieldname, fieldobj)
            if fieldname in columnar:
                data, post_starts = columnar[fieldname]
                self._write_columnar(fieldobj, data, post_starts, lengths)
                if fieldname in self.query_fields:
                    held[fieldname] = data
                fieldwriter.finish_field()
                continue
            keep = [] if fieldname in self.query_fields else None
            for tbytes in sorted(terms):
                ids, weights, values = pool.sorted_entry(fieldname, tbytes)
                fieldwriter.write_term(tbytes, ids, weights, values, lengths)
                if keep is not None:
                    keep.append((tbytes, ids, weights, values))
            if keep is not None:
                held[fieldname] = query_file.field_postings(keep, fieldobj)
            fieldwriter.finish_field()
        self._held = held if not merging else None

    def _columnar_lists(self, fieldobj, data, post_starts):
        """Whoosh's (ids, weights, values) of all a field's postings, as lists in term order."""
        fmt = fieldobj.format
        values = _position_values(fmt.encode, type(fmt), post_starts, data.tf, data.positions)
        weights = (data.tf * fmt.field_boost).tolist()
        return data.docs.tolist(), weights, values

    def _write_columnar(self, fieldobj, data, post_starts, lengths):
        """Write a field's token-array postings: runs of one-block terms in batches."""
        fmt = fieldobj.format
        values = _position_values(fmt.encode, type(fmt), post_starts, data.tf, data.positions)
        weights = data.tf.astype(np.float64) * fmt.field_boost
        fieldwriter = self.fieldwriter
        sizes = data.post_sizes
        starts = np.concatenate([[0], np.cumsum(sizes)]).tolist()
        big = np.flatnonzero(sizes > self.codec._blocklimit).tolist()
        done = 0  # terms written so far
        for term in big + [len(sizes)]:
            if term > done:  # the one-block terms before this one
                a, b = starts[done], starts[term]
                fieldwriter.write_one_block_terms(data.terms[done:term], sizes[done:term], data.docs[a:b],
                                                  weights[a:b], values[a:b], lengths)
            if term < len(sizes):
                a, b = starts[term], starts[term + 1]
                fieldwriter.write_term(data.terms[term], data.docs[a:b].tolist(), weights[a:b].tolist(),
                                       values[a:b], lengths)
            done = term + 1
        data.tf = weights

    def _pool_postings(self, fieldname, fieldobj, data, post_starts):
        """Move token-array postings into the pool (merges and mixed writes take the pool path)."""
        ids, weights, values = self._columnar_lists(fieldobj, data, post_starts)
        terms = self.pool.terms(fieldname)
        start = 0
        for tbytes, size in zip(data.terms, data.post_sizes.tolist()):
            end = start + size
            entry = terms.get(tbytes)
            if entry is None:
                terms[tbytes] = (ids[start:end], weights[start:end], values[start:end])
            else:
                # The pool's own postings came from other documents: sort at write time.
                self.pool.unsorted.add((fieldname, tbytes))
                entry[0].extend(ids[start:end])
                entry[1].extend(weights[start:end])
                entry[2].extend(values[start:end])
            start = end

    def _merge_field(self, fieldname, fieldobj, terms, merging, lengths):
        """One field's postings from the pool and the merged segments, in document order.

        A term is gathered until it outgrows one block (most terms do not:
        they take the one-block path), then streamed a run at a time.
        """
        fieldwriter = self.fieldwriter
        limit = self.codec._blocklimit
        in_field = False
        for tbytes, holders in _merged_lexicon(fieldname, terms, merging):
            ids, weights, values = [], [], []
            streaming = False
            for run in self._term_runs(fieldname, fieldobj, tbytes, holders, merging):
                if streaming:
                    fieldwriter.add_run(*run, lengths)
                    continue
                ids.extend(run[0])
                weights.extend(run[1])
                values.extend(run[2])
                if len(ids) > limit:
                    if not in_field:
                        fieldwriter.start_field(fieldname, fieldobj)
                        in_field = True
                    fieldwriter.start_term(tbytes)
                    fieldwriter.add_run(ids, weights, values, lengths)
                    ids = weights = values = None
                    streaming = True
            if streaming:
                fieldwriter.finish_term()
            elif ids:
                if not in_field:
                    fieldwriter.start_field(fieldname, fieldobj)
                    in_field = True
                fieldwriter.write_term(tbytes, ids, weights, values, lengths)
            # else: every document holding the term was deleted; Whoosh drops it too.
        if in_field:
            fieldwriter.finish_field()

    def _term_runs(self, fieldname, fieldobj, tbytes, holders, merging):
        # The pool's documents and each merged segment's range of new numbers
        # do not overlap, and segments were added in ascending order: emit
        # the pool's postings below each segment's base, then the segment's.
        if holders[0][0] == 0:
            ids, weights, values = self.pool.sorted_entry(fieldname, tbytes)
        else:
            ids = weights = values = ()
        pos = 0
        for i, terminfo in holders:
            if i == 0:
                continue
            source = merging[i - 1]
            cut = bisect_left(ids, source.base, pos)
            if cut > pos:
                yield ids[pos:cut], weights[pos:cut], values[pos:cut]
                pos = cut
            yield from source.runs(terminfo, fieldobj)
        if pos < len(ids):
            yield ids[pos:], weights[pos:], values[pos:]

    def _start_next_segment(self):
        """Finish the current segment (not yet in the TOC) and open a new one."""
        self.flushed_segments.append(self._finalize_segment())
        self.pool = MemoryPostings()
        self.columns = {}
        self.docnum = self.docbase = 0
        self.newsegment = self.codec.new_segment(self.storage, self.indexname)
        self.compound = self.newsegment.should_assemble()
        self.perdocwriter = self.codec.per_document_writer(self.storage, self.newsegment)
        self.fieldwriter = self.codec.field_writer(self.storage, self.newsegment)
        self._added = False

    def _finalize_segment(self):
        segment = super()._finalize_segment()
        held, self._held = self._held, None
        if self.query_fields and held is not None:
            # Now, from the postings just written, not read back later.
            query_file.write_for_segments(self.storage, self.schema, [segment], self.query_fields,
                                          {segment.segment_id(): held})
        return segment

    def write_query_files(self, segments):
        """The query files of `segments` that are missing (before they are in a TOC)."""
        if self.query_fields:
            query_file.write_for_segments(self.storage, self.schema, segments, self.query_fields)

    def added_count(self):
        """Documents written by this writer so far, over all its segments."""
        return sum(s.doc_count_all() for s in self.flushed_segments) + self.docnum

    def commit(self, mergetype=None, optimize=None, merge=None):
        self._check_state()
        finalsegments = self._merge_segments(mergetype, optimize, merge)
        finalsegments.extend(self.flushed_segments)
        if self._added:
            finalsegments.append(self._finalize_segment())
        else:
            self._close_segment()
        self.write_query_files(finalsegments)
        if self.query_fields:
            query_file.write_combined(self.storage, self.schema, finalsegments, self.generation,
                                      self.query_fields, self.indexname)
        self._commit_toc(finalsegments)
        if self.query_fields:
            query_file.remove_stale_combined(self.storage.folder, self.indexname, self.generation)
        self._finish()
