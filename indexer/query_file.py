"""The query path's copy of a Whoosh segment: flat integer arrays, memory-mapped.

Whoosh stays the index of record. Its postings are pickled blocks that a
query would have to decode (pickle, zlib, many small reads) every time it
reads a common word, or keep decoded in each process's memory. So every
segment also gets one `.arq` file beside its own files (`MAIN_<segment>.arq`,
named like the segment's files: Whoosh deletes it with the segment), written
when the segment is committed and rebuilt from the segment when missing, so
a plain Whoosh index still works. It holds, per indexed field:

    terms         the field's terms, UTF-8, in Whoosh's (byte) order, one blob
    term_starts   int64, where each term starts in the blob (terms + 1)
    post_starts   int64, where each term's postings start (terms + 1)
    docs          int32, segment-local document numbers, ascending per term
    tf            the postings' weights (term frequencies), the narrowest
                  dtype that holds them exactly (uint8, uint16 or float32)
    pos_starts    int64, where each term's positions start (terms + 1),
                  for fields with positions
    positions     absolute positions, per posting in document order
                  (uint16 or uint32); a posting has `tf` of them
    lengths       uint8, each document's field length byte (Whoosh's lossy
                  length, what BM25F scores with), for scorable fields

and `date`: the date column's raw int64 values (Whoosh's sortable form).

Layout: 8 bytes of magic, a little-endian uint64 header length, a JSON
header (format, segment, document count, fields, and for every array its
dtype, offset and length), then the arrays, each at a multiple of 64 bytes.
No pickles: numpy maps the arrays straight from the file, read-only, so all
the processes and threads serving an index share one copy in the page cache.

No Flask and no engine here: the indexer writes these files at commit time
(`write_for_segments`), the search side opens them (`open_or_build`).
"""

import json
import os
import pickle
from bisect import bisect_left
from pathlib import Path

import numpy as np
from io import BytesIO

from whoosh.codec.whoosh3 import LENGTHS_COLUMN, W3Codec, W3LeafMatcher, _lenfield
from whoosh.filedb.structfile import StructFile
from whoosh.reading import SegmentReader

MAGIC = b"ARQFILE1"
FORMAT = 1
SUFFIX = ".arq"
ALIGN = 64
# Whoosh's Positions format: a 4-byte count, then pickle.dumps(deltas, 2),
# which starts PROTO 2, EMPTY_LIST, BINPUT 0 and ends with STOP.
_POSITIONS_HEAD = 4 + len(b"\x80\x02]q\x00")
_LIST_PICKLE_HEAD = b"\x80\x02]"
_PICKLE_STOP = b"."
EMPTY_INT32 = np.zeros(0, np.int32)


class QueryFileError(Exception):
    """An .arq file that cannot be used (damaged, other format): rebuild it."""


def file_name(segment) -> str:
    return segment.segment_id() + SUFFIX


def combined_name(indexname, generation) -> str:
    """The combined file of a TOC generation: `_MAIN_12.arq` beside `_MAIN_12.toc`.

    Outside Whoosh's segment-file pattern, so Whoosh's clean-up leaves it;
    `remove_stale_combined` removes older ones after a commit.
    """
    return f"_{indexname}_{generation}{SUFFIX}"


# -- writing

# A term's postings up to this size are read with one read() and decoded in
# memory; larger ones are decoded from the file (slower: in a compound segment
# opened without mmap, unpickling reads through a Python call per byte, which
# made whole merges twice as slow).
READ_WHOLE_TERM_BYTES = 4 << 20


def stored_blocks(postfile, terminfo, format_):
    """A segment's postings of one term, (ids, weights, values) per stored block."""
    if terminfo.is_inlined():
        # Postings kept in the term table, by older versions of this writer;
        # an empty values tuple stands for "no values".
        ids, weights, values = terminfo.inlined_postings()
        if len(values) != len(ids):
            values = (None,) * len(ids)
        yield ids, weights, values
        return
    offset, length = terminfo.extent()
    if isinstance(length, tuple):
        length = length[0]  # W3TermInfo.from_bytes leaves struct.unpack's tuple
    if length <= READ_WHOLE_TERM_BYTES:
        m = W3LeafMatcher(StructFile(BytesIO(postfile.get(offset, length))), 0, length, format_)
    else:
        m = W3LeafMatcher(postfile, offset, length, format_)
    # Whoosh's own decoders of the current block (the search engine reads
    # blocks the same way).
    while m.is_active():
        m._read_ids()
        m._read_weights()
        m._read_values()
        yield m._ids, m._weights, m._values
        m._next_block()




