"""HTTP throughput, tail latency, start-up time and memory of `arsearch serve`.

Starts `arsearch serve --index DIR` (bench/load.py's start_server) on a free
127.0.0.1 port; start-up is the time to the first 200 from /api/search, then
to every worker having opened and warmed the index (each maps an .arq file
and the workers' CPU time holds still), so no run pays for a starting worker
(the first query in each worker still loads the compiled kernels from numba's
cache, ~0.3 s: it shows in the first run's max). Per --params value and
--clients count, N keep-alive connections send GET
/api/search?q=...&limit=10&PARAMS, one request in flight each. The clients
run in their own process(es) (--client-procs, 1), one event loop each over
plain sockets with the requests made up front: ~0.15 ms of client CPU per
request at x10 on a busy 2-core machine, where http.client in threads of
this process took ~0.6 ms, on the same cores as the server. The clients
share one work list, passes x queries long, each taking the next item from
a shared counter: every query is sent `passes` times per run, not per
client; a run also stops after --seconds. Per run: requests, errors (any
non-200 or exception), partial answers (time limit hit), q/s,
p50/p95/p99/max ms, CPU per request of the server (master and workers,
from /proc) and of the clients (their own process time), and how many of
the connections each worker took (a keep-alive connection stays with its
worker). Each worker keeps its own result cache (RESULT_CACHE_SIZE
queries, LRU): with several workers, later passes and runs on the same
server are partly answered from it; --fresh starts a new server (empty
caches) for every run.
After the runs: RSS and PSS (/proc/PID/smaps_rollup) of the gunicorn master
and each worker; the PSS sum is the figure for the 1 GB target (pages shared
through the page cache, like the .arq maps, count once in all). Also the
size of the .arq files and of the whole index folder.

    python bench/serve_bench.py --index DIR --queries WORK/queries.json   # peers.py --keep's folder
    python bench/serve_bench.py --index DIR --clients 8,32,64 --threads 8 --fresh
    python bench/serve_bench.py --index /tmp/ix --passes 1 --seconds 10 --params ''   # default response only
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing
import os
import platform
import selectors
import shutil
import socket
import statistics
import sys
import tempfile
import time
from array import array
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import load  # noqa: E402  bench/load.py: server start/stop, workers, RSS, load average
import query as query_bench  # noqa: E402  bench/query.py: query set, percentile, free port

TARGET_PSS_MB = 1024.0
FAST_PARAMS = "snippets=false&facets=false"
REQUEST_TIMEOUT = 30.0
STARTUP_SECONDS = 300.0
PROBE = "كتاب"  # "book": the start-up probe query


def read_queries(path) -> list:
    if not path:  # the bundled sample, drawn as bench/query.py draws from the corpus
        return query_bench.draw_queries(load.load_documents("sample"), 1000)
    data = json.loads(Path(path).read_text("utf-8"))
    if not (isinstance(data, list) and data and all(
            isinstance(x, list) and len(x) == 2 and isinstance(x[1], str) for x in data)):
        sys.exit(f"{path}: expected a JSON list of [kind, query] pairs (peers.py --keep's queries.json)")
    return [(kind, q) for kind, q in data]


def pss(pid: int) -> dict:
    """Pss and Pss_Anon in MB from smaps_rollup, or summed over smaps (older kernels)."""
    out = {}
    for name in (f"/proc/{pid}/smaps_rollup", f"/proc/{pid}/smaps"):
        try:
            with open(name) as f:
                for line in f:
                    key = line.split(":", 1)[0]
                    if key in ("Pss", "Pss_Anon"):
                        out[key] = out.get(key, 0.0) + int(line.split()[1]) / 1024
            return out
        except OSError:
            continue
    return out


def worker_state(pid: int) -> tuple:
    """(CPU ticks used, whether it maps an .arq file): a worker that has opened the index maps one."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/maps") as f:
            return int(fields[11]) + int(fields[12]), any(line.rstrip().endswith(".arq") for line in f)
    except (OSError, IndexError, ValueError):
        return -1, False


def first_search(proc, port, params):
    """Poll /api/search until it answers 200, with a deadline."""
    path = "/api/search?" + urlencode({"q": PROBE, "limit": 10}) + (f"&{params}" if params else "")
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"arsearch serve exited with code {proc.returncode}")
        try:
            if query_bench.get_json(port, path, timeout=5)[0] == 200:
                return
        except (OSError, ValueError, http.client.HTTPException):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"/api/search did not answer within {STARTUP_SECONDS:.0f} s")


