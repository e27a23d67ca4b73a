"""Load test: concurrent clients against `arsearch serve` while the index changes.

N client threads send mixed requests (searches from bench/query.py's query
set, some filtered, sorted by date or paged; completions; documents; the HTML
results page) for T seconds to `arsearch serve` on a free loopback port,
while another thread commits small batches that replace and add documents
(`arsearch index`) and `arsearch index --rebuild`, started a quarter of the
way in, swaps in a fresh generation. Reports requests, queries/s, p50/p99
per kind, errors (any non-200 or exception), duplicate ids within a result
page, and the gunicorn workers' RSS before and after. Stops by itself: after T seconds, or
if the rebuild has not been swapped in by then (a busy machine), 10 s after
the swap, at most 3 T.

    python bench/load.py                                  # 32 clients x 60 s, 33k corpus
    python bench/load.py --seconds 5 --corpus sample      # smoke run (bundled sample)
    python bench/load.py --clients 4 --seconds 20 --slow 4 --no-commits --sync   # slow clients, sync workers
    python bench/load.py --clients 4 --seconds 20 --slow 4 --no-commits          # the same, gthread
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from importlib import resources
from pathlib import Path
from urllib.parse import quote, urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import index as build_bench  # noqa: E402  bench/index.py: the JSONL writer
import query as query_bench  # noqa: E402  bench/query.py: query set, percentile, readiness

SEED = 20240607
REQUEST_TIMEOUT = 30.0  # seconds per request; a request that takes longer is an error
# Shares of the request mix (the rest are searches).
MIX = {"suggest": 0.10, "document": 0.10, "html": 0.05}
BATCH = 20  # documents per live commit: 15 replaced, 5 added
SLOW_INTERVAL = 2.0  # a slow client's pause between header lines


# --- corpus and index -------------------------------------------------------------

def load_documents(name: str) -> list:
    if name == "sample":
        text = resources.files("indexer.data").joinpath("sample/documents.jsonl").read_text("utf-8")
        docs = [json.loads(line) for line in text.splitlines() if line.strip()]
        for d in docs:
            d.setdefault("source", "")
            tags = d.get("tags") or []
            d["tags"] = tags.split(",") if isinstance(tags, str) else tags
        return docs
    import corpus

    corpus.ensure_installed()
    if name == "x10":
        return list(corpus.iter_documents_scaled(10))
    return list(corpus.iter_documents())


def arsearch(*args, timeout=1800) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "search_app.cli", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def prepare_index(args, jsonl, workdir) -> Path:
    ix = Path(workdir) / "ix"
    if args.index:
        # A copy of the live generation: the run commits to it and rebuilds it.
        from indexer import store

        live = store.live_path(args.index)
        ix.mkdir()
        shutil.copytree(live, ix / live.name)
        (ix / "current").symlink_to(live.name)
        print(f"index: copy of {live}", flush=True)
        return ix
    t0 = time.perf_counter()
    done = arsearch("index", "--quiet", "--index", ix, jsonl)
    if done.returncode:
        raise RuntimeError(f"arsearch index failed: {done.stderr}")
    print(f"index: built in {time.perf_counter() - t0:.1f} s", flush=True)
    return ix


# --- server -------------------------------------------------------------------------

def start_server(args, ix, port, workdir):
    home = Path(workdir) / "home"
    home.mkdir(exist_ok=True)
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(ROOT), "ARSEARCH_LOG_LEVEL": "warning",
           "PYTHONDONTWRITEBYTECODE": "1", "ARSEARCH_INDEX": str(Path(ix).resolve())}
    env.pop("ARSEARCH_ACCESS_LOG", None)
    if args.threads:
        env["ARSEARCH_THREADS"] = str(args.threads)
    if args.sync:
        # The baseline: gunicorn's stock sync worker with arsearch's other settings.
        command = [sys.executable, "-m", "gunicorn", "-c", "python:search_app.gunicorn_conf",
                   "-k", "sync", "--threads", "1", "--bind", f"127.0.0.1:{port}",
                   "--workers", str(args.workers), "search_app.wsgi:app"]
    else:
        command = [sys.executable, "-m", "search_app.cli", "serve", "--index", str(ix),
                   "--host", "127.0.0.1", "--port", str(port), "--workers", str(args.workers)]
    log = open(Path(workdir) / "serve.log", "wb")
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), log


def stop_server(proc, log):
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


def children(pid: int) -> list:
    """The gunicorn workers: the master's child processes."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found.append(int(entry))
    return sorted(found)


