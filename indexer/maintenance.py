"""Deleting documents and describing an index (the `delete` and `stats` commands)."""

from indexer import store
from indexer.segment_writer import FastSegmentWriter


def delete_documents(directory, ids, wait=0.0):
    """Remove documents by id; returns (deleted count, ids not found)."""
    with store.WriterLock(directory, wait=wait):
        ix = store.open_index(directory)
        writer = FastSegmentWriter(ix)
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
            store.write_meta(store.live_path(directory), last_commit=store._now())
        else:
            writer.cancel()
    return deleted, missing


def index_stats(directory) -> dict:
    ix = store.open_index(directory)
    generation = store.live_path(directory)
    meta = store.read_meta(generation)
    with ix.searcher() as searcher:
        reader = searcher.reader()
        terms = {
            name: sum(1 for _ in reader.lexicon(name))
            for name in sorted(reader.indexed_field_names())
        }
        documents = searcher.doc_count()
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
