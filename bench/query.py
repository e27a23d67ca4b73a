"""Query latency and HTTP throughput: arsearch's engine next to plain Whoosh.

Both answer the same fixed, seeded set of queries drawn from the corpus (1-,
2- and 3-word queries and quoted phrases, typed without diacritics, the way
people type them). The plain baseline is what a Whoosh user writes first:
the StandardAnalyzer index of bench/index.py, QueryParser("text"), limit=10,
stored fields of the hits read. Targets: arsearch p99 < 50 ms for queries run
for the first time, and >= 150 queries/s over HTTP with 2 gunicorn workers.

    python bench/query.py                          # full corpus, both indexes built here
    python bench/query.py --docs 3000 --queries 1000 --skip-http   # quick run
    python bench/query.py --index /tmp/ix --plain-index /tmp/plain   # reuse indexes
"""

from __future__ import annotations

import argparse
import gc
import http.client
import json
import os
import platform
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import index as build_bench  # noqa: E402  bench/index.py: JSONL writer and both builds

TARGET_P99_MS = 50.0
TARGET_QPS = 150.0
SEED = 20240601
KINDS = ("1w", "2w", "3w", "phrase")
SHARE = {"1w": 0.30, "2w": 0.25, "3w": 0.25, "phrase": 0.20}
# Frequent phrases always in the set: they have the longest position lists.
COMMON_PHRASES = ("رسول الله", "صلى الله عليه", "قال رسول الله", "عن أبي هريرة",
                  "بسم الله", "الله عليه وسلم", "يا رسول الله", "حدثنا محمد بن")
HTTP_CLIENTS = 8
HTTP_PASSES = 2
HTTP_MAX_SECONDS = 300  # the client loop stops here whatever is left

# Harakat, superscript alef, tatweel and Qur'anic annotation signs (the
# brief's list) plus the open tanween of the Hafs text (U+08F0-08F2).
_DIACRITICS = re.compile("[\u064b-\u0652\u0670\u0640\u06d6-\u06ed\u08f0-\u08f2]")
_WORD = re.compile(r"[^\W\d_]+")


# --- queries -----------------------------------------------------------------

def plain_words(text: str) -> list:
    """A text's words as someone types them: no diacritics, letters kept as they are.

    After stripping, NFC folds a letter + maddah/hamza sign that the Hafs text
    writes apart (ا + U+0653) into the letter a keyboard types (آ); any other
    combining mark or direction mark left is dropped, then punctuation splits.
    """
    text = unicodedata.normalize("NFC", _DIACRITICS.sub("", text))
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Mn", "Cf"))
    return _WORD.findall(text)


def draw_queries(docs, n: int, seed: int = SEED, common=COMMON_PHRASES) -> list:
    """`n` distinct (kind, query) pairs, the same for the same corpus and seed.

    Distinct, so that the first pass really runs each query for the first time
    (the engine caches results per query). Words come from a random document,
    so frequent words are frequent in the set too, as in real traffic.
    `common`: phrases always included first (the hadith corpus's formulas).
    """
    rng = random.Random(seed)
    want = {k: round(n * SHARE[k]) for k in KINDS}
    want["1w"] += n - sum(want.values())
    seen, out = set(), []

    def add(kind, q):
        if q not in seen:
            seen.add(q)
            out.append((kind, q))
            return True
        return False

    for phrase in common:
        if want["phrase"] and add("phrase", f'"{phrase}"'):
            want["phrase"] -= 1
    cache = {}
    attempts = 0
    while any(want.values()) and attempts < 100 * n:
        attempts += 1
        kind = rng.choice([k for k in KINDS if want[k]])
        i = rng.randrange(len(docs))
        if i not in cache:
            cache[i] = [w for w in plain_words(docs[i]["text"]) if len(w) >= 2]
        words = cache[i]
        size = 1 if kind == "1w" else 3 if kind == "3w" else 2
        if kind == "phrase":
            size = rng.choice((2, 3))
        if len(words) < size + 1:
            continue
        if kind == "phrase" or size == 1 or rng.random() < 0.5:
            start = rng.randrange(len(words) - size + 1)  # consecutive words
            chosen = words[start:start + size]
        else:
            chosen = rng.sample(words, size)  # random words of the same document
        q = " ".join(chosen)
        if kind == "phrase":
            q = f'"{q}"'
        if add(kind, q):
            want[kind] -= 1
    rng.shuffle(out)
    return out


