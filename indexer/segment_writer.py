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
term's postings are written block by block in one call. Tiny blocks are
stored uncompressed, which the reader supports (compression is a per-block
flag). Memory is bounded by flushing a segment every `segment_postings`
postings, so a large build writes several segments in one transaction.
"""

import zlib
from array import array
from pickle import dumps

from whoosh.codec.whoosh3 import (
    LENGTHS_COLUMN,
    WHOOSH3_HEADER_MAGIC,
    W3Codec,
    W3FieldWriter,
    W3PostingsWriter,
    W3Segment,
    W3TermInfo,
    _lenfield,
)
from whoosh.system import pack_ushort
from whoosh.system import emptybytes
from whoosh.util.numeric import byte_to_length, length_to_byte
from whoosh.writing import SegmentWriter

# Blocks whose pickled data is smaller than this are not worth compressing.
MIN_COMPRESS_BYTES = 128
# zlib.compress() sets up a 32 KB window and full-size hash tables for every
# call (~50 µs here); blocks are at most a few KB, and a 4 KB window gives the
# same output size in ~8 µs. zlib.decompress reads the window size from the
# stream header, so readers need nothing special.
_WINDOW_BITS = 12
_MEM_LEVEL = 4


def _compress(data, level):
    compressor = zlib.compressobj(level, zlib.DEFLATED, _WINDOW_BITS, _MEM_LEVEL)
    return compressor.compress(data) + compressor.flush()
DEFAULT_SEGMENT_POSTINGS = 4_000_000
# Terms with at most this many postings are stored inline in the term table
# (a format Whoosh's reader supports, though its own writer never produces
# it: W3PostingsWriter calls a misspelled `set_inline`).
INLINE_LIMIT = 4


class BatchPostingsWriter(W3PostingsWriter):
    """Writes a whole term's postings per call; same block layout as Whoosh."""

    def write_term(self, ids, weights, values, lengths):
        limit = self._blocklimit
        for start in range(0, len(ids), limit):
            if self._ids:
                self._write_block()
            end = start + limit
            chunk_ids = ids[start:end]
            chunk_weights = weights[start:end]
            self._ids = array("I", chunk_ids)
            self._weights = array("f", chunk_weights)
            self._maxweight = max(0, max(chunk_weights))
            self._values = [v for v in values[start:end] if v]
            if lengths is not None:
                chunk_lengths = [n for n in (lengths[d] for d in chunk_ids) if n]
                if chunk_lengths:
                    self._minlength = min(chunk_lengths)
                    self._maxlength = max(chunk_lengths)

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
        self._postwriter = BatchPostingsWriter(
            self._postfile, codec._blocklimit, compression=codec._compression,
            inlinelimit=codec._inlinelimit,
        )

    def write_term(self, btext, ids, weights, values, lengths):
        if len(ids) <= INLINE_LIMIT:
            self._write_inline_term(btext, ids, weights, values, lengths)
            return
        self.start_term(btext)
        self._postwriter.write_term(ids, weights, values, lengths)
        self.finish_term()

    def _write_inline_term(self, btext, ids, weights, values, lengths):
        # Rare terms keep their few postings inside the term record: no block
        # in the postings file, no second seek when the term is searched.
        terminfo = W3TermInfo()
        terminfo._weight = sum(weights)
        terminfo._df = len(ids)
        if lengths is not None:
            present = [n for n in (lengths[d] for d in ids) if n]
            if present:
                terminfo._minlength = min(present)
                terminfo._maxlength = max(present)
        terminfo._maxweight = max(0, max(weights))
        terminfo._minid = ids[0]
        terminfo._maxid = ids[-1]
        terminfo.set_inlined(ids, weights, [v for v in values if v])
        self._tindex.add(pack_ushort(self._fieldid) + btext, terminfo.to_bytes())


class BatchCodec(W3Codec):
    """W3Codec whose field writer batches; segments record the plain codec.

    The segment object is pickled into the index's TOC, so it must name only
    Whoosh's own codec: the index stays readable by any Whoosh reader.
    """

    def field_writer(self, storage, segment):
        return BatchFieldWriter(self, storage, segment)

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
        # Whoosh's pool interface, used when segments are merged in.
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


class FastSegmentWriter(SegmentWriter):
    """Drop-in SegmentWriter (same files, TOC and semantics), faster postings."""

    def __init__(self, ix, segment_postings=DEFAULT_SEGMENT_POSTINGS, **kwargs):
        kwargs.setdefault("codec", BatchCodec())
        super().__init__(ix, **kwargs)
        self.pool = MemoryPostings()
        self.segment_postings = segment_postings
        self.flushed_segments = []
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
                if field.indexed:
                    terms = pool.terms(fieldname)
                    scorable = field.scorable
                    postings = field.index(value)
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

    def _field_lengths(self, pdr, fieldname, doccount):
        if not pdr.has_column(_lenfield(fieldname)):
            return None
        column = pdr._cached_reader(_lenfield(fieldname), LENGTHS_COLUMN)
        return [byte_to_length(column[d]) for d in range(doccount)]

    def _flush_segment(self):
        self.perdocwriter.close()
        pdr = self.per_document_reader()
        doccount = self.docnum
        fieldwriter = self.fieldwriter
        pool = self.pool
        try:
            for fieldname in sorted(pool.fields):
                fieldobj = self.schema[fieldname]
                lengths = self._field_lengths(pdr, fieldname, doccount) if fieldobj.scorable else None
                fieldwriter.start_field(fieldname, fieldobj)
                for tbytes in sorted(pool.fields[fieldname]):
                    ids, weights, values = pool.sorted_entry(fieldname, tbytes)
                    values = [v if v is not None else emptybytes for v in values]
                    fieldwriter.write_term(tbytes, ids, weights, values, lengths)
                fieldwriter.finish_field()
        finally:
            fieldwriter.close()
            pdr.close()

    def _start_next_segment(self):
        """Finish the current segment (not yet in the TOC) and open a new one."""
        self.flushed_segments.append(self._finalize_segment())
        self.pool = MemoryPostings()
        self.docnum = self.docbase = 0
        self.newsegment = self.codec.new_segment(self.storage, self.indexname)
        self.compound = self.newsegment.should_assemble()
        self.perdocwriter = self.codec.per_document_writer(self.storage, self.newsegment)
        self.fieldwriter = self.codec.field_writer(self.storage, self.newsegment)
        self._added = False

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
        self._commit_toc(finalsegments)
        self._finish()