def _narrowest(values, candidates):
    """`values` as the first dtype of `candidates` that holds all of them exactly."""
    if not len(values):
        return values.astype(candidates[0])
    for dtype in candidates:
        cast = values.astype(dtype)
        if np.array_equal(cast, values):
            return cast
    return values


def _decode_positions(values, counts):
    """Absolute positions of Whoosh Positions values (deltas, pickled), all postings at once.

    The pickled lists are spliced into one pickle of one flat list (each
    value's items and APPEND/APPENDS opcodes go to the outer list), so one
    `pickle.loads` decodes a whole term; the deltas become positions with
    one cumulative sum.
    """
    stream = b"".join([_LIST_PICKLE_HEAD, *[v[_POSITIONS_HEAD:-1] for v in values], _PICKLE_STOP])
    deltas = np.array(pickle.loads(stream), dtype=np.int64)
    if len(deltas) != int(counts.sum()):
        raise QueryFileError("positions do not match the term frequencies")
    if not len(deltas):
        return deltas
    running = np.cumsum(deltas)
    starts = np.cumsum(counts) - counts
    before = running[starts[counts > 0]] - deltas[starts[counts > 0]]
    return running - np.repeat(before, counts[counts > 0])


class _FieldArrays:
    def __init__(self):
        self.terms, self.docs, self.tf, self.counts, self.positions = [], [], [], [], []


def _stored_postings(reader, postfile, fieldname, fieldobj):
    """(term, ids, weights, values) of one field of a segment, read through Whoosh's block decoders."""
    positioned = fieldobj.format.supports("positions")
    for tbytes, terminfo in reader.iter_field(fieldname, b""):
        ids, weights, values = [], [], []
        for block_ids, block_weights, block_values in stored_blocks(postfile, terminfo, fieldobj.format):
            ids.extend(block_ids)
            weights.extend(block_weights)
            if positioned:
                values.extend(block_values)
        yield tbytes, ids, weights, values


def _field_arrays(postings, positioned):
    """_FieldArrays of one field from its (term, ids, weights, values), in term order."""
    out = _FieldArrays()
    for tbytes, ids, weights, values in postings:
        out.terms.append(tbytes)
        out.docs.append(np.asarray(ids, dtype=np.int32))
        tf = np.asarray(weights, dtype=np.float64)
        out.tf.append(tf)
        if positioned:
            counts = tf.astype(np.int64)
            if not np.array_equal(counts, tf):  # a field boost: read each value's count
                counts = np.array([int.from_bytes(v[:4], "big") for v in values], dtype=np.int64)
            out.counts.append(counts)
            out.positions.append(_decode_positions(values, counts))
    return out


