"""Side-by-side peers: arsearch next to tantivy, Lucene and plain Whoosh, in one run.

Every engine indexes the same JSON Lines file and answers the same queries
(bench/query.py's seeded set: 1-3 words and quoted phrases, typed without
diacritics), top 10, one thread, warm: each query process makes one untimed
pass over the set, then times a second one. Each build and each query run is
a fresh process of its own, so time and memory are that engine's alone.

    arsearch      search_app.engine.SearchEngine.search(q, limit=10), in process
                  (result cache off: every timed query is really searched)
    plain Whoosh  bench/query.py's baseline (StandardAnalyzer, QueryParser("text"))
    tantivy       PyPI tantivy, fed arsearch's analysed terms (bench/peer_tantivy.py)
    Lucene        its ArabicAnalyzer and BM25 through pyserini, in a venv of its
                  own (bench/peer_lucene.py, bench/.venv-lucene)

    python bench/peers.py                            # hadith + Qur'an corpus, 33k documents
    python bench/peers.py --corpus x10               # its x10 version (331k; a long run)
    python bench/peers.py --corpus news --news PATH  # ANT news x30 (ant-news.jsonl.gz, see bench/README.md)
    python bench/peers.py --docs 2000 --engines arsearch,tantivy   # quick run
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import index as build_bench  # noqa: E402  JSONL writer, the arsearch and plain builds
import peer_lucene  # noqa: E402
import peer_measure  # noqa: E402
import query as query_bench  # noqa: E402  the query set, time_plain, percentiles

ENGINES = ("arsearch", "plain", "tantivy", "lucene")
# The ANT news corpus is not part of the project (its licence does not allow
# bundling it): give its path with --news or $ARSEARCH_NEWS_CORPUS.
NEWS = os.environ.get("ARSEARCH_NEWS_CORPUS")
SCALE = {"small": 1, "x10": 10, "news": 30}
LIMIT = 10
CHILD_TIMEOUT = 2 * 3600  # seconds for one build or query run, x10 corpus included


# --- in a child process: one build or one query run -------------------------------

def child_build(engine, jsonl, out, result_path) -> None:
    if engine == "arsearch":
        seconds, docs, size = build_bench.build_arsearch(jsonl, out)
    elif engine == "plain":
        seconds, docs, size = build_bench.build_plain(jsonl, out)
    elif engine == "tantivy":
        import peer_tantivy

        seconds, docs, python = peer_tantivy.build(jsonl, out)
        size = build_bench.disk_size(out)
    else:
        raise SystemExit(f"unknown engine {engine!r}")
    result = {"seconds": seconds, "docs": docs, "index_bytes": size, **peer_measure.memory_mb()}
    if engine == "arsearch":
        result["query_files"] = query_file_sizes(out)
    if engine == "tantivy":
        result["python_seconds"] = python
    peer_measure.write_result(result_path, result)


def query_file_sizes(index_dir) -> dict:
    """Bytes of the query files the query path maps (the live commit's combined
    file, else the segments' files): postings (docs, tf), positions, term
    tables, the rest; and all .arq files on disk (the segments' own included)."""
    from indexer import query_file, store

    generation = store.live_path(index_dir)
    every = list(generation.glob("*" + query_file.SUFFIX))
    combined = [p for p in every if p.name.startswith("_")]
    mapped = combined[-1:] if combined else every
    sizes = {"postings": 0, "positions": 0, "terms": 0, "other": 0,
             "files": sum(p.stat().st_size for p in mapped),
             "all_files": sum(p.stat().st_size for p in every)}
    for path in mapped:
        qf = query_file.QueryFile.open(path)
        for name, (dtype, _, count) in qf.header["arrays"].items():
            kind = name.rsplit(".", 1)[-1]
            key = {"docs": "postings", "run_blocks": "postings", "run_counts": "postings",
                   "tf": "postings", "positions": "positions", "pos_exc": "positions",
                   "pos_high": "positions", "terms": "terms", "term_starts": "terms",
                   "post_starts": "terms", "run_starts": "terms", "pos_starts": "terms"}.get(kind, "other")
            sizes[key] += count * np.dtype(dtype).itemsize
    return sizes


def child_query(engine, index_dir, queries_path, result_path) -> None:
    queries = peer_measure.read_queries(queries_path)
    variants = {}
    if engine == "arsearch":
        from search_app import engine as engine_mod

        base_mb = peer_measure.memory_mb()["rss_mb"]
        start = time.perf_counter()

        # 1,000 distinct queries cycle through a 512-entry LRU without a hit,
        # but a larger cache would turn the timed pass into cache lookups.
        engine_mod.RESULT_CACHE_SIZE = 0
        searcher = engine_mod.SearchEngine(index_dir)
        open_ms = (time.perf_counter() - start) * 1000
        docs = searcher.view().doc_count

        partial = [0]  # answers cut short by the engine's time limit (timed pass)

        def describe(r):
            partial[0] += bool(r["partial"])
            return r["total"], [h["id"] for h in r["hits"]]

        # Lucene and tantivy return ids and scores: "ids only" (no snippets, no
        # facets, totals past 10,000 a lower bound) is the like-for-like row;
        # the default response adds snippets for the 10 hits and exact facets.
        options = inspect.signature(searcher.search).parameters
        if "facets" in options:
            variants["arsearch, ids only"] = peer_measure.time_passes(
                lambda q: searcher.search(q, limit=LIMIT, snippets=False, facets=False), queries, describe)
        if "snippets" in options:
            variants["arsearch, no snippets"] = peer_measure.time_passes(
                lambda q: searcher.search(q, limit=LIMIT, snippets=False), queries, describe)
        variants["arsearch"] = peer_measure.time_passes(
            lambda q: searcher.search(q, limit=LIMIT), queries, describe)
        about = "default: snippets for every hit and exact facets" + (
            "" if "arsearch, no snippets" in variants
            else " (SearchEngine.search has no snippets=False)") + \
            f", {partial[0]} partial answers (time limit hit)"
    elif engine == "plain":
        from whoosh.index import open_dir
        from whoosh.qparser import QueryParser

        base_mb = peer_measure.memory_mb()["rss_mb"]
        start = time.perf_counter()
        ix = open_dir(index_dir)
        searcher = ix.searcher()
        parser = QueryParser("text", ix.schema)
        open_ms = (time.perf_counter() - start) * 1000
        docs = ix.doc_count()
        # len() re-runs the query to count every match: outside the timing.
        variants["plain Whoosh"] = peer_measure.time_passes(
            lambda q: query_bench.time_plain(searcher, parser, q)[1], queries,
            lambda results: (len(results), [hit["id"] for hit in results]))
        about = "StandardAnalyzer, QueryParser(\"text\"), stored fields of the hits read"
    elif engine == "tantivy":
        import tantivy

        import peer_tantivy
        import search_app.engine  # noqa: F401  the query translation's parser and rule

        base_mb = peer_measure.memory_mb()["rss_mb"]
        start = time.perf_counter()
        searcher = peer_tantivy.Searcher(index_dir)
        open_ms = (time.perf_counter() - start) * 1000
        docs = searcher.doc_count()
        variants["tantivy"] = peer_measure.time_passes(searcher.search, queries, lambda r: r)
        # Counting every match keeps tantivy from skipping blocks (block-max
        # WAND); a top-10 page without a total does not need it.
        variants["tantivy, no count"] = peer_measure.time_passes(
            lambda q: searcher.search(q, count=False), queries, lambda r: (None, r[1]))
        about = tantivy.__version__ if hasattr(tantivy, "__version__") else \
            f"tantivy {peer_tantivy.TANTIVY_VERSION}"
    else:
        raise SystemExit(f"unknown engine {engine!r}")
    peer_measure.write_result(result_path, {"variants": variants, "open_ms": open_ms, "docs": docs,
                                            "about": about, "base_mb": base_mb,
                                            **peer_measure.memory_mb()})


# --- in the parent: corpus, queries, children, tables ------------------------------

def read_news(path) -> list:
    """ANT news records as indexer records (id, title, text, source, tags)."""
    import gzip

    out = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            out.append({"id": r["id"], "title": r.get("title") or "", "text": r["text"],
                        "source": r.get("source") or "", "tags": list(r.get("tags") or [])})
    return out


def prepare(args, workdir) -> dict:
    """Write the corpus as JSONL and draw the queries; returns what the report needs."""
    import corpus

    jsonl = Path(workdir) / "corpus.jsonl"
    factor = args.scale or SCALE[args.corpus]
    if args.corpus == "news":
        news = Path(args.news or "")
        if not args.news or not news.is_file():
            raise SystemExit(f"{news}: no such file (the ANT news corpus; see bench/README.md, "
                             "--news PATH)")
        base = corpus.select(read_news(news), args.docs)
        # Queries from the titles; the hadith phrases of bench/query.py stay out.
        queries = query_bench.draw_queries([{"text": d["title"]} for d in base], args.queries,
                                           common=())
        # The x10 rotation of bench/corpus.py, applied to the news.
        n, text_bytes = build_bench.write_jsonl(corpus.scale_documents(base, factor), jsonl)
        label = f"ANT news ({news.name}) x{factor}"
    else:
        corpus.ensure_installed()
        base = corpus.select(list(corpus.iter_documents()), args.docs)
        queries = query_bench.draw_queries(base, args.queries)
        if factor == 1:
            records = base
            label = "hadith + Qur'an"
        else:
            keep = {d["id"] for d in base}
            records = (d for d in corpus.iter_documents_scaled(factor) if d["id"].split("#")[0] in keep)
            label = f"hadith + Qur'an x{factor}"
        n, text_bytes = build_bench.write_jsonl(records, jsonl)
    queries_path = Path(workdir) / "queries.json"
    queries_path.write_text(json.dumps(queries, ensure_ascii=False), encoding="utf-8")
    return {"jsonl": jsonl, "queries": queries, "queries_path": queries_path, "docs": n,
            "text_bytes": text_bytes, "label": label}


def child_command(engine, what, args, lucene_python) -> list:
    if engine == "lucene":
        return [str(lucene_python), str(ROOT / "bench" / "peer_lucene.py"), what, *args]
    return [sys.executable, str(Path(__file__).resolve()), "--child", what, engine, *args]


def run_child(engine, args, lucene_python, workdir, what) -> dict:
    """Run one child; its output goes to a log file, its answer to a JSON file."""
    result = Path(workdir) / f"{engine}-{what}.json"
    log_path = Path(workdir) / f"{engine}-{what}.log"
    with open(log_path, "wb") as log:
        try:
            done = subprocess.run(child_command(engine, what, [*args, str(result)], lucene_python),
                                  stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                  timeout=CHILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{engine} {what} did not finish within {CHILD_TIMEOUT} s") from None
    if done.returncode != 0 or not result.is_file():
        tail = log_path.read_text(errors="replace").splitlines()[-15:]
        raise RuntimeError(f"{engine} {what} exited with code {done.returncode}:\n    "
                           + "\n    ".join(tail))
    return json.loads(result.read_text(encoding="utf-8"))


def run_engine(engine, prep, lucene_python, workdir) -> dict:
    out = Path(workdir) / engine
    out.mkdir()
    print(f"{engine}: building", file=sys.stderr, flush=True)
    build = run_child(engine, [str(prep["jsonl"]), str(out)], lucene_python, workdir, "build")
    if build["docs"] != prep["docs"]:
        raise RuntimeError(f"{engine} indexed {build['docs']:,} documents, expected {prep['docs']:,}")
    print(f"{engine}: built in {build['seconds']:.1f} s; querying", file=sys.stderr, flush=True)
    q = run_child(engine, [str(out), str(prep["queries_path"])], lucene_python, workdir, "query")
    return {"build": build, "query": q}


def fmt_ratio(a, b) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def report(prep, results, failures) -> None:
    queries = prep["queries"]
    n = len(queries)
    text_mb = prep["text_bytes"] / 1e6
    rows = []  # (label, engine, build or None, variant, query result)
    for engine, r in results.items():
        for j, (label, variant) in enumerate(r["query"]["variants"].items()):
            rows.append((label, engine, r["build"] if j == 0 else None, variant, r["query"]))

    print(f"\n{prep['label']}: {prep['docs']:,} documents, {text_mb:.1f} MB of title+text; "
          f"{n} queries, top {LIMIT}, 1 thread, warm (one untimed pass, then the timed one)")
    head = (f"{'engine':<24}{'build s':>9}{'index MB':>10}{'/text':>7}{'p50 ms':>9}{'p95 ms':>9}"
            f"{'p99 ms':>9}{'max ms':>9}{'q/s':>8}{'RSS peak':>10}{'end':>6}{'base':>6}{'build RSS':>11}")
    print(head)
    print("-" * len(head))
    figures = {}
    for label, engine, build, variant, q in rows:
        ms = variant["ms"]
        p50, p95, p99, top = query_bench.summary(ms)
        qps = len(ms) / (sum(ms) / 1000)
        figures[label] = {"build": build and build["seconds"], "size": build and build["index_bytes"],
                          "p50": p50, "p95": p95, "p99": p99, "max": top, "qps": qps,
                          "rss": q.get("hwm_mb")}
        if build:
            b = (f"{build['seconds']:>9.1f}{build['index_bytes'] / 1e6:>10.1f}"
                 f"{build['index_bytes'] / prep['text_bytes']:>6.2f}x")
            rss = f"{q['hwm_mb']:>10.0f}{q['rss_mb']:>6.0f}{q['base_mb']:>6.0f}"
            brss = f"{build['hwm_mb']:>11.0f}"
        else:
            b = f"{'':>9}{'(same index)':>16}"
            rss = f"{'(same process)':>22}"
            brss = ""
        print(f"{label:<24}{b}{p50:>9.2f}{p95:>9.2f}{p99:>9.2f}{top:>9.1f}{qps:>8.0f}{rss:>14}{brss}")
    print("RSS, MB, of the query process: peak (VmHWM), at the end (VmRSS), and base: after its "
          "imports, before the index was opened;\nbuild RSS: the build process's peak (arsearch's "
          "forked workers not included)")

    base_label = "arsearch, ids only" if "arsearch, ids only" in figures else "arsearch"
    if base_label in figures:
        a = figures[base_label]
        print(f"\nratios {base_label} / peer (above 1: arsearch takes more time, disk or memory; for q/s "
              "above 1: arsearch answers more per second)")
        print(f"{'peer':<24}{'build':>8}{'index':>8}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}{'q/s':>8}"
              f"{'RSS':>8}")
        for label, f in figures.items():
            if label == base_label:
                continue
            print(f"{label:<24}{fmt_ratio(a['build'], f['build']):>8}{fmt_ratio(a['size'], f['size']):>8}"
                  + "".join(f"{fmt_ratio(a[k], f[k]):>8}" for k in ("p50", "p95", "p99", "max", "qps"))
                  + f"{fmt_ratio(a['rss'], f['rss']) if f['build'] else '-':>8}")

    qf = results.get("arsearch", {}).get("build", {}).get("query_files")
    if qf:
        print(f"\narsearch query file the query path maps (.arq): {qf['files'] / 1e6:.1f} MB: "
              f"postings {qf['postings'] / 1e6:.1f} + positions {qf['positions'] / 1e6:.1f} = "
              f"{(qf['postings'] + qf['positions']) / 1e6:.1f} MB, term tables {qf['terms'] / 1e6:.1f} MB, "
              f"lengths and dates {qf['other'] / 1e6:.1f} MB; all .arq files on disk (the segments' "
              f"own included) {qf.get('all_files', qf['files']) / 1e6:.1f} MB; the rest of the index "
              "is Whoosh's (stored text, its own postings)")

    query_bench.print_table("Latency per kind of query, ms (timed pass)",
                            [(label, variant["ms"]) for label, _, _, variant, _ in rows], queries)

    print("\nWhat each engine found (timed pass):")
    base = results.get("arsearch", {}).get("query", {}).get("variants", {}).get("arsearch")
    for label, engine, _, variant, q in rows:
        empty = sum(1 for ids in variant["ids"] if not ids)
        line = f"  {label:<24}{q['docs']:>9,} docs, {empty:>4} queries with no hit"
        totals = variant["totals"]
        if all(t is not None for t in totals):
            line += f", median total {statistics.median(totals):>7,.0f}"
        if base and label != "arsearch":
            same = sum(1 for t, u in zip(totals, base["totals"]) if t == u)
            if all(t is not None for t in totals):
                line += f", same total as arsearch {same}/{n}"
            shared = [len(set(x) & set(y)) / len(y) for x, y in zip(variant["ids"], base["ids"]) if y]
            if shared:
                line += f", top-10 overlap with arsearch {100 * statistics.mean(shared):.0f}%"
        print(line)
    print("\nEngines: " + "; ".join(f"{e}: opened in {r['query']['open_ms']:.0f} ms, {r['query']['about']}"
                                    for e, r in results.items()))
    tv = results.get("tantivy", {}).get("build", {})
    if "python_seconds" in tv:
        print(f"tantivy's build: {tv['python_seconds']:.1f} of its {tv['seconds']:.1f} s were spent "
              "reading records and running arsearch's analysis (one Python thread); arsearch's "
              "build analyses in its worker processes")
    for engine, error in failures.items():
        print(f"\n{engine}: NOT MEASURED: {error}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=tuple(SCALE), default="small",
                        help="small: hadith + Qur'an (33k); x10: its x10 version; news: ANT news x30")
    parser.add_argument("--docs", type=int, default=0, help="use N documents of the base corpus "
                        "(before scaling; default: all)")
    parser.add_argument("--scale", type=int, default=0, help="copies for x10/news (default 10/30)")
    parser.add_argument("--queries", type=int, default=1000, help="distinct queries (default 1000)")
    parser.add_argument("--news", default=NEWS,
                        help="ANT news JSONL.gz for --corpus news (default: $ARSEARCH_NEWS_CORPUS)")
    parser.add_argument("--engines", default=",".join(ENGINES),
                        help=f"comma-separated, of {','.join(ENGINES)} (default: all)")
    parser.add_argument("--lucene-venv", default=str(peer_lucene.VENV),
                        help="venv for pyserini (created on first use)")
    parser.add_argument("--keep", action="store_true", help="keep the indexes and logs (path printed)")
    parser.add_argument("--child", nargs=4, metavar=("WHAT", "ENGINE", "A", "B"),
                        help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)
    if args.child:
        what, engine, a, b = args.child
        (child_build if what == "build" else child_query)(engine, a, b, rest[0])
        return 0

    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = set(engines) - set(ENGINES)
    if unknown:
        parser.error(f"unknown engines: {', '.join(sorted(unknown))}")
    failures = {}
    if "tantivy" in engines:
        import peer_tantivy

        peer_tantivy.ensure_installed()
    lucene_python = None
    if "lucene" in engines:
        try:
            lucene_python = peer_lucene.ensure_venv(args.lucene_venv)
        except (OSError, subprocess.CalledProcessError) as exc:
            failures["lucene"] = f"its venv could not be prepared: {exc}"
            engines.remove("lucene")

    import whoosh

    print(f"Python {platform.python_version()}, {platform.system()} {platform.machine()}, "
          f"{os.cpu_count()} CPUs, Whoosh {whoosh.versionstring()}")
    print("load average (1, 5, 15 min) at the start: " + " ".join(f"{x:.2f}" for x in os.getloadavg())
          + " (the machine is shared: figures are noisier above ~1)")
    workdir = tempfile.mkdtemp(prefix="arsearch-peers-")
    try:
        prep = prepare(args, workdir)
        kinds = {k: sum(1 for kind, _ in prep["queries"] if kind == k) for k in query_bench.KINDS}
        print(f"queries: {len(prep['queries'])} distinct, seed {query_bench.SEED}, no diacritics: "
              + ", ".join(f"{k} {v}" for k, v in kinds.items()))
        results = {}
        for engine in engines:
            try:
                results[engine] = run_engine(engine, prep, lucene_python, workdir)
            except RuntimeError as exc:
                failures[engine] = str(exc)
                print(f"{engine}: failed", file=sys.stderr, flush=True)
        report(prep, results, failures)
        print("load average at the end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    finally:
        if args.keep:
            print(f"\nindexes and logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
