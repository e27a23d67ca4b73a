"""Index build speed, size and memory: arsearch's build_index next to plain Whoosh.

Both builds read the same JSON Lines file (parsing is part of the cost), each
in a fresh subprocess so peak memory and caches are its own. The plain build
is what a Whoosh user writes first: StandardAnalyzer, default writer, one
add_document per line. arsearch indexes title and text twice (stemmed and
exact) and still has to be faster: the target is >= 1.5x plain's docs/s.

    python bench/index.py                      # 30k corpus x3 runs, then 10x corpus once
    python bench/index.py --docs 2000 --skip-scale   # quick run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

TARGET = 1.5


def disk_size(path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def own_peak_mb() -> float:
    """This process's peak RSS since exec.

    ru_maxrss(RUSAGE_SELF) survives execve: a child started by the parent, which
    holds the whole corpus, would report the parent's size. VmHWM belongs to
    the address space, which exec replaces.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def children_peak_mb() -> float:
    """Peak RSS of the largest waited-for child: the workers are forked, not exec'd."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux


# --- in the child process -------------------------------------------------

def build_plain(jsonl, out) -> tuple:
    """The baseline: Whoosh defaults, with the fields arsearch stores."""
    from whoosh.fields import DATETIME, ID, KEYWORD, STORED, TEXT, Schema
    from whoosh.index import create_in

    schema = Schema(id=ID(unique=True, stored=True), title=TEXT(stored=True),
                    text=TEXT(stored=True), url=STORED, date=DATETIME(stored=True),
                    source=ID(stored=True), tags=KEYWORD(stored=True, commas=True))
    start = time.perf_counter()
    ix = create_in(out, schema)
    w = ix.writer()
    with open(jsonl, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            fields = {"id": r["id"], "title": r["title"], "text": r["text"],
                      "source": r["source"]}
            if r["tags"]:
                fields["tags"] = ",".join(r["tags"])
            w.add_document(**fields)
    w.commit()
    seconds = time.perf_counter() - start
    return seconds, ix.doc_count(), disk_size(out)


def build_arsearch(jsonl, out) -> tuple:
    from indexer import store
    from indexer.build import build_index

    start = time.perf_counter()
    report = build_index(out, [str(jsonl)])
    seconds = time.perf_counter() - start
    return seconds, report.documents, store.disk_size(store.live_path(out))


def one(kind, jsonl, workdir) -> None:
    """Build once into a fresh dir under `workdir`, print a JSON line, clean up."""
    out = tempfile.mkdtemp(prefix=f"{kind}-", dir=workdir)
    try:
        seconds, docs, size = (build_plain if kind == "plain" else build_arsearch)(jsonl, out)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(json.dumps({"seconds": seconds, "docs": docs, "index_bytes": size,
                      "rss_mb": own_peak_mb(), "worker_rss_mb": children_peak_mb()}))


# --- in the parent ----------------------------------------------------------

def write_jsonl(docs, path) -> tuple:
    """Write the corpus once; returns (documents, UTF-8 bytes of title+text)."""
    n = text_bytes = 0
    with open(path, "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({k: d[k] for k in ("id", "title", "text", "source", "tags")},
                               ensure_ascii=False) + "\n")
            n += 1
            text_bytes += len(d["title"].encode("utf-8")) + len(d["text"].encode("utf-8"))
    return n, text_bytes


def run_child(kind, jsonl, workdir) -> dict:
    done = subprocess.run([sys.executable, __file__, "--one", kind, str(jsonl), str(workdir)],
                          stdout=subprocess.PIPE, text=True, check=True, cwd=ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench(label, docs, runs, workdir) -> None:
    jsonl = Path(workdir) / "corpus.jsonl"
    n, text_bytes = write_jsonl(docs, jsonl)
    mb = text_bytes / 1e6
    print(f"\n{label}: {n:,} documents, {mb:.1f} MB title+text, "
          f"JSONL {jsonl.stat().st_size / 1e6:.1f} MB; median of {runs} run(s)", flush=True)
    results = {"plain": [], "arsearch": []}
    for i in range(runs):
        for kind in ("plain", "arsearch"):  # alternate, so drift hits both
            r = run_child(kind, jsonl, workdir)
            if r["docs"] != n:
                raise SystemExit(f"{kind} indexed {r['docs']} documents, expected {n}")
            results[kind].append(r)
            print(f"  run {i + 1}/{runs} {kind:<9}{r['seconds']:8.1f} s", file=sys.stderr, flush=True)
    jsonl.unlink()

    print(f"{'build':<10}{'docs/s':>9}{'MB/s':>7}{'index/text':>12}{'wall s':>9}  peak RSS")
    speed = {}
    for kind, rs in results.items():
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        speed[kind] = n / med["seconds"]
        if kind == "arsearch":
            memory = f"parent {med['rss_mb']:.0f} MB, " + (
                f"largest worker {med['worker_rss_mb']:.0f} MB" if med["worker_rss_mb"]
                else "no workers (small input: jobs=1)")
        else:
            memory = f"process {med['rss_mb']:.0f} MB"
        print(f"{kind:<10}{speed[kind]:>9,.0f}{mb / med['seconds']:>7.2f}"
              f"{med['index_bytes'] / text_bytes:>11.2f}x{med['seconds']:>9.1f}  {memory}")
        if runs > 1:
            print(f"{'':<10}runs (s): " + " ".join(f"{r['seconds']:.1f}" for r in rs))
    ratio = speed["arsearch"] / speed["plain"]
    verdict = "met" if ratio >= TARGET else "NOT met"
    print(f"speed ratio arsearch/plain (docs/s): {ratio:.2f}x  (target >= {TARGET}x: {verdict})",
          flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=0, help="use N documents (default: all)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each build, corpus")
    parser.add_argument("--scale", type=int, default=10, help="copies in the scaled corpus")
    parser.add_argument("--scale-runs", type=int, default=1, help="runs of each build, scaled")
    parser.add_argument("--skip-scale", action="store_true", help="skip the scaled corpus")
    parser.add_argument("--one", nargs=3, metavar=("KIND", "JSONL", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        return one(*args.one)

    import corpus
    import whoosh

    corpus.ensure_installed()
    base = corpus.select(list(corpus.iter_documents()), args.docs)
    print(f"Python {platform.python_version()}, {platform.system()} {platform.machine()}, "
          f"{os.cpu_count()} CPUs, Whoosh {whoosh.versionstring()}")
    print("arsearch: build_index(), default jobs; plain: Whoosh StandardAnalyzer, "
          "default writer; both from the same JSONL, each in a fresh process")
    with tempfile.TemporaryDirectory(prefix="arsearch-bench-") as workdir:
        bench("corpus", base, args.runs, workdir)
        if not args.skip_scale:
            keep = {d["id"] for d in base}
            scaled = (d for d in corpus.iter_documents_scaled(args.scale)
                      if d["id"].split("#")[0] in keep)
            bench(f"corpus x{args.scale}", scaled, args.scale_runs, workdir)


if __name__ == "__main__":
    main()