def settle(proc, workers) -> list:
    """Poll until all `workers` workers map an .arq file and use no CPU for 0.3 s; their pids."""
    deadline = time.monotonic() + STARTUP_SECONDS
    before = None
    while time.monotonic() < deadline:
        pids = load.children(proc.pid)
        now = (pids, [worker_state(p) for p in pids])
        if len(pids) == workers and all(mapped for _, mapped in now[1]) and now == before:
            return pids
        before = now
        time.sleep(0.3)
    raise RuntimeError(f"the workers were still busy starting after {STARTUP_SECONDS:.0f} s")


def request_bytes(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode("ascii")


class Connection:
    """One keep-alive client connection and the request it is waiting on."""

    def __init__(self, port):
        self.port = port
        self.sock = None
        self.item = -1  # index into the work list; -1: none in flight
        self.sent = 0.0  # perf_counter() when the request went out
        self.buf = bytearray()
        self.body_at = -1  # where the body starts, once the head is in
        self.length = 0
        self.status = 0
        self.close_after = False
        self.finished = False  # no more work for it


def drive(port, work, connections, counter, stop_at, pipe):
    """One client process: `connections` keep-alive connections on one selector.

    Each connection sends its next request (the next index of the shared
    `counter`) as soon as the previous answer is in, until the work list is
    done or `stop_at` (time.monotonic()) passes. Requests are made up front and
    responses read with plain socket calls: a fraction of what http.client
    and threads cost the client per request.
    Sends (latencies ms, errors, partial count, CPU seconds) through `pipe`.
    """
    cpu0 = time.process_time()
    sel = selectors.DefaultSelector()
    latencies, errors, partial = array("d"), [], 0

    def take():
        with counter.get_lock():
            i = counter.value
            counter.value = i + 1
        return i if i < len(work) and time.monotonic() < stop_at else -1

    def drop(c):
        if c.sock is not None:
            sel.unregister(c.sock)
            c.sock.close()
            c.sock = None

    def send(c):
        c.item = take()
        if c.item < 0:
            drop(c)
            c.finished = True
            return
        try:
            if c.sock is None:
                c.sock = socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT)
                c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sel.register(c.sock, selectors.EVENT_READ, c)
            c.buf.clear()
            c.body_at = -1
            c.sent = time.perf_counter()
            c.sock.sendall(work[c.item][1])
        except OSError as exc:
            fail(c, repr(exc))

    def fail(c, what):
        """Counted; the connection starts afresh on its next request."""
        errors.append(f"{work[c.item][0]}: {what}"[:240])
        drop(c)
        idle.append(c)

    def readable(c):
        nonlocal partial
        try:
            data = c.sock.recv(1 << 16)
        except OSError as exc:
            return fail(c, repr(exc))
        if not data:
            return fail(c, "the server closed the connection")
        c.buf += data
        if c.body_at < 0:
            end = c.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(c.buf[:end]).decode("latin-1").lower().split("\r\n")
            fields = dict(line.split(":", 1) for line in head[1:] if ":" in line)
            c.status = int(head[0].split()[1])
            c.length = int(fields.get("content-length", "-1"))
            c.close_after = fields.get("connection", "").strip() == "close"
            c.body_at = end + 4
            if c.length < 0:
                return fail(c, "response without Content-Length")
        if len(c.buf) < c.body_at + c.length:
            return
        ms = (time.perf_counter() - c.sent) * 1000
        body = bytes(c.buf[c.body_at:c.body_at + c.length])
        if c.status != 200:
            return fail(c, f"HTTP {c.status}: {body[:160]!r}")
        # The engine's JSON is compact; inside a string the quotes would be escaped.
        partial += b'"partial":true' in body
        latencies.append(ms)
        if c.close_after:
            drop(c)
        idle.append(c)

    conns = [Connection(port) for _ in range(connections)]
    idle = list(conns)  # connections with no request in flight
    while not all(c.finished for c in conns):
        while idle:
            send(idle.pop())
        for key, _ in sel.select(timeout=1.0):
            readable(key.data)
        now = time.perf_counter()
        for c in conns:
            if c.sock is not None and c not in idle and now - c.sent > REQUEST_TIMEOUT:
                fail(c, f"no answer within {REQUEST_TIMEOUT:g} s")
    pipe.send((latencies.tolist(), errors, partial, time.process_time() - cpu0))
    pipe.close()


