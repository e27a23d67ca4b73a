"""What every peer's child process measures the same way: query passes and memory.

Standard library only: bench/peer_lucene.py imports it from Lucene's own venv
(bench/.venv-lucene), where the project's packages are not installed.

Each engine answers the queries in a process of its own, so the memory
figures are that engine's: VmHWM (peak resident set since exec, see
bench/index.py's own_peak_mb) and VmRSS (resident now, after the passes).
"""

from __future__ import annotations

import json
import time


def memory_mb() -> dict:
    """{"hwm_mb", "rss_mb"} of this process, from /proc/self/status (Linux)."""
    found = {}
    with open("/proc/self/status") as f:
        for line in f:
            key = {"VmHWM:": "hwm_mb", "VmRSS:": "rss_mb"}.get(line.split(":")[0] + ":")
            if key:
                found[key] = int(line.split()[1]) / 1024  # kB
    return found


def time_passes(search, queries, describe) -> dict:
    """One untimed pass over `queries` (warm), then a timed pass in the same order.

    `search(q)` is what is timed: it returns whatever the engine gives back;
    `describe(result)` turns that into (total or None, top ids) outside the
    timing. Queries are (kind, text) pairs as bench/query.py draws them.
    """
    for _, q in queries:
        search(q)
    ms, totals, ids = [], [], []
    for _, q in queries:
        t0 = time.perf_counter()
        result = search(q)
        ms.append((time.perf_counter() - t0) * 1000)
        total, top = describe(result)
        totals.append(total)
        ids.append(list(top))
    return {"ms": ms, "totals": totals, "ids": ids}


def read_queries(path) -> list:
    with open(path, encoding="utf-8") as f:
        return [tuple(pair) for pair in json.load(f)]


def write_result(path, result: dict) -> None:
    """A child's answer goes to a file: a JVM or a library may print to stdout."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False)
