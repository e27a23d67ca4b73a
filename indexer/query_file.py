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
    docs          uint8, the low 8 bits of each posting's document number
                  (segment-local, ascending per term)
    run_starts    int64, where each term's runs start (terms + 1)
    run_blocks    a run's block: the document number's high bits (doc >>
                  8), uint16 up to 16M documents; a run is a term's
                  postings in one block of BLOCK (256) documents
    run_counts    uint8, a run's postings minus one
    tf            the postings' weights (term frequencies), the narrowest
                  dtype that holds them exactly (uint8, uint16 or float32)
    pos_starts    int64, where each term's positions start (terms + 1),
                  for fields whose positions the query path reads
                  (POSITION_FIELDS; Whoosh keeps the others)
    positions     absolute positions, per posting in document order; a
                  posting has `tf` of them. Either their low 8 bits, with
    pos_exc       the (ascending) indexes of the positions >= 256 and
    pos_high      their high bits (position >> 8), or, when that is
                  smaller, the positions themselves (the narrowest dtype,
                  pos_exc and pos_high empty)
    lengths       uint8, each document's field length byte (Whoosh's lossy
                  length, what BM25F scores with), for scorable fields

and `date`: the date column's raw int64 values (Whoosh's sortable form).
A posting's document is run_blocks[run] * BLOCK + docs[row]: 1 byte per
posting and 3 per run (a rare term's lone posting: 4 bytes, as an int32),
and a block's postings are found from the runs without reading the others
(search_app.index_view.BlockStats). `build_arrays` and `combine` give the
logical arrays (int32 docs, positions); `encode` turns them into these
when they are written.

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

from schema import POSITION_FIELDS

MAGIC = b"ARQFILE1"
FORMAT = 2  # 2: documents as runs of 8-bit parts, positions of POSITION_FIELDS only, split
SUFFIX = ".arq"
ALIGN = 64
# Whoosh's Positions format: a 4-byte count, then pickle.dumps(deltas, 2),
# which starts PROTO 2, EMPTY_LIST, BINPUT 0 and ends with STOP.
_POSITIONS_HEAD = 4 + len(b"\x80\x02]q\x00")
_LIST_PICKLE_HEAD = b"\x80\x02]"
_PICKLE_STOP = b"."
EMPTY_INT32 = np.zeros(0, np.int32)
BLOCK_BITS = 8
BLOCK = 1 << BLOCK_BITS  # documents per block of the docs encoding
POSITION_HIGH_BITS = 8  # a position's low byte in `positions`, the rest in pos_high


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
    integers = values.dtype.kind in "iu"
    if integers:
        lo, hi = values.min(), values.max()  # no full-size copy per candidate
    for dtype in candidates:
        if integers and np.dtype(dtype).kind in "iu":
            info = np.iinfo(dtype)
            if info.min <= lo and hi <= info.max:
                return values.astype(dtype, copy=False)
            continue
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


class FieldPostings:
    """One field's postings in term order, as concatenated arrays.

    `terms` (UTF-8 bytes, Whoosh's order); `post_sizes[i]`: postings of term
    i; `docs` (int32), `tf` (weights: term frequencies); for fields with
    positions, `positions` (absolute, per posting in document order) and
    `pos_sizes[i]`: positions of term i. What `build_arrays` writes; the
    segment writer makes one straight from its token arrays.
    """

    __slots__ = ("terms", "post_sizes", "docs", "tf", "positions", "pos_sizes")

    def __init__(self, terms, post_sizes, docs, tf, positions=None, pos_sizes=None):
        self.terms, self.post_sizes, self.docs, self.tf = terms, post_sizes, docs, tf
        self.positions, self.pos_sizes = positions, pos_sizes


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


def _field_arrays(postings, positioned) -> FieldPostings:
    """FieldPostings of one field from its (term, ids, weights, values), in term order."""
    terms, docs, tfs, counts, positions = [], [], [], [], []
    for tbytes, ids, weights, values in postings:
        terms.append(tbytes)
        docs.append(np.asarray(ids, dtype=np.int32))
        tf = np.asarray(weights, dtype=np.float64)
        tfs.append(tf)
        if positioned:
            count = tf.astype(np.int64)
            if not np.array_equal(count, tf):  # a field boost: read each value's count
                count = np.array([int.from_bytes(v[:4], "big") for v in values], dtype=np.int64)
            counts.append(int(count.sum()))
            positions.append(_decode_positions(values, count))
    sizes = np.fromiter(map(len, docs), np.int64, len(docs))
    return FieldPostings(
        terms, sizes,
        np.concatenate(docs) if docs else EMPTY_INT32,
        np.concatenate(tfs) if tfs else np.zeros(0),
        (np.concatenate(positions) if positions else np.zeros(0, np.int64)) if positioned else None,
        np.array(counts, dtype=np.int64) if positioned else None,
    )


def field_postings(postings, fieldobj) -> FieldPostings:
    """FieldPostings of (term, ids, weights, values) in term order (Whoosh's posting lists)."""
    positioned = fieldobj.format is not None and fieldobj.format.supports("positions")
    return _field_arrays(postings, positioned)


def _starts(sizes):
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


def build_arrays(reader, schema, fields, postings=None) -> tuple:
    """(header fields, {array name: ndarray}) for one open SegmentReader.

    `postings` ({field: FieldPostings}, from the writer that just wrote the
    segment) saves reading the postings back from its files.
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
                data = postings[fieldname]
            else:
                data = _field_arrays(_stored_postings(reader, postfile, fieldname, fieldobj), positioned)
            lengths = np.fromiter(map(len, data.terms), np.int64, len(data.terms))
            arrays[f"{fieldname}.terms"] = np.frombuffer(b"".join(data.terms), dtype=np.uint8)
            arrays[f"{fieldname}.term_starts"] = _starts(lengths)
            arrays[f"{fieldname}.post_starts"] = _starts(data.post_sizes)
            arrays[f"{fieldname}.docs"] = np.asarray(data.docs, dtype=np.int32)
            arrays[f"{fieldname}.tf"] = _narrowest(np.asarray(data.tf), (np.uint8, np.uint16, np.float32))
            if positioned:
                arrays[f"{fieldname}.pos_starts"] = _starts(data.pos_sizes)
                arrays[f"{fieldname}.positions"] = _narrowest(np.asarray(data.positions),
                                                              (np.uint16, np.uint32, np.int64))
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


def _encode_docs(docs, post_starts):
    """(docs' low bits, run_starts, run_blocks, run_counts) of document numbers
    ascending per term (the terms' postings at post_starts)."""
    docs = np.asarray(docs, dtype=np.int64)
    post_starts = np.asarray(post_starts, dtype=np.int64)
    n = len(docs)
    block = docs >> BLOCK_BITS
    new = np.ones(n, dtype=bool)  # a run starts at each term's first posting and each block change
    if n:
        new[1:] = block[1:] != block[:-1]
        firsts = post_starts[:-1][np.diff(post_starts) > 0]
        new[firsts] = True
    first = np.flatnonzero(new)
    counts = np.diff(np.append(first, n)) - 1
    if len(counts) and counts.max() >= BLOCK:
        raise ValueError("document numbers are not ascending within a term")
    run_before = np.concatenate([[0], np.cumsum(new)]).astype(np.int64)
    return ((docs & (BLOCK - 1)).astype(np.uint8), run_before[post_starts],
            _narrowest(block[first], (np.uint16, np.uint32, np.int64)), counts.astype(np.uint8))


def _encode_positions(positions):
    """(positions, pos_exc, pos_high): low bytes with the high bits of positions
    >= 256 aside, or the plain positions (narrowest dtype) when that is smaller."""
    p = np.asarray(positions)
    if p.dtype.kind not in "iu":
        p = p.astype(np.int64)
    plain = _narrowest(p, (np.uint8, np.uint16, np.uint32, np.int64))
    exc = np.flatnonzero(p >> POSITION_HIGH_BITS)
    empty = (plain, np.zeros(0, np.uint32), np.zeros(0, np.uint8))
    if not len(exc):
        return empty
    exc = _narrowest(exc, (np.uint32, np.int64))
    high = _narrowest(p[exc] >> POSITION_HIGH_BITS, (np.uint8, np.uint16, np.uint32, np.int64))
    if len(p) + exc.nbytes + high.nbytes >= plain.nbytes:
        return empty
    return (p & ((1 << POSITION_HIGH_BITS) - 1)).astype(np.uint8), exc, high


def encode(header, arrays) -> tuple:
    """The on-disk (header, arrays) of logical ones (build_arrays', combine's):
    documents as runs (`_encode_docs`), positions of POSITION_FIELDS only, split
    (`_encode_positions`). See the module's docstring. Fields already
    encoded (`combine` encodes each as it goes) are passed through."""
    out, described = {}, {}
    for name, info in header["fields"].items():
        info = dict(info)
        if f"{name}.run_starts" in arrays:
            out.update((key, a) for key, a in arrays.items() if key.startswith(name + "."))
            described[name] = info
            continue
        for kind in ("terms", "term_starts", "post_starts"):
            out[f"{name}.{kind}"] = arrays[f"{name}.{kind}"]
        low, run_starts, run_blocks, run_counts = _encode_docs(arrays[f"{name}.docs"],
                                                               arrays[f"{name}.post_starts"])
        out[f"{name}.docs"] = low
        out[f"{name}.run_starts"] = run_starts
        out[f"{name}.run_blocks"] = run_blocks
        out[f"{name}.run_counts"] = run_counts
        out[f"{name}.tf"] = arrays[f"{name}.tf"]
        info["positions"] = bool(info["positions"]) and name in POSITION_FIELDS
        if info["positions"]:
            out[f"{name}.pos_starts"] = arrays[f"{name}.pos_starts"]
            (out[f"{name}.positions"], out[f"{name}.pos_exc"],
             out[f"{name}.pos_high"]) = _encode_positions(arrays[f"{name}.positions"])
        if f"{name}.lengths" in arrays:
            out[f"{name}.lengths"] = arrays[f"{name}.lengths"]
        described[name] = info
    if "date" in arrays:
        out["date"] = arrays["date"]
    return {**header, "fields": described, "block": BLOCK}, out


def _chunks(header, arrays):
    """The file's bytes, piece by piece: magic, header length, header, aligned
    arrays (the on-disk form of the logical `arrays`, see `encode`)."""
    header, arrays = encode(header, arrays)
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
    documents. Each field is encoded (`encode`) as soon as it is combined,
    so only one field's logical arrays (int32 docs, positions) are held.
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
            positions = np.empty(int(pos_starts[-1]), np.int32)  # a document holds < 2**31 words
        post_filled = np.zeros(len(merged), np.int64)
        pos_filled = np.zeros(len(merged), np.int64)
        for (field, offset), g in zip(parts, ids):
            # Each segment's postings, term after term, go to their terms' places.
            n = np.diff(field.post_starts.astype(np.int64))
            start = post_starts[g] + post_filled[g]
            post_filled[g] += n
            dest = ranges(start, start + n)
            docs[dest] = field.all_docs() + offset
            tf[dest] = field.tf
            if info["positions"]:
                n = np.diff(field.pos_starts.astype(np.int64))
                start = pos_starts[g] + pos_filled[g]
                pos_filled[g] += n
                positions[ranges(start, start + n)] = field.all_positions()
        lengths = np.fromiter(map(len, merged), np.int64, len(merged))
        field = {
            f"{name}.terms": np.frombuffer(b"".join(merged), dtype=np.uint8),
            f"{name}.term_starts": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            f"{name}.post_starts": post_starts,
            f"{name}.docs": docs,
            f"{name}.tf": tf,
        }
        if info["positions"]:
            field[f"{name}.pos_starts"] = pos_starts
            field[f"{name}.positions"] = positions
        if info["scorable"]:
            field[f"{name}.lengths"] = np.concatenate([
                f.fields[name].lengths if name in f.fields and f.fields[name].lengths is not None
                else np.zeros(f.doc_count, np.uint8) for f in files])
        info["terms"] = len(merged)
        encoded_header, encoded = encode({"fields": {name: info}}, field)
        arrays.update(encoded)
        described[name] = encoded_header["fields"][name]
        del field, docs, tf
        if info["positions"]:
            del positions
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

    `postings` ({segment id: {field: FieldPostings}}) are postings the
    writer still holds, used instead of reading them back.
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
    """One field of one .arq file (see the module's docstring for the arrays)."""

    def __init__(self, arrays, name, info):
        self.positioned = info["positions"]
        self.terms = _TermKeys(arrays[f"{name}.terms"], arrays[f"{name}.term_starts"])
        self.post_starts = arrays[f"{name}.post_starts"]
        self.low = arrays[f"{name}.docs"]  # a posting's document: its run's block * BLOCK + low
        self.run_starts = arrays[f"{name}.run_starts"]
        self.run_blocks = arrays[f"{name}.run_blocks"]
        self.run_counts = arrays[f"{name}.run_counts"]
        self.tf = arrays[f"{name}.tf"]
        self.pos_starts = arrays.get(f"{name}.pos_starts")
        self.positions = arrays.get(f"{name}.positions")
        self.pos_exc = arrays.get(f"{name}.pos_exc")
        self.pos_high = arrays.get(f"{name}.pos_high")
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

    def compact(self, i):
        """(low, tf, run_blocks, run_counts) of term `i`: views into the mapped
        file, no copy, what the compiled kernels read (search_app.kernels)."""
        a, b = self.post_starts[i], self.post_starts[i + 1]
        c, d = self.run_starts[i], self.run_starts[i + 1]
        return self.low[a:b], self.tf[a:b], self.run_blocks[c:d], self.run_counts[c:d]

    def postings(self, i):
        """(docs, tf) of term `i`: its document numbers decoded (int64), tf a view."""
        low, tf, blocks, counts = self.compact(i)
        return _docs(low, blocks, counts), tf

    def all_docs(self):
        """Every posting's document number (int64), term after term."""
        return _docs(self.low, self.run_blocks, self.run_counts)

    def holds(self, i, doc) -> bool:
        """Whether term `i` has a posting in document `doc` (file-local)."""
        low, _, blocks, counts = self.compact(i)
        block = doc >> BLOCK_BITS
        j = int(np.searchsorted(blocks, block))
        if j == len(blocks) or blocks[j] != block:
            return False
        row = j + int(counts[:j].sum(dtype=np.int64))
        return bool(np.any(low[row:row + int(counts[j]) + 1] == doc & (BLOCK - 1)))

    def _positions(self, index):
        """The positions at `index` (int64): the low bytes and, where split, the high bits."""
        values = self.positions[index].astype(np.int64)
        exc = self.pos_exc
        if exc is not None and len(exc) and len(index):
            index = np.asarray(index).astype(exc.dtype)  # searchsorted without converting `exc`
            k = np.searchsorted(exc, index)
            k[k == len(exc)] = 0
            hit = exc[k] == index
            values[hit] += self.pos_high[k[hit]].astype(np.int64) << POSITION_HIGH_BITS
        return values

    def all_positions(self):
        """Every position (int64), term after term."""
        values = self.positions.astype(np.int64)
        if self.pos_exc is not None and len(self.pos_exc):
            values[self.pos_exc] += self.pos_high.astype(np.int64) << POSITION_HIGH_BITS
        return values

    def positions_at(self, i, starts, counts):
        """(row per position, positions) of postings of term `i` whose positions
        start at `starts` (relative to the term's first) with `counts` each."""
        total = int(counts.sum())
        first = self.pos_starts[i] + starts
        index = np.repeat(first - (np.cumsum(counts) - counts), counts) + np.arange(total)
        return np.repeat(np.arange(len(counts)), counts), self._positions(index)


def _docs(low, blocks, counts):
    """Document numbers of postings stored as runs (see the module's docstring)."""
    return np.repeat(blocks.astype(np.int64) << BLOCK_BITS, counts.astype(np.int64) + 1) + low


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
        if header.get("block") != BLOCK:
            raise QueryFileError(f"{path}: blocks of {header.get('block')} documents, this arsearch reads {BLOCK}")
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