def connections_per_worker(port, workers) -> list:
    """Established connections to `port` each worker holds (from /proc/net/tcp and the fds)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                    inodes.add(f"socket:[{fields[9]}]")
    counts = []
    for pid in workers:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            counts.append(sum(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in fds
                              if not fd.startswith(".")))
        except OSError:
            counts.append(0)
    return counts


def cpu_ticks(pids) -> int:
    return sum(max(worker_state(p)[0], 0) for p in pids)


def run(port, queries, clients, passes, params, seconds, procs, server_pids) -> dict:
    """One run: `clients` connections spread over `procs` client processes."""
    suffix = f"&{params}" if params else ""
    work = [(q, request_bytes("/api/search?" + urlencode({"q": q, "limit": 10}) + suffix))
            for _ in range(passes) for _, q in queries]
    counter = multiprocessing.Value("q", 0)  # the shared position in `work`
    stop_at = time.monotonic() + seconds
    procs = max(1, min(procs, clients))
    shares = [clients // procs + (i < clients % procs) for i in range(procs)]
    pipes, children = [], []
    ticks = cpu_ticks(server_pids)
    start = time.perf_counter()
    for n in shares:
        receive, send = multiprocessing.Pipe(duplex=False)
        child = multiprocessing.Process(target=drive, daemon=True,
                                        args=(port, work, n, counter, stop_at, send))
        child.start()
        send.close()
        pipes.append(receive)
        children.append(child)
    # How the connections fell to the workers: a keep-alive connection stays
    # with the worker that accepted it (gunicorn_worker.py spreads them).
    spread, deadline = [], time.monotonic() + 10
    while time.monotonic() < deadline and sum(spread) < clients and not pipes[0].poll(0):
        time.sleep(0.05)
        spread = connections_per_worker(port, server_pids[1:])
    latencies, errors, partial, client_cpu = [], [], 0, 0.0
    for receive, child in zip(pipes, children):
        if receive.poll(seconds + REQUEST_TIMEOUT + 30):
            lat, err, part, cpu = receive.recv()
            latencies += lat
            errors += err
            partial += part
            client_cpu += cpu
        else:
            errors.append("a client process did not report")
        child.join(10)
        if child.is_alive():
            child.kill()
    wall = time.perf_counter() - start
    server_cpu = (cpu_ticks(server_pids) - ticks) / os.sysconf("SC_CLK_TCK")
    return {"wall": wall, "latencies": latencies, "errors": errors, "partial": partial,
            "client_cpu": client_cpu, "server_cpu": server_cpu, "spread": spread}


def sizes(index) -> tuple:
    """Bytes of the .arq files and of every file under the index folder (links not followed)."""
    arq = total = 0
    for folder, _, files in os.walk(index):
        for name in files:
            size = os.lstat(os.path.join(folder, name)).st_size
            total += size
            arq += size if name.endswith(".arq") else 0
    return arq, total


def report_memory(proc, workers) -> float:
    print(f"\n{'memory after the runs':<22}{'pid':>8}{'RSS MB':>9}{'PSS MB':>9}{'PSS anon':>10}")
    total = 0.0
    for role, pid in [("master", proc.pid)] + [(f"worker {i + 1}", p) for i, p in enumerate(workers)]:
        rss, p = load.memory(pid).get("VmRSS", float("nan")), pss(pid)
        total += p.get("Pss", 0.0)
        print(f"  {role:<20}{pid:>8}{rss:>9.0f}{p.get('Pss', float('nan')):>9.0f}"
              f"{p.get('Pss_Anon', float('nan')):>10.0f}")
    return total


@contextlib.contextmanager
def served(args, index, workdir, probe_params):
    """`arsearch serve` from start to stop: prints its start-up times and, at the end, its log's errors."""
    port = query_bench.free_port()
    t0 = time.perf_counter()
    proc, log = load.start_server(args, index, port, workdir)
    try:
        first_search(proc, port, probe_params)
        first = time.perf_counter() - t0  # from the start of the process
        pids = settle(proc, args.workers)
        print(f"start-up: first /api/search answer {first:.2f} s after starting the server; "
              f"all {len(pids)} workers opened and idle after {time.perf_counter() - t0:.2f} s", flush=True)
        yield port, proc, pids
    finally:
        load.stop_server(proc, log)
        lines = (Path(workdir) / "serve.log").read_text(errors="replace").splitlines()
        serious = [line for line in lines if "ERROR" in line or "Traceback" in line]
        if serious or proc.returncode not in (0, -15):
            print(f"server log (exit {proc.returncode}):\n  " + "\n  ".join((serious or lines)[-10:]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True, help="an existing arsearch index folder")
    parser.add_argument("--queries", help="queries.json: [[kind, query], ...] (default: 1,000 "
                                          "drawn from the bundled sample)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (2)")
    parser.add_argument("--threads", type=int, default=0, help="threads per worker (default: the server's)")
    parser.add_argument("--clients", default="8,32", help="client thread counts, one run each (8,32)")
    parser.add_argument("--client-procs", type=int, default=1,
                        help="client processes the connections are spread over (1)")
    parser.add_argument("--passes", type=int, default=2, help="passes over the query list per run (2)")
    parser.add_argument("--params", action="append",
                        help=f"extra query string, repeatable; '' is the default response "
                             f"(default: {FAST_PARAMS!r} and '')")
    parser.add_argument("--seconds", type=float, default=120, help="cap per run (120)")
    parser.add_argument("--fresh", action="store_true", help="a new server for each run")
    args = parser.parse_args(argv)
    args.sync = False  # load.start_server's baseline switch: always arsearch's own workers
    params_list = args.params if args.params is not None else [FAST_PARAMS, ""]
    clients = [int(c) for c in args.clients.split(",") if c.strip().isdigit() and int(c)]
    if (len(clients) != len(args.clients.split(","))
            or min(args.passes, args.workers, args.seconds, args.client_procs) <= 0):
        parser.error("--clients takes counts like 8,32; --passes, --workers, --seconds and "
                     "--client-procs must be > 0")
    index = Path(args.index).resolve()
    if not index.is_dir():
        sys.exit(f"--index {args.index}: no such folder")
    queries = read_queries(args.queries)
    runs = [(params, n) for params in params_list for n in clients]
    groups = [[r] for r in runs] if args.fresh else [runs]

    print(f"Python {platform.python_version()}, {platform.system()} {platform.machine()}, "
          f"{os.cpu_count()} CPUs; load average {load.load_average()} (the machine may be shared)")
    print(f"index {index}; {len(queries):,} queries ({args.queries or 'bundled sample'}); "
          f"{args.workers} workers, threads {args.threads or 'default'}; clients {clients}; "
          f"passes {args.passes}; cap {args.seconds:g} s per run; "
          f"{'a new server per run' if args.fresh else 'one server'}", flush=True)
    header = (f"{'params':<28}{'clients':>8}{'requests':>10}{'errors':>8}{'partial':>9}"
              f"{'q/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}"
              f"{'server CPU':>12}{'client CPU':>12}  per worker")
    workdir = tempfile.mkdtemp(prefix="arsearch-serve-bench-")
    errors = 0
    client_cpu = []  # share of one core per run
    try:
        for g, group in enumerate(groups):
            with served(args, index, workdir, params_list[0]) as (port, proc, pids):
                print(header)
                for params, n in group:
                    r = run(port, queries, n, args.passes, params, args.seconds, args.client_procs,
                            [proc.pid] + pids)
                    lat = r["latencies"] or [float("nan")]
                    errors += len(r["errors"])
                    done = max(1, len(r["latencies"]) + len(r["errors"]))
                    print(f"{params or '(default)':<28}{n:>8}{len(r['latencies']) + len(r['errors']):>10,}"
                          f"{len(r['errors']):>8}{r['partial']:>9}{len(r['latencies']) / r['wall']:>8.0f}"
                          f"{statistics.median(lat):>9.1f}{query_bench.percentile(lat, 95):>9.1f}"
                          f"{query_bench.percentile(lat, 99):>9.1f}{max(lat):>9.1f}"
                          f"{r['server_cpu'] / done * 1000:>9.2f} ms{r['client_cpu'] / done * 1000:>9.3f} ms"
                          f"  {'+'.join(map(str, r['spread']))}",
                          flush=True)
                    client_cpu.append(r["client_cpu"] / r["wall"])
                    for s in r["errors"][:3]:
                        print(f"  error: {s}")
                now = load.children(proc.pid)
                if now != pids:
                    print(f"workers replaced during the runs (killed or crashed): "
                          f"{sorted(set(now) ^ set(pids))}")
                    errors += 1
                if g == len(groups) - 1:
                    total = report_memory(proc, now)
                    arq, whole = sizes(index)
                    print(f"PSS sum, master + workers: {total:,.0f} MB: target < {TARGET_PSS_MB:.0f} MB: "
                          f"{'met' if total < TARGET_PSS_MB else 'not met'}")
                    print(f"index on disk: {whole / 2**20:,.1f} MB, of which .arq files {arq / 2**20:,.1f} MB")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if client_cpu:
        print(f"the client processes used {min(client_cpu):.1%} to {max(client_cpu):.1%} of one core "
              f"during the runs (the server's CPU and theirs are per request above)")
    print(f"load average at the end: {load.load_average()}")
    return 1 if errors else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("interrupted (the server was stopped)")