# --- statistics ---------------------------------------------------------------

def percentile(values, p):
    """Linear interpolation between closest ranks (numpy's default)."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary(values) -> tuple:
    return (statistics.median(values), percentile(values, 95), percentile(values, 99), max(values))


def print_table(title, columns, queries):
    """Median/p95/p99/max in ms per kind and overall, one row per kind and engine."""
    print(f"\n{title}")
    print(f"{'kind':<8}{'n':>6}  {'engine':<16}{'median':>9}{'p95':>9}{'p99':>9}{'max':>9}")
    kinds = [k for k in KINDS if any(kind == k for kind, _ in queries)] + ["all"]
    for k in kinds:
        idx = [i for i, (kind, _) in enumerate(queries) if k in ("all", kind)]
        for j, (label, times) in enumerate(columns):
            row = summary([times[i] for i in idx])
            head = f"{k:<8}{len(idx):>6}" if j == 0 else " " * 14
            print(f"{head}  {label:<16}" + "".join(f"{v:>9.2f}" for v in row))


# --- in-process latency -------------------------------------------------------

class GCClock:
    """Milliseconds the cyclic garbage collector has spent, to tell its pauses apart.

    A full (generation 2) collection walks every tracked object, including the
    engine's caches, and lands on whichever query allocates at that moment.
    """

    def __init__(self):
        self.ms = 0.0
        self.full = 0
        self._t = 0.0

    def __call__(self, phase, info):
        if phase == "start":
            self._t = time.perf_counter()
        else:
            self.ms += (time.perf_counter() - self._t) * 1000
            self.full += info["generation"] == 2

    def __enter__(self):
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc):
        gc.callbacks.remove(self)


def time_plain(searcher, parser, q):
    """Parse, search the top 10 and read their stored fields, as a results page would."""
    start = time.perf_counter()
    results = searcher.search(parser.parse(q), limit=10)
    for hit in results:
        hit.fields()
    return (time.perf_counter() - start) * 1000, results


def in_process(ix_dir, plain_dir, queries) -> dict:
    from whoosh.index import open_dir
    from whoosh.qparser import QueryParser

    from search_app import engine as engine_mod
    from search_app.engine import SearchEngine

    start = time.perf_counter()
    engine = SearchEngine(ix_dir)
    open_ms = (time.perf_counter() - start) * 1000
    plain_ix = open_dir(plain_dir)
    searcher = plain_ix.searcher()
    parser = QueryParser("text", plain_ix.schema)
    print(f"\narsearch engine opened in {open_ms:.0f} ms (includes the warm-up of frequent "
          f"terms, up to {engine_mod.DEFAULT_WARMUP:.0f} s); "
          f"{engine.view().doc_count:,} documents; plain index {plain_ix.doc_count():,} documents")

    n = len(queries)
    ars, plain, ars_total, plain_total, partial = [0.0] * n, [0.0] * n, [0] * n, [0] * n, 0
    ars_gc, plain_gc = [0.0] * n, [0.0] * n
    clock = GCClock()
    try:
        with clock:
            for i, (_, q) in enumerate(queries):  # first time: alternate which engine goes first
                for which in ((0, 1) if i % 2 == 0 else (1, 0)):
                    gc0 = clock.ms
                    if which == 0:
                        t0 = time.perf_counter()
                        r = engine.search(q, limit=10)
                        ars[i] = (time.perf_counter() - t0) * 1000
                        ars_gc[i] = clock.ms - gc0
                        ars_total[i] = r["total"]
                        partial += bool(r["partial"])
                    else:
                        plain[i], results = time_plain(searcher, parser, q)
                        plain_gc[i] = clock.ms - gc0
                        # Outside the timing: len() re-runs the query to count
                        # every match, which a top-10 page does not need.
                        plain_total[i] = len(results)
                if (i + 1) % 250 == 0:
                    print(f"  {i + 1}/{n} queries", file=sys.stderr, flush=True)
        # Second pass, same order: postings cached, but the result cache
        # (RESULT_CACHE_SIZE) only helps if it holds the whole set.
        warm = []
        for _, q in queries:
            t0 = time.perf_counter()
            engine.search(q, limit=10)
            warm.append((time.perf_counter() - t0) * 1000)
        # Each query straight after itself: a result-cache hit (hits, snippets only).
        cached = []
        for _, q in queries:
            engine.search(q, limit=10)
            t0 = time.perf_counter()
            engine.search(q, limit=10)
            cached.append((time.perf_counter() - t0) * 1000)
    finally:
        searcher.close()
    return {"ars": ars, "plain": plain, "ars_total": ars_total, "plain_total": plain_total,
            "partial": partial, "warm": warm, "cached": cached, "ars_gc": ars_gc,
            "plain_gc": plain_gc, "full_gcs": clock.full, "tracked": len(gc.get_objects()),
            "cache_size": engine_mod.RESULT_CACHE_SIZE}


def report_in_process(queries, r) -> float:
    print_table("In-process latency, ms, each query run for the first time "
                "(postings caches warming as they go), alternating engine order",
                [("arsearch", r["ars"]), ("plain Whoosh", r["plain"])], queries)
    a, p = summary(r["ars"]), summary(r["plain"])
    print(f"ratio arsearch/plain: median {a[0] / p[0]:.2f}x, p95 {a[1] / p[1]:.2f}x, "
          f"p99 {a[2] / p[2]:.2f}x")
    print(f"first query after opening: arsearch {r['ars'][0]:.2f} ms, plain {r['plain'][0]:.2f} ms "
          f"({queries[0][1]})")
    print(f"arsearch partial results (time limit hit): {r['partial']}")
    slow_gc = sum(1 for g in r["ars_gc"] if g >= 10)
    print(f"garbage collector during the first-time pass: {sum(r['ars_gc']):.0f} ms inside "
          f"arsearch calls, {sum(r['plain_gc']):.0f} ms inside plain calls; "
          f"{r['full_gcs']} full collections; {slow_gc} arsearch queries with >= 10 ms of GC; "
          f"{r['tracked']:,} tracked objects at the end")
    print_table(f"arsearch, second pass in the same order (postings cached; result cache "
                f"holds {r['cache_size']} of {len(queries)} queries)",
                [("arsearch warm", r["warm"])], queries)
    print_table("arsearch, each query repeated at once (result-cache hit)",
                [("arsearch cached", r["cached"])], queries)

    hits_a, hits_p = r["ars_total"], r["plain_total"]
    print("\nmatches per query (total hits): median arsearch "
          f"{statistics.median(hits_a):,.0f}, plain {statistics.median(hits_p):,.0f}; "
          f"zero hits: arsearch {sum(1 for t in hits_a if not t)}, "
          f"plain {sum(1 for t in hits_p if not t)} of {len(queries)}")

    found = [i for i, t in enumerate(hits_p) if t]
    if found:
        fa, fp = summary([r["ars"][i] for i in found]), summary([r["plain"][i] for i in found])
        print(f"on the {len(found)} queries plain Whoosh finds anything for: median/p99 "
              f"arsearch {fa[0]:.2f}/{fa[2]:.2f} ms, plain {fp[0]:.2f}/{fp[2]:.2f} ms "
              "(StandardAnalyzer splits words at every harakah, so undiacritized queries "
              "rarely match)")

    print("\n10 slowest arsearch queries (first-time pass):")
    print(f"{'ms':>9}{'gc ms':>8}{'warm ms':>9}{'hits':>8}{'plain ms':>10}  kind    query")
    for i in sorted(range(len(queries)), key=lambda i: -r["ars"][i])[:10]:
        kind, q = queries[i]
        print(f"{r['ars'][i]:>9.2f}{r['ars_gc'][i]:>8.1f}{r['warm'][i]:>9.2f}"
              f"{r['ars_total'][i]:>8,}{r['plain'][i]:>10.2f}  {kind:<7} {q}")
    p99 = a[2]
    print(f"\narsearch p99 (first-time pass) {p99:.2f} ms: target p99 < {TARGET_P99_MS:.0f} ms: "
          f"{'met' if p99 < TARGET_P99_MS else 'not met'}", flush=True)
    return p99


# --- HTTP ------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(port, path, timeout=5.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


def start_server(ix_dir, port, workdir):
    """`arsearch serve` in a subprocess; HOME points into `workdir` so nothing lands in ~."""
    home = Path(workdir) / "home"
    home.mkdir(exist_ok=True)
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(ROOT),
           "ARSEARCH_LOG_LEVEL": "warning", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("ARSEARCH_ACCESS_LOG", None)
    log = open(Path(workdir) / "serve.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "search_app.cli", "serve", "--index", str(ix_dir),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    return proc, log


def wait_ready(proc, port, seconds=90.0) -> dict:
    """Poll /healthz until a worker answers; then give the other worker its warm-up time."""
    from search_app.engine import DEFAULT_WARMUP

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"arsearch serve exited with code {proc.returncode}")
        try:
            status, body = get_json(port, "/healthz", timeout=2)
            if status == 200:
                time.sleep(DEFAULT_WARMUP + 1)  # both workers open and warm the index
                return body
        except (OSError, ValueError, http.client.HTTPException):
            pass
        time.sleep(0.25)
    raise RuntimeError(f"/healthz did not answer within {seconds:.0f} s")


def run_clients(port, queries, expected_totals, clients, passes, max_seconds) -> dict:
    """`clients` threads, one HTTP connection each, sharing passes x queries requests."""
    work = [q for _ in range(passes) for _, q in queries]
    expected = {q: t for (_, q), t in zip(queries, expected_totals)}
    lock = threading.Lock()
    state = {"next": 0, "errors": 0, "mismatch": 0, "reconnects": 0}
    latencies = []
    error_samples = []
    stop_at = time.monotonic() + max_seconds

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine, errors, mismatch = [], 0, 0
        try:
            while time.monotonic() < stop_at:
                with lock:
                    i = state["next"]
                    state["next"] += 1
                if i >= len(work):
                    break
                q = work[i]
                path = "/api/search?" + urlencode({"q": q, "limit": 10})
                t0 = time.perf_counter()
                try:
                    conn.request("GET", path)
                    resp = conn.getresponse()
                    body = resp.read()
                    ms = (time.perf_counter() - t0) * 1000
                    if resp.status != 200:
                        raise RuntimeError(f"HTTP {resp.status}: {body[:200]!r}")
                    if json.loads(body)["total"] != expected[q]:
                        mismatch += 1
                    mine.append(ms)
                except Exception as exc:  # counted, and the connection starts afresh
                    errors += 1
                    if len(error_samples) < 5:
                        error_samples.append(f"{q}: {exc!r}")
                    conn.close()
        finally:
            conn.close()
            with lock:
                latencies.extend(mine)
                state["errors"] += errors
                state["mismatch"] += mismatch

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max_seconds + 60)
    wall = time.perf_counter() - start
    return {"ok": len(latencies), "errors": state["errors"], "mismatch": state["mismatch"],
            "wall": wall, "latencies": latencies, "planned": len(work),
            "samples": error_samples}


def http_bench(ix_dir, queries, expected_totals, workdir) -> bool:
    port = free_port()
    print(f"\nHTTP: arsearch serve --workers 2 on 127.0.0.1:{port}, {HTTP_CLIENTS} client "
          f"threads (one HTTPConnection each), {HTTP_PASSES} passes over {len(queries)} queries",
          flush=True)
    proc, log = start_server(ix_dir, port, workdir)
    try:
        t0 = time.perf_counter()
        health = wait_ready(proc, port)
        print(f"ready: /healthz answered ({health.get('documents', '?'):,} documents) after "
              f"{time.perf_counter() - t0:.1f} s including the second worker's warm-up wait")
        r = run_clients(port, queries, expected_totals, HTTP_CLIENTS, HTTP_PASSES, HTTP_MAX_SECONDS)
    except Exception as exc:
        print(f"HTTP benchmark failed: {exc}")
        tail = (Path(workdir) / "serve.log").read_text(errors="replace").splitlines()[-25:]
        print("server log (last lines):\n  " + "\n  ".join(tail))
        return False
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    qps = r["ok"] / r["wall"]
    lat = r["latencies"] or [float("nan")]
    print(f"requests: {r['ok']:,} ok, {r['errors']} errors, of {r['planned']:,} planned, "
          f"in {r['wall']:.1f} s")
    print(f"throughput: {qps:,.0f} queries/s; latency median {statistics.median(lat):.1f} ms, "
          f"p95 {percentile(lat, 95):.1f} ms, p99 {percentile(lat, 99):.1f} ms, "
          f"max {max(lat):.1f} ms")
    print(f"totals differing from the in-process run: {r['mismatch']}")
    for s in r["samples"]:
        print(f"  error: {s}")
    met = qps >= TARGET_QPS and not r["errors"]
    print(f"target >= {TARGET_QPS:.0f} queries/s (no errors): {'met' if met else 'not met'}",
          flush=True)
    return True


# --- main ------------------------------------------------------------------------

def build_indexes(docs, args, workdir):
    """Both indexes from one JSONL file, unless given; returns their directories."""
    ix_dir, plain_dir = args.index, args.plain_index
    if ix_dir and plain_dir:
        return ix_dir, plain_dir
    jsonl = Path(workdir) / "corpus.jsonl"
    build_bench.write_jsonl(docs, jsonl)
    if not ix_dir:
        ix_dir = str(Path(workdir) / "arsearch")
        Path(ix_dir).mkdir()
        seconds, n, _ = build_bench.build_arsearch(jsonl, ix_dir)
        print(f"built arsearch index: {n:,} documents in {seconds:.1f} s", flush=True)
    if not plain_dir:
        plain_dir = str(Path(workdir) / "plain")
        Path(plain_dir).mkdir()
        seconds, n, _ = build_bench.build_plain(jsonl, plain_dir)
        print(f"built plain Whoosh index: {n:,} documents in {seconds:.1f} s", flush=True)
    jsonl.unlink()
    return ix_dir, plain_dir


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=1000, help="distinct queries (default 1000)")
    parser.add_argument("--docs", type=int, default=0, help="use N documents (default: all)")
    parser.add_argument("--skip-http", action="store_true", help="in-process latency only")
    parser.add_argument("--index", help="existing arsearch index to use instead of building one")
    parser.add_argument("--plain-index", help="existing plain Whoosh index (bench/index.py schema)")
    args = parser.parse_args(argv)

    import corpus
    import whoosh

    corpus.ensure_installed()
    docs = corpus.select(list(corpus.iter_documents()), args.docs)
    words = sum(len(d["text"].split()) for d in docs)
    mb = sum(len(d["text"].encode("utf-8")) for d in docs) / 1e6
    print(f"Python {platform.python_version()}, {platform.system()} {platform.machine()}, "
          f"{os.cpu_count()} CPUs, Whoosh {whoosh.versionstring()}")
    print(f"corpus: {len(docs):,} documents, {words:,} words, {mb:.1f} MB of text")

    queries = draw_queries(docs, args.queries)
    print(f"\nqueries: {len(queries)} distinct, seed {SEED}, no diacritics")
    for k in KINDS:
        mine = [q for kind, q in queries if kind == k]
        print(f"  {k:<7}{len(mine):>5}  e.g. " + " | ".join(mine[:3]))
    print("  explicit phrases: " + " | ".join(f'"{p}"' for p in COMMON_PHRASES))

    workdir = tempfile.mkdtemp(prefix="arsearch-query-bench-")
    ok = True
    try:
        ix_dir, plain_dir = build_indexes(docs, args, workdir)
        # The corpus (33k dicts) is the benchmark's, not the engine's: free it so
        # full GC passes during the timing walk only what a server would hold.
        del docs
        corpus._documents.cache_clear()
        gc.collect()
        r = in_process(ix_dir, plain_dir, queries)
        report_in_process(queries, r)
        if not args.skip_http:
            ok = http_bench(ix_dir, queries, r["ars_total"], workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
