"""Interrupted and concurrent indexers, with real processes and signals."""

import os
import signal
import subprocess
import threading

import pytest

from indexer import store
from tests.conftest import arsearch_command, run_arsearch, write_jsonl


def start_indexing(index, path, jobs="1"):
    env = dict(os.environ, ARSEARCH_PROGRESS_SECONDS="0")
    return subprocess.Popen(
        arsearch_command() + ["index", "--jobs", jobs, "--index", str(index), str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8", env=env,
    )


def wait_until_indexing(proc):
    """Block until the indexer reports progress, i.e. it holds the lock and is writing.

    Then keep reading its stderr in the background, so a full pipe never
    stalls it; the lines end up in proc.lines.
    """
    line = proc.stderr.readline()
    while line and not line.startswith("indexing:"):
        line = proc.stderr.readline()
    assert line, "the indexer ended before reporting progress"
    proc.lines = []
    proc.reader = threading.Thread(target=lambda: proc.lines.extend(proc.stderr), daemon=True)
    proc.reader.start()


def finish(proc, timeout):
    proc.wait(timeout=timeout)
    proc.reader.join(timeout=timeout)  # stderr ends with the process: every line is in
    return "".join(proc.lines)


def doc_count(index):
    ix = store.open_index(index)
    with ix.searcher() as s:
        return s.doc_count()


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_leaves_the_committed_index_intact(small_index, big_input, jobs):
    proc = start_indexing(small_index, big_input[0], jobs)
    wait_until_indexing(proc)
    proc.send_signal(signal.SIGINT)
    err = finish(proc, 60)
    assert proc.returncode == 130
    assert "interrupted" in err and "nothing from this run was committed" in err
    assert doc_count(small_index) == 20


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_sigkill_leaves_the_committed_index_intact_and_unlocked(small_index, big_input, jobs):
    proc = start_indexing(small_index, big_input[0], jobs)
    wait_until_indexing(proc)
    proc.kill()
    finish(proc, 60)
    assert doc_count(small_index) == 20
    # The lock died with the process (and its workers): a new run goes ahead.
    more = write_jsonl(small_index.parent / "more.jsonl", [{"id": "after", "text": "نص بعد الانقطاع"}])
    result = run_arsearch("index", "--index", small_index, more, timeout=60)
    assert result.returncode == 0, result.stderr
    assert doc_count(small_index) == 21


def test_second_indexer_is_told_or_waits(small_index, big_input):
    path, n = big_input
    proc = start_indexing(small_index, path)
    wait_until_indexing(proc)
    more = write_jsonl(small_index.parent / "more.jsonl", [{"id": "later", "text": "نص لاحق"}])
    refused = run_arsearch("index", "--index", small_index, more)
    assert refused.returncode == 1
    assert f"another arsearch process (pid {proc.pid}" in refused.stderr
    assert "--wait" in refused.stderr
    waiting = run_arsearch("index", "--wait", "300", "--index", small_index, more, timeout=400)
    assert waiting.returncode == 0, waiting.stderr
    finish(proc, 300)
    assert proc.returncode == 0
    assert doc_count(small_index) == 20 + n + 1
