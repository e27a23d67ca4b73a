"""The bundled sample corpus and its index, built on first use.

`arsearch serve` with no --index serves this sample, so a newcomer sees
results right after installing. The index lives in a cache folder
($ARSEARCH_HOME, default ~/.cache/arsearch) and is rebuilt when the analysis
version or the sample itself changes.
"""

import hashlib
import os
from importlib import resources
from pathlib import Path

from indexer import store

SAMPLE_RESOURCE = "sample/documents.jsonl"


def arsearch_home() -> Path:
    home = os.environ.get("ARSEARCH_HOME")
    if home:
        return Path(home)
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "arsearch"


def sample_path() -> Path:
    return Path(str(resources.files("indexer.data").joinpath(SAMPLE_RESOURCE)))


def sample_digest() -> str:
    return hashlib.sha256(sample_path().read_bytes()).hexdigest()[:16]


def sample_index_dir() -> Path:
    return arsearch_home() / "sample-index"


def ensure_sample_index(log=None) -> Path:
    """The sample index directory, (re)built if missing or out of date."""
    from indexer.build import build_index

    directory = sample_index_dir()
    digest = sample_digest()
    if _up_to_date(directory, digest):
        return directory
    if log:
        log(f"building the sample index in {directory} ...")
    with store.WriterLock(directory, wait=600):
        pass  # wait for a concurrent builder (another server starting) first
    if not _up_to_date(directory, digest):
        report = build_index(directory, [str(sample_path())], rebuild=True, jobs=1, wait=600,
                             log=lambda line: None)
        store.write_meta(store.live_path(directory), sample_digest=digest)
        if log:
            log(f"sample index ready: {report.documents} documents")
    return directory


def _up_to_date(directory, digest) -> bool:
    if not store.has_index(directory):
        return False
    generation = store.live_path(directory)
    try:
        store.verify_sizes(generation, directory)
    except store.IndexDamagedError:
        return False  # a damaged cached sample is simply built again
    meta = store.read_meta(generation)
    return meta.get("analysis_version") == store.ANALYSIS_VERSION and meta.get("sample_digest") == digest