def memory(pid: int) -> dict:
    """VmRSS and VmHWM (peak) in MB from /proc/PID/status."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return out


# --- clients ------------------------------------------------------------------------

class Results:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies = {}  # kind -> [ms]
        self.errors = {}  # short description -> count
        self.samples = []
        self.duplicates = 0
        self.pages_checked = 0

    def ok(self, kind, ms):
        with self.lock:
            self.latencies.setdefault(kind, []).append(ms)

    def error(self, kind, what, detail):
        with self.lock:
            key = f"{kind}: {what}"
            self.errors[key] = self.errors.get(key, 0) + 1
            if len(self.samples) < 8:
                self.samples.append(f"{key}: {detail}")


class Workload:
    """Request paths drawn from the corpus: the same for the same seed."""

    def __init__(self, docs, n_queries):
        self.queries = [q for _, q in query_bench.draw_queries(docs, n_queries)]
        self.ids = [d["id"] for d in docs]
        self.sources = sorted({d.get("source") or "" for d in docs} - {""})
        words = []
        for d in docs[::max(1, len(docs) // 2000)]:
            words.extend(w for w in query_bench.plain_words(d["text"]) if len(w) >= 3)
        self.words = words or ["الله"]

    def request(self, rng) -> tuple:
        roll = rng.random()
        if roll < MIX["suggest"]:
            word = rng.choice(self.words)
            prefix = word[:rng.randint(2, min(4, len(word)))]
            if rng.random() < 0.3:
                prefix = rng.choice(self.words) + " " + prefix
            return "suggest", "/api/suggest?" + urlencode({"q": prefix})
        roll -= MIX["suggest"]
        if roll < MIX["document"]:
            path = "/api/documents/" + quote(rng.choice(self.ids), safe="")
            if rng.random() < 0.5:
                path += "?" + urlencode({"q": rng.choice(self.queries)})
            return "document", path
        roll -= MIX["document"]
        q = rng.choice(self.queries)
        if roll < MIX["html"]:
            return "html", "/?" + urlencode({"q": q})
        params = {"q": q, "limit": rng.choice((10, 10, 10, 20))}
        extra = rng.random()
        if extra < 0.10 and self.sources:
            params["source"] = rng.choice(self.sources)
        elif extra < 0.20:
            params["sort"] = "date"
        elif extra < 0.35:
            params["page"] = rng.choice((2, 3))
        return "search", "/api/search?" + urlencode(params)


def client(port, workload, results, seed, finished):
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    try:
        while not finished.is_set():
            kind, path = workload.request(rng)
            try:
                status, body, ms = timed_get(conn, path)
                if status != 200:
                    results.error(kind, f"HTTP {status}", f"{path[:80]} -> {body[:160]!r}")
                    continue
                if kind == "search":
                    ids = [h["id"] for h in json.loads(body)["hits"]]
                    with results.lock:
                        results.pages_checked += 1
                        if len(ids) != len(set(ids)):
                            results.duplicates += 1
                            if len(results.samples) < 8:
                                results.samples.append(f"duplicate ids: {path[:80]} -> {ids}")
                elif kind != "html":
                    json.loads(body)
                results.ok(kind, ms)
            except Exception as exc:  # counted; the connection starts afresh
                results.error(kind, type(exc).__name__, f"{path[:80]}: {exc!r}"[:240])
                conn.close()
    finally:
        conn.close()


def timed_get(conn, path) -> tuple:
    """(status, body, ms) of one GET on a keep-alive connection."""
    t0 = time.perf_counter()
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    ms = (time.perf_counter() - t0) * 1000
    if resp.will_close:
        conn.close()  # http.client reconnects on the next request
    return resp.status, body, ms


def slow_client(port, stop, cuts):
    """Sends a request line, then one header line every SLOW_INTERVAL s, forever."""
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"GET /api/search?q=x HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                n = 0
                while not stop.wait(SLOW_INTERVAL):
                    s.sendall(b"X-Slow-%d: 1\r\n" % n)
                    n += 1
        except OSError:
            cuts.append(1)  # the server closed it: start a new one


# --- index changes during the run --------------------------------------------------------

def changed_batch(docs, rng, n, serial) -> list:
    """`n` records: most replace a document (its words rotated), the rest are new."""
    out = []
    for i in range(n):
        d = rng.choice(docs)
        words = d["text"].split()
        shift = rng.randrange(max(1, len(words)))
        record = {"id": d["id"], "title": d["title"], "source": d.get("source") or "",
                  "tags": d.get("tags") or [], "text": " ".join(words[shift:] + words[:shift])}
        if i >= n * 3 // 4:
            record["id"] = f"load-{serial}-{i}"
        out.append(record)
    return out


def live_commits(ix, docs, workdir, every, stop, log):
    """A commit of BATCH changed documents every `every` s until `stop`."""
    rng = random.Random(SEED)
    serial = 0
    while not stop.wait(every):
        serial += 1
        path = Path(workdir) / f"batch-{serial}.jsonl"
        build_bench.write_jsonl(changed_batch(docs, rng, BATCH, serial), path)
        t0 = time.monotonic()
        # --wait: the rebuild holds the index lock while it runs.
        done = arsearch("index", "--quiet", "--wait", 600, "--index", ix, path)
        log["commits"].append((time.monotonic() - t0, done.returncode, done.stderr[-300:]))
        path.unlink()


def rebuild(ix, jsonl, delay, stop, log):
    """One `arsearch index --rebuild` of the whole corpus after `delay` s."""
    if stop.wait(delay):
        return
    t0 = time.monotonic()
    done = arsearch("index", "--rebuild", "--quiet", "--wait", 600, "--index", ix, jsonl)
    log["rebuilds"].append((delay, time.monotonic() - t0, done.returncode, done.stderr[-300:]))


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def health(port, timeout=REQUEST_TIMEOUT):
    try:
        status, body = query_bench.get_json(port, "/healthz", timeout=timeout)
        return body if status == 200 else None
    except Exception:
        return None


# --- report ---------------------------------------------------------------------------

def report(args, results, wall, before, after, pids_before, pids_after, log, slow_cuts, gens,
           gen_after):
    total_ok = sum(len(v) for v in results.latencies.values())
    total_err = sum(results.errors.values())
    print(f"\nrequests: {total_ok + total_err:,} in {wall:.1f} s: "
          f"{(total_ok + total_err) / wall:,.0f} requests/s; {total_ok:,} ok, {total_err} errors")
    print(f"{'kind':<10}{'n':>8}{'q/s':>8}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    kinds = [k for k in ("search", "suggest", "document", "html") if k in results.latencies]
    everything = [ms for k in kinds for ms in results.latencies[k]]
    for k, values in [(k, results.latencies[k]) for k in kinds] + [("all", everything)]:
        if not values:
            continue
        print(f"{k:<10}{len(values):>8,}{len(values) / wall:>8.0f}{statistics.median(values):>9.1f}"
              f"{query_bench.percentile(values, 90):>9.1f}{query_bench.percentile(values, 99):>9.1f}"
              f"{max(values):>9.1f}")
    print(f"errors: {total_err}" + "".join(f"\n  {n:>6}  {what}" for what, n in sorted(results.errors.items())))
    print(f"duplicate ids: {results.duplicates} of {results.pages_checked:,} result pages")
    for s in results.samples:
        print(f"  sample: {s}")
    commits = log["commits"]
    if commits:
        secs = [c[0] for c in commits]
        failed = [c for c in commits if c[1]]
        print(f"live commits: {len(commits)} ({BATCH} documents each), {len(failed)} failed, "
              f"median {statistics.median(secs):.1f} s each")
        for c in failed[:3]:
            print(f"  failed commit: {c[2]}")
    for at, secs, rc, err in log["rebuilds"]:
        print(f"rebuild: started at {at:.1f} s, took {secs:.1f} s, exit {rc}" + (f": {err}" if rc else ""))
    print(f"generations served during the run: {' -> '.join(gens) if gens else '?'}"
          + (f"; after it: {gen_after}" if gen_after else ""))
    if log["rebuilds"] and len(gens) < 2:
        print("note: the rebuild was not swapped in while the clients ran")
    if args.slow:
        print(f"slow clients: {args.slow}, one header line every {SLOW_INTERVAL:g} s; "
              f"cut off by the server {len(slow_cuts)} times")
    print(f"{'worker':<10}{'RSS before':>12}{'RSS after':>12}{'peak':>10}")
    for pid in sorted(set(pids_before) | set(pids_after)):
        b, a = before.get(pid, {}), after.get(pid, {})
        print(f"{pid:<10}{b.get('VmRSS', float('nan')):>10.0f}MB{a.get('VmRSS', float('nan')):>10.0f}MB"
              f"{a.get('VmHWM', float('nan')):>8.0f}MB")
    restarted = sorted(set(pids_before) ^ set(pids_after))
    if restarted:
        print(f"workers replaced during the run (killed or crashed): {restarted}")
    return not total_err and not results.duplicates and not restarted


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32, help="concurrent client threads (32)")
    parser.add_argument("--seconds", type=float, default=60, help="length of the run (60)")
    parser.add_argument("--corpus", choices=("sample", "small", "x10"), default="small",
                        help="sample: the bundled 365 documents; small: the 33,137-document "
                             "benchmark corpus; x10: ten copies of it")
    parser.add_argument("--index", help="copy this index (built from --corpus) instead of building one")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (2)")
    parser.add_argument("--threads", type=int, default=0,
                        help="threads per worker ($ARSEARCH_THREADS; default: the server's)")
    parser.add_argument("--queries", type=int, default=1000, help="distinct search queries (1000)")
    parser.add_argument("--commit-every", type=float, default=10.0,
                        help=f"seconds between live commits of {BATCH} documents (10; 0: none)")
    parser.add_argument("--no-commits", action="store_true", help="no live commits and no rebuild")
    parser.add_argument("--no-rebuild", dest="rebuild", action="store_false", help="no --rebuild swap")
    parser.add_argument("--slow", type=int, default=0, metavar="K",
                        help=f"also hold K slow connections (a header line every {SLOW_INTERVAL:g} s)")
    parser.add_argument("--sync", action="store_true",
                        help="baseline: gunicorn's sync workers instead of arsearch's threaded ones")
    args = parser.parse_args(argv)
    if args.no_commits:
        args.commit_every, args.rebuild = 0, False

    docs = load_documents(args.corpus)
    print(f"Python {platform.python_version()}, {platform.system()} {platform.machine()}, "
          f"{os.cpu_count()} CPUs; corpus {args.corpus}: {len(docs):,} documents; "
          f"load average {load_average()} (the machine may be shared)")
    threads = "sync workers" if args.sync else f"threads {args.threads or 'default'}"
    print(f"{args.clients} clients x {args.seconds:g} s, {args.workers} workers, {threads}, "
          f"commits every {args.commit_every:g} s, rebuild {'yes' if args.rebuild else 'no'}, "
          f"slow clients {args.slow}", flush=True)
    workload = Workload(docs, args.queries)
    workdir = tempfile.mkdtemp(prefix="arsearch-load-")
    ok = False
    try:
        jsonl = Path(workdir) / "corpus.jsonl"
        build_bench.write_jsonl(docs, jsonl)
        ix = prepare_index(args, jsonl, workdir)
        port = query_bench.free_port()
        proc, log_file = start_server(args, ix, port, workdir)
        try:
            query_bench.wait_ready(proc, port, seconds=300)
            pids_before = children(proc.pid)
            before = {pid: memory(pid) for pid in pids_before}
            gens = []
            first = health(port)
            if first:
                gens.append(first["index"])
            stop = threading.Event()
            log = {"commits": [], "rebuilds": []}
            slow_cuts = []
            results = Results()
            helpers = []
            if args.commit_every:
                helpers.append(threading.Thread(target=live_commits, daemon=True, args=(
                    ix, docs, workdir, args.commit_every, stop, log)))
            if args.rebuild:
                # After a commit or two; under load a 33k rebuild takes 20-100 s.
                helpers.append(threading.Thread(target=rebuild, daemon=True, args=(
                    ix, jsonl, args.seconds / 4, stop, log)))
            helpers += [threading.Thread(target=slow_client, args=(port, stop, slow_cuts), daemon=True)
                        for _ in range(args.slow)]
            for t in helpers:
                t.start()
            start = time.perf_counter()
            began = time.monotonic()
            finished = threading.Event()
            clients = [threading.Thread(target=client, daemon=True,
                                        args=(port, workload, results, SEED + i, finished))
                       for i in range(args.clients)]
            for t in clients:
                t.start()
            swapped_at = None
            while True:
                time.sleep(1.0)
                rebuilt = bool(log["rebuilds"])  # read before /healthz: the swap precedes the exit
                now = health(port, timeout=2)  # the clock must not stall behind a busy server
                if now and (not gens or gens[-1] != now["index"]):
                    gens.append(now["index"])
                    swapped_at = time.monotonic()
                elapsed = time.monotonic() - began
                # On a busy machine the rebuild may outlast --seconds: the clients
                # then go on until 10 s after its swap (at most 3 x --seconds).
                if swapped_at is None:
                    waiting_for_swap = args.rebuild and not rebuilt
                else:
                    waiting_for_swap = time.monotonic() - swapped_at < 10
                if elapsed >= args.seconds and (not waiting_for_swap or elapsed >= 3 * args.seconds):
                    break
            finished.set()
            for t in clients:
                t.join(REQUEST_TIMEOUT + 10)
            wall = time.perf_counter() - start
            if args.rebuild and elapsed > args.seconds + 2:
                print(f"\nnote: the clients ran {elapsed:.0f} s instead of {args.seconds:g} s, "
                      "until 10 s after the rebuild's swap")
            stop.set()
            for t in helpers:
                t.join(900)  # a rebuild in progress finishes (bounded by its timeout)
            last = health(port)
            gen_after = last["index"] if last and gens and gens[-1] != last["index"] else None
            pids_after = children(proc.pid)
            after = {pid: memory(pid) for pid in pids_after}
            ok = report(args, results, wall, before, after, pids_before, pids_after, log,
                        slow_cuts, gens, gen_after)
        finally:
            stop_server(proc, log_file)
            tail = (Path(workdir) / "serve.log").read_text(errors="replace").splitlines()
            serious = [line for line in tail if "ERROR" in line or "Traceback" in line]
            if serious:
                print(f"server log: {len(serious)} ERROR/Traceback lines, e.g.\n  " + "\n  ".join(serious[:5]))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"load average at the end: {load_average()}")
    print("result: " + ("0 errors, 0 duplicates" if ok else "FAILED (errors, duplicates or workers lost)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