def build_arrays(reader, schema, fields, postings=None) -> tuple:
    """(header fields, {array name: ndarray}) for one open SegmentReader.

    `postings` ({field: [(term, ids, weights, values)]}, from the writer that
    just wrote the segment) saves reading the postings back from its files.
    """
    segment = reader.segment()
    postfile = segment.open_file(reader.storage(), W3Codec.POSTS_EXT)
    arrays = {}
    described = {}
    doc_count = reader.doc_count_all()
    try:
        for fieldname in fields:
            if fieldname not in schema or fieldname not in reader.indexed_field_names():
                continue
            fieldobj = schema[fieldname]
            positioned = fieldobj.format is not None and fieldobj.format.supports("positions")
            if postings is not None and fieldname in postings:
                source = postings[fieldname]
            else:
                source = _stored_postings(reader, postfile, fieldname, fieldobj)
            data = _field_arrays(source, positioned)
            lengths = np.fromiter(map(len, data.terms), np.int64, len(data.terms))
            arrays[f"{fieldname}.terms"] = np.frombuffer(b"".join(data.terms), dtype=np.uint8)
            arrays[f"{fieldname}.term_starts"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
            sizes = np.fromiter((len(d) for d in data.docs), np.int64, len(data.docs))
            arrays[f"{fieldname}.post_starts"] = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
            arrays[f"{fieldname}.docs"] = np.concatenate(data.docs) if data.docs else EMPTY_INT32
            tf = np.concatenate(data.tf) if data.tf else np.zeros(0)
            arrays[f"{fieldname}.tf"] = _narrowest(tf, (np.uint8, np.uint16, np.float32))
            if positioned:
                counts = np.fromiter((int(c.sum()) for c in data.counts), np.int64, len(data.counts))
                arrays[f"{fieldname}.pos_starts"] = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
                positions = np.concatenate(data.positions) if data.positions else np.zeros(0, np.int64)
                arrays[f"{fieldname}.positions"] = _narrowest(positions, (np.uint16, np.uint32, np.int64))
            if fieldobj.scorable:
                if reader._perdoc.has_column(_lenfield(fieldname)):
                    column = reader._perdoc._cached_reader(_lenfield(fieldname), LENGTHS_COLUMN)
                    arrays[f"{fieldname}.lengths"] = np.frombuffer(
                        bytes(column[d] for d in range(doc_count)), dtype=np.uint8)
                else:
                    arrays[f"{fieldname}.lengths"] = np.zeros(doc_count, np.uint8)
            described[fieldname] = {"positions": positioned, "scorable": bool(fieldobj.scorable),
                                    "terms": len(data.terms)}
    finally:
        postfile.close()
    if reader.has_column("date"):
        raw = np.array(list(reader.column_reader("date", translate=False)), dtype=np.uint64)
        arrays["date"] = raw.view(np.int64) if len(raw) else np.zeros(0, np.int64)
    header = {"format": FORMAT, "segment": segment.segment_id(), "doc_count": doc_count,
              "fields": described}
    return header, arrays


def _chunks(header, arrays):
    """The file's bytes, piece by piece: magic, header length, header, aligned arrays."""
    layout, offset = {}, 0
    for name, array in arrays.items():
        layout[name] = [array.dtype.str, offset, int(array.size)]
        offset += -(-array.nbytes // ALIGN) * ALIGN
    head = json.dumps({**header, "arrays": layout}, ensure_ascii=True).encode("ascii")
    start = len(MAGIC) + 8 + len(head)
    start = -(-start // ALIGN) * ALIGN
    head += b" " * (start - len(MAGIC) - 8 - len(head))
    yield MAGIC + len(head).to_bytes(8, "little") + head
    for name, array in arrays.items():
        data = memoryview(np.ascontiguousarray(array)).cast("B")
        yield data
        if len(data) % ALIGN:
            yield b"\0" * (-len(data) % ALIGN)


def _encode(header, arrays) -> bytes:
    return b"".join(bytes(chunk) for chunk in _chunks(header, arrays))


def write_file(folder, reader, schema, fields, postings=None) -> Path:
    """Write the .arq file of one segment (atomically: a reader never sees half of it)."""
    folder = Path(folder)
    header, arrays = build_arrays(reader, schema, fields, postings)
    return _write(folder / file_name(reader.segment()), header, arrays)


def _write(path, header, arrays) -> Path:
    # A dot name: Whoosh's clean-up and arsearch's checksums skip it.
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        for chunk in _chunks(header, arrays):
            f.write(chunk)  # no copy of the whole file in memory
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def _segments_key(segments):
    return [[s.segment_id(), s.doc_count_all()] for s in segments]


def combine(files, segments) -> tuple:
    """(header, arrays) of one query file over several segments' files, in order.

    `files[k]` is the QueryFile of `segments[k]`; document numbers become the
    index's (segment k's start at the sum of the doc counts before it), and
    each term's postings are its postings in every segment, in segment order:
    one set of arrays the query path reads without a loop over segments.
    Pure array work (no Whoosh decoding): seconds for a few hundred thousand
    documents.
    """
    offsets = np.concatenate([[0], np.cumsum([f.doc_count for f in files])]).astype(np.int64)
    total_docs = int(offsets[-1])
    arrays, described = {}, {}
    names = []
    for f in files:
        names.extend(n for n in f.header["fields"] if n not in names)
    for name in names:
        parts = [(f.fields[name], int(offsets[k])) for k, f in enumerate(files) if name in f.fields]
        info = dict(next(f.header["fields"][name] for f in files if name in f.fields))
        term_lists = [[field.terms[i] for i in range(len(field))] for field, _ in parts]
        merged = sorted(set().union(*term_lists))
        number = {t: k for k, t in enumerate(merged)}
        ids = [np.fromiter((number[t] for t in terms), np.int64, len(terms)) for terms in term_lists]
        post_counts = np.zeros(len(merged), np.int64)
        pos_counts = np.zeros(len(merged), np.int64)
        for (field, _), g in zip(parts, ids):
            post_counts[g] += np.diff(field.post_starts.astype(np.int64))
            if info["positions"]:
                pos_counts[g] += np.diff(field.pos_starts.astype(np.int64))
        post_starts = np.concatenate([[0], np.cumsum(post_counts)]).astype(np.int64)
        pos_starts = np.concatenate([[0], np.cumsum(pos_counts)]).astype(np.int64)
        tf_dtype = np.result_type(*[field.tf.dtype for field, _ in parts])
        docs = np.empty(int(post_starts[-1]), np.int32)
        tf = np.empty(int(post_starts[-1]), tf_dtype)
        if info["positions"]:
            pos_dtype = np.result_type(*[field.positions.dtype for field, _ in parts])
            positions = np.empty(int(pos_starts[-1]), pos_dtype)
        post_filled = np.zeros(len(merged), np.int64)
        pos_filled = np.zeros(len(merged), np.int64)
        for (field, offset), g in zip(parts, ids):
            # Each segment's postings, term after term, go to their terms' places.
            n = np.diff(field.post_starts.astype(np.int64))
            start = post_starts[g] + post_filled[g]
            post_filled[g] += n
            dest = ranges(start, start + n)
            docs[dest] = field.docs.astype(np.int64) + offset
            tf[dest] = field.tf
            if info["positions"]:
                n = np.diff(field.pos_starts.astype(np.int64))
                start = pos_starts[g] + pos_filled[g]
                pos_filled[g] += n
                positions[ranges(start, start + n)] = field.positions
        lengths = np.fromiter(map(len, merged), np.int64, len(merged))
        arrays[f"{name}.terms"] = np.frombuffer(b"".join(merged), dtype=np.uint8)
        arrays[f"{name}.term_starts"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        arrays[f"{name}.post_starts"] = post_starts
        arrays[f"{name}.docs"] = docs
        arrays[f"{name}.tf"] = tf
        if info["positions"]:
            arrays[f"{name}.pos_starts"] = pos_starts
            arrays[f"{name}.positions"] = positions
        if info["scorable"]:
            arrays[f"{name}.lengths"] = np.concatenate([
                f.fields[name].lengths if name in f.fields and f.fields[name].lengths is not None
                else np.zeros(f.doc_count, np.uint8) for f in files])
        info["terms"] = len(merged)
        described[name] = info
    if any(f.dates is not None for f in files):
        no_date = np.int64(-1)
        arrays["date"] = np.concatenate([f.dates if f.dates is not None else np.full(f.doc_count, no_date)
                                         for f in files])
    header = {"format": FORMAT, "segment": None, "segments": _segments_key(segments),
              "doc_count": total_docs, "fields": described}
    return header, arrays


def ranges(lo, hi):
    """The indexes lo[0]..hi[0]-1, lo[1]..hi[1]-1, ... as one array."""
    counts = hi - lo
    total = int(counts.sum())
    if not total:
        return np.zeros(0, np.int64)
    return np.repeat(lo - (np.cumsum(counts) - counts), counts) + np.arange(total)


def write_combined(storage, schema, segments, generation, fields, indexname="MAIN"):
    """Write the combined query file of a commit's segments (before its TOC), if several."""
    if len(segments) < 2:
        return None
    folder = Path(storage.folder)
    files = []
    for segment in segments:
        files.append(QueryFile.open(folder / file_name(segment), segment.segment_id(), segment.doc_count_all()))
    header, arrays = combine(files, segments)
    return _write(folder / combined_name(indexname, generation), header, arrays)


def remove_stale_combined(folder, indexname, generation) -> None:
    """Remove combined files of generations before `generation` (a reader that
    still maps one keeps it; one opening an old TOC now falls back to the
    segments' files)."""
    prefix = f"_{indexname}_"
    for path in Path(folder).glob(f"{prefix}*{SUFFIX}"):
        number = path.name[len(prefix):-len(SUFFIX)]
        if number.isdigit() and int(number) < generation:
            try:
                path.unlink()
            except OSError:
                pass


def open_combined(folder, segments, generation, indexname="MAIN"):
    """The combined QueryFile of these segments at `generation`, or None."""
    path = Path(folder) / combined_name(indexname, generation)
    try:
        qf = QueryFile.open(path)
    except QueryFileError:
        return None
    if qf.header.get("segments") != _segments_key(segments):
        return None
    return qf


def combined_or_build(folder, files, segments, generation, indexname="MAIN"):
    """The combined QueryFile of `segments` (their `files`): mapped, or combined now
    (written for the next process when the folder is writable, else in memory)."""
    found = open_combined(folder, segments, generation, indexname)
    if found is not None:
        return found
    header, arrays = combine(files, segments)
    try:
        return QueryFile.open(_write(Path(folder) / combined_name(indexname, generation), header, arrays))
    except OSError:
        return QueryFile.from_arrays(header, arrays)


def write_for_segments(storage, schema, segments, fields, postings=None) -> list:
    """Write the missing .arq files of `segments` (called before their TOC is written).

    `postings` ({segment id: {field: [(term, ids, weights, values)]}}) are
    postings the writer still holds, used instead of reading them back.
    """
    folder = Path(storage.folder)
    written = []
    for segment in segments:
        if (folder / file_name(segment)).exists():
            continue
        reader = SegmentReader(storage, schema, segment)
        try:
            held = (postings or {}).get(segment.segment_id())
            written.append(write_file(folder, reader, schema, fields, held))
        finally:
            reader.close()
    return written


# -- reading


class _TermKeys:
    """The terms of a field as a sequence of bytes, for bisect (no copy of the blob)."""

    __slots__ = ("blob", "starts")

    def __init__(self, blob, starts):
        self.blob = blob
        self.starts = starts

    def __len__(self):
        return len(self.starts) - 1

    def __getitem__(self, i):
        return self.blob[self.starts[i]:self.starts[i + 1]].tobytes()


class FieldFile:
    """One field of one segment's .arq file."""

    def __init__(self, arrays, name, info):
        self.positioned = info["positions"]
        self.terms = _TermKeys(arrays[f"{name}.terms"], arrays[f"{name}.term_starts"])
        self.post_starts = arrays[f"{name}.post_starts"]
        self.docs = arrays[f"{name}.docs"]
        self.tf = arrays[f"{name}.tf"]
        self.pos_starts = arrays.get(f"{name}.pos_starts")
        self.positions = arrays.get(f"{name}.positions")
        self.lengths = arrays.get(f"{name}.lengths")

    def __len__(self):
        return len(self.terms)

    def find(self, tbytes) -> int:
        """The index of term `tbytes`, or -1."""
        i = bisect_left(self.terms, tbytes)
        return i if i < len(self.terms) and self.terms[i] == tbytes else -1

    def prefix_range(self, prefix) -> range:
        """Indexes of the terms that start with `prefix` (bytes)."""
        lo = bisect_left(self.terms, prefix)
        hi = lo
        # Terms with the prefix sort just after it; step to the end by bisect.
        hi = bisect_left(self.terms, prefix + b"\xff", lo)
        return range(lo, hi)

    def term(self, i) -> str:
        return self.terms[i].decode("utf-8")

    def doc_frequency(self, i) -> int:
        return int(self.post_starts[i + 1] - self.post_starts[i])

    def postings(self, i):
        """(docs, tf) of term `i`: views into the mapped file, no copy."""
        a, b = self.post_starts[i], self.post_starts[i + 1]
        return self.docs[a:b], self.tf[a:b]

    def positions_at(self, i, starts, counts):
        """(row per position, positions) of postings of term `i` whose positions
        start at `starts` (relative to the term's first) with `counts` each."""
        total = int(counts.sum())
        first = self.pos_starts[i] + starts
        index = np.repeat(first - (np.cumsum(counts) - counts), counts) + np.arange(total)
        return np.repeat(np.arange(len(counts)), counts), self.positions[index].astype(np.int64)


class QueryFile:
    """One segment's .arq file, memory-mapped read-only."""

    def __init__(self, path, arrays, header):
        self.path = path
        self.header = header
        self.doc_count = header["doc_count"]
        self.fields = {name: FieldFile(arrays, name, info) for name, info in header["fields"].items()}
        self.dates = arrays.get("date")

    @classmethod
    def open(cls, path, segment_id=None, doc_count=None):
        path = Path(path)
        try:
            # A plain ndarray over the map: slicing np.memmap objects costs
            # a Python call each (numpy's memmap subclass), this costs none.
            raw = np.memmap(path, dtype=np.uint8, mode="r").view(np.ndarray)
        except (OSError, ValueError) as exc:
            raise QueryFileError(f"{path}: {exc}") from None
        return cls._from_buffer(path, raw, segment_id, doc_count)

    @classmethod
    def _from_buffer(cls, path, raw, segment_id=None, doc_count=None):
        if len(raw) < len(MAGIC) + 8 or raw[:len(MAGIC)].tobytes() != MAGIC:
            raise QueryFileError(f"{path}: not an arsearch query file")
        size = int.from_bytes(raw[len(MAGIC):len(MAGIC) + 8].tobytes(), "little")
        start = len(MAGIC) + 8
        try:
            header = json.loads(raw[start:start + size].tobytes())
        except ValueError:
            raise QueryFileError(f"{path}: damaged header") from None
        if header.get("format") != FORMAT:
            raise QueryFileError(f"{path}: format {header.get('format')}, this arsearch reads {FORMAT}")
        if segment_id is not None and header.get("segment") != segment_id:
            raise QueryFileError(f"{path}: written for segment {header.get('segment')}")
        if doc_count is not None and header.get("doc_count") != doc_count:
            raise QueryFileError(f"{path}: {header.get('doc_count')} documents, the segment has {doc_count}")
        body = start + size
        arrays = {}
        for name, (dtype, offset, count) in header["arrays"].items():
            dtype = np.dtype(dtype)
            begin = body + offset
            end = begin + count * dtype.itemsize
            if end > len(raw):
                raise QueryFileError(f"{path}: truncated")
            arrays[name] = raw[begin:end].view(dtype)
        return cls(path, arrays, header)

    @classmethod
    def from_arrays(cls, header, arrays):
        """An in-memory query file (when the index folder cannot be written)."""
        data = _encode(header, arrays)
        return cls._from_buffer(None, np.frombuffer(data, dtype=np.uint8))


def open_or_build(folder, reader, schema, fields, log=None) -> QueryFile:
    """The QueryFile of an open SegmentReader: mapped from its .arq, or built now.

    Built when missing or unusable (an index written by plain Whoosh or by an
    older arsearch): written beside the segment when the folder is
    writable, kept in memory otherwise.
    """
    segment = reader.segment()
    folder = Path(folder)
    path = folder / file_name(segment)
    try:
        return QueryFile.open(path, segment.segment_id(), reader.doc_count_all())
    except QueryFileError as exc:
        if path.exists() and log is not None:
            log(f"rebuilding {path.name}: {exc}")
    try:
        return QueryFile.open(write_file(folder, reader, schema, fields))
    except OSError:
        header, arrays = build_arrays(reader, schema, fields)
        return QueryFile.from_arrays(header, arrays)
