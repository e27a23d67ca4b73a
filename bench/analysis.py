"""Throughput of the analysis chain on ~2M words of real Arabic, on one core.

Each analyzer is timed per document (as indexing calls it) over the corpus of
bench/corpus.py, next to `re.findall(r"\\w+")` on the same texts: the floor no
analyzer can beat, so "x floor" says what normalizing and stemming cost.
(Python's \\w does not match harakat, category Mn, so the floor's "tokens"
are pieces of diacritized words: compare words/s, not tokens.)
Cold passes start with every analysis cache cleared; warm passes reuse the
per-word caches, which is the steady state of a long indexing run.

    python bench/analysis.py             # full corpus, 3 cold + 5 warm passes
    python bench/analysis.py --docs 2000 # quick run
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import corpus  # noqa: E402

_WORD = re.compile(r"\w+")


def regex_floor(texts):
    findall = _WORD.findall
    n = 0
    for text in texts:
        n += len(findall(text))
    return n


def pure_counter(analyze):
    def run(texts):
        n = 0
        for text in texts:
            n += len(analyze(text))
        return n
    return run


def whoosh_counter(analyzer):
    """Count, never keep: Whoosh yields one Token object, mutated in place."""
    def run(texts):
        n = 0
        for text in texts:
            for _ in analyzer(text):
                n += 1
        return n
    return run


def positions_counter(term_positions):
    """The indexing fast path: exact and stem positions in one pass."""
    def run(texts):
        n = 0
        for text in texts:
            exact, _, _ = term_positions(text)
            for poslist in exact.values():
                n += len(poslist)
        return n
    return run


def clear_caches():
    """Forget every memoized word, so a pass pays for all of the analysis."""
    for name in ("indexer.analysis", "indexer.stem", "indexer.normalize",
                 "indexer.tokenize", "indexer.whoosh_analysis"):
        module = sys.modules.get(name)
        for obj in vars(module).values() if module else ():
            if callable(getattr(obj, "cache_clear", None)):
                obj.cache_clear()
    wa = sys.modules.get("indexer.whoosh_analysis")
    if wa is not None and hasattr(wa, "_last_analysis"):
        wa._last_analysis[:] = [None, None]


def timed(run, texts, cold):
    if cold:
        clear_caches()
    gc.collect()
    start = time.perf_counter()
    tokens = run(texts)
    return time.perf_counter() - start, tokens


def measure(run, texts, passes, cold):
    """Median seconds of `passes` runs, and the token count."""
    results = [timed(run, texts, cold) for _ in range(passes)]
    return statistics.median(s for s, _ in results), results[0][1]


def analyzers():
    """(label, run) for every entry point of the chain that is importable."""
    try:
        from indexer.analysis import analyze
        from indexer.whoosh_analysis import exact_analyzer, stemmed_analyzer
    except ImportError as exc:
        print(f"indexer not importable ({exc}): regex floor only", file=sys.stderr)
        return []
    found = [("analyze() pure", pure_counter(analyze)),
             ("exact_analyzer()", whoosh_counter(exact_analyzer())),
             ("stemmed_analyzer()", whoosh_counter(stemmed_analyzer()))]
    try:
        from indexer.whoosh_analysis import term_positions
        found.append(("term_positions() index", positions_counter(term_positions)))
    except ImportError:
        pass
    return found


def pin_one_core():
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=0, help="use N documents (default: all)")
    parser.add_argument("--runs", type=int, default=5, help="warm passes per analyzer")
    parser.add_argument("--cold-runs", type=int, default=3, help="cold passes per analyzer")
    args = parser.parse_args(argv)

    corpus.ensure_installed()
    pinned = pin_one_core()
    texts = [d["text"] for d in corpus.select(list(corpus.iter_documents()), args.docs)]
    n_words = sum(len(t.split()) for t in texts)
    megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6

    print(f"Python {platform.python_version()} ({platform.python_implementation()}), "
          f"{platform.system()} {platform.machine()}, {pinned}")
    print(f"corpus: {len(texts)} documents, {n_words:,} words, {megabytes:.1f} MB UTF-8")
    print(f"median of {args.cold_runs} cold (caches cleared) and {args.runs} warm passes, "
          "one call per document; words = whitespace-separated input words;\n"
          "the floor's tokens are word pieces (\\w does not match harakat)\n")
    print(f"{'analyzer':<24}{'pass':<6}{'seconds':>9}{'tokens':>11}"
          f"{'tokens/s':>12}{'words/s':>12}{'x floor':>9}")

    def row(label, kind, seconds, tokens, floor):
        print(f"{label:<24}{kind:<6}{seconds:>9.3f}{tokens:>11,}{tokens / seconds:>12,.0f}"
              f"{n_words / seconds:>12,.0f}{seconds / floor:>9.1f}", flush=True)

    floor, tokens = measure(regex_floor, texts, args.runs, cold=False)
    row('re.findall(r"\\w+")', "-", floor, tokens, floor)
    for label, run in analyzers():
        seconds, tokens = measure(run, texts, args.cold_runs, cold=True)
        row(label, "cold", seconds, tokens, floor)
        seconds, tokens = measure(run, texts, args.runs, cold=False)
        row(label, "warm", seconds, tokens, floor)


if __name__ == "__main__":
    main()
