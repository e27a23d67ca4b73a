"""Deleting documents, describing and checking an index (`delete`, `stats`, `check`)."""

from dataclasses import dataclass, field

from whoosh.reading import SegmentReader

import schema as schema_module
from indexer import store
from indexer.segment_writer import FastSegmentWriter


class IndexReadError(Exception):
    """The index opened but reading it failed; the message names what to run."""


def delete_documents(directory, ids, wait=0.0):
    """Remove documents by id; returns (deleted count, ids not found)."""
    with store.WriterLock(directory, wait=wait):
        ix = store.open_index(directory)
        writer = FastSegmentWriter(ix, query_fields=schema_module.QUERY_FIELDS)
        deleted, missing = 0, []
        try:
            for doc_id in dict.fromkeys(ids):
                n = writer.delete_by_term("id", doc_id)
                deleted += n
                if not n:
                    missing.append(doc_id)
        except BaseException:
            writer.cancel()
            raise
        if deleted:
            writer.commit()
            generation = store.live_path(directory)
            store.write_meta(generation, last_commit=store._now())
            store.record_checksums(generation)
        else:
            writer.cancel()
    return deleted, missing


def index_stats(directory) -> dict:
    ix = store.open_index(directory)
    generation = store.live_path(directory)
    meta = store.read_meta(generation)
    try:
        with ix.searcher() as searcher:
            reader = searcher.reader()
            terms = {
                name: sum(1 for _ in reader.lexicon(name))
                for name in sorted(reader.indexed_field_names())
            }
            documents = searcher.doc_count()
    except Exception as exc:  # a damaged file can fail in zlib, pickle, struct...
        raise IndexReadError(
            f"reading the index at {directory} failed ({type(exc).__name__}: {exc}); "
            f"{store.damage_hint(directory)}"
        ) from None
    return {
        "path": str(generation),
        "documents": documents,
        "analysis_version": meta.get("analysis_version"),
        "created": meta.get("created"),
        "last_commit": meta.get("last_commit"),
        "size_bytes": store.disk_size(generation),
        "segments": len(ix._segments()),
        "terms": terms,
    }


@dataclass
class CheckReport:
    generation: str
    files: int = 0  # files compared with their checksums
    damaged: list = field(default_factory=list)  # (file, reason)
    unrecorded: list = field(default_factory=list)
    read_errors: list = field(default_factory=list)  # (what, reason)
    documents: int = None  # read back by a deep check
    postings: int = None

    @property
    def ok(self) -> bool:
        return not self.damaged and not self.read_errors

    def lines(self):
        for name, reason in self.damaged:
            yield f"DAMAGED {self.generation}/{name}: {reason}"
        for what, reason in self.read_errors:
            yield f"UNREADABLE {what}: {reason}"
        if self.unrecorded:
            yield (f"note: {len(self.unrecorded)} file(s) have no recorded checksum "
                   f"({', '.join(self.unrecorded[:3])}{'...' if len(self.unrecorded) > 3 else ''}): "
                   "written by another program or an older arsearch; --deep reads them")
        if self.documents is not None and not self.read_errors:
            yield f"read back {self.documents} documents and {self.postings} postings"
        if self.ok:
            yield f"ok: {self.files} files match their checksums in {self.generation}"
        else:
            yield "the index is damaged: restore it from a backup or rebuild it with arsearch index --rebuild"


def check_index(directory, deep=False) -> CheckReport:
    """Compare the live generation's files with their recorded checksums.

    With `deep` (or when no checksums were recorded), also read every
    stored document and every posting list through Whoosh, which finds
    damage that a checksum cannot (an index written before checksums).
    """
    generation = store.live_path(directory)
    report = CheckReport(str(generation))
    damaged, unrecorded = store.verify_checksums(generation)
    report.damaged = damaged
    report.unrecorded = unrecorded
    recorded = store.read_checksums(generation).get("files", {})
    report.files = sum(1 for name in recorded if name not in dict(damaged)) if recorded else 0
    if damaged:
        return report
    if deep or not recorded or unrecorded:
        _read_everything(generation, report)
    return report


def _read_everything(generation, report):
    try:
        ix = store.open_generation(generation)
        segments = ix._segments()
    except Exception as exc:
        report.read_errors.append((f"{generation}/{store.latest_toc(generation)}", _reason(exc)))
        return
    documents = postings = 0
    schema = ix.schema
    for segment in segments:
        where = f"segment {segment.segment_id()} ({_segment_files(generation, segment)})"
        try:
            reader = SegmentReader(ix.storage, schema, segment)
            try:
                for _ in reader.iter_docs():
                    documents += 1
                for fieldname in reader.indexed_field_names():
                    for term in reader.lexicon(fieldname):
                        matcher = reader.postings(fieldname, term)
                        while matcher.is_active():
                            if schema[fieldname].format.supports("positions"):
                                matcher.value_as("positions")
                            postings += 1
                            matcher.next()
            finally:
                reader.close()
        except Exception as exc:
            report.read_errors.append((where, _reason(exc)))
    report.documents = documents
    report.postings = postings


def _segment_files(generation, segment) -> str:
    prefix = segment.segment_id()
    names = sorted(p.name for p in generation.iterdir() if p.name.startswith(prefix))
    return ", ".join(names) or "no files"


def _reason(exc) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]
