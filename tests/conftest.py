import json
import os
import shutil
import subprocess
import sys
import threading
import time
from importlib import resources
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def sample_records():
    text = resources.files("indexer.data").joinpath("sample/documents.jsonl").read_text("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="session")
def sample():
    return sample_records()


def arsearch_command():
    exe = shutil.which("arsearch")
    if exe and Path(exe).parent == Path(sys.executable).parent:
        return [exe]
    return [sys.executable, "-m", "search_app.cli"]


def run_arsearch(*args, stdin=None, env=None, timeout=300, check=False):
    full_env = dict(os.environ)
    full_env.update(env or {})
    result = subprocess.run(
        arsearch_command() + [str(a) for a in args], input=stdin, capture_output=True,
        text=True, encoding="utf-8", timeout=timeout, env=full_env,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def write_jsonl(path, records):
    with open(path, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def index_records(index, records, **kwargs):
    """Index `records` into `index` in-process, quietly, through a JSON Lines file."""
    from indexer.build import build_index

    index = Path(index)
    index.parent.mkdir(parents=True, exist_ok=True)
    n = len(list(index.parent.glob(f"{index.name}-input-*.jsonl")))
    path = write_jsonl(index.parent / f"{index.name}-input-{n}.jsonl", records)
    return build_index(index, [str(path)], jobs=1, log=lambda line: None, **kwargs)


@pytest.fixture(scope="module")
def big_input(tmp_path_factory):
    """(path, count): ten copies of the sample (~8 MB), enough that indexing
    takes a few seconds and the workers' queues fill up."""
    folder = tmp_path_factory.mktemp("big")
    records = [dict(r, id=f"{r['id']}#{copy}") for copy in range(10) for r in sample_records()]
    return write_jsonl(folder / "big.jsonl", records), len(records)


@pytest.fixture()
def small_index(tmp_path):
    """A live index of 20 sample documents, built by the arsearch command."""
    index = tmp_path / "ix"
    records = [dict(r, id=f"base-{i}") for i, r in enumerate(sample_records()[:20])]
    run_arsearch("index", "--index", index, write_jsonl(tmp_path / "base.jsonl", records), check=True)
    return index


@pytest.fixture(scope="session", autouse=True)
def compiled_kernels(tmp_path_factory):
    """Compile the query path's kernels (search_app.kernels) before any test runs.

    numba compiles a kernel once per installation and per combination of
    array types; on a fresh clone that takes seconds, and a test whose
    request has a time limit would see a partial answer if it paid for it.
    A few searches without a time limit, over the sample and a long text
    (positions past 255 and 65,535 take other array types), pay it here.
    """
    from search_app.engine import SearchEngine

    index = tmp_path_factory.mktemp("kernels") / "ix"
    long_text = "قال رسول الله " + "والناس يشترون الخبز والتمر " * 14_000 + "رسول الله"
    index_records(index, sample_records() + [{"id": "long", "title": "نص طويل", "text": long_text}])
    engine = SearchEngine(index, time_limit=600, warmup=0)
    try:
        for q in ("الله", "رسول الله", '"رسول الله"', "الله -رسول", "قال رسول الله", "كتاب*"):
            for facets in (True, False):
                engine.search(q, facets=facets)
                engine.search(q, page=2, facets=facets, snippets=False)
    finally:
        engine.close()


def wait_for(condition, seconds, what, interval=0.05):
    """Poll `condition()` until it returns something true (returned), or fail
    after `seconds` saying `what` did not happen. Between polls the wait is
    on an Event, so a poll is never a blind sleep standing in for a result."""
    deadline = time.monotonic() + seconds
    pause = threading.Event()
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {seconds} s")
        pause.wait(interval)
