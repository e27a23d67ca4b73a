"""One SearchEngine shared by several threads while the index changes.

gunicorn's gthread workers serve several requests at once from one engine:
commits and a --rebuild swap must never close a view that a request still
reads, and a result computed on one generation must never be paged with
another generation's document numbers.
"""

import threading

from search_app.engine import SearchEngine
from tests.conftest import index_records

WORD = "الجزائر"
BASE = [{"id": f"base-{i}", "title": f"خبر {i}", "text": f"اجتماع في {WORD} عن التعاون والتجارة رقم {i}",
         "source": "news", "tags": ["الجزائر"]} for i in range(40)]
# Documents without the word, between the others: a hit read with another
# generation's document numbers would show one of them.
OTHERS = [{"id": f"other-{i}", "title": "رياضة", "text": f"مباراة كرة القدم رقم {i}"} for i in range(40)]
COMMITS = 8
PER_COMMIT = 5
REBUILT = [{"id": f"rebuilt-{i}", "title": "بعد إعادة البناء", "text": f"{WORD} من جديد {i}"} for i in range(7)]


def batch(k):
    return [{"id": f"c{k}-{i}", "title": "خبر جديد", "text": f"وصل وفد إلى {WORD} في الزيارة {k}"}
            for i in range(PER_COMMIT)]


def test_threads_search_during_commits_and_a_rebuild_swap(tmp_path):
    index = tmp_path / "ix"
    index_records(index, [d for pair in zip(BASE, OTHERS) for d in pair])
    engine = SearchEngine(index, warmup=0)
    # Every total a search may report: one per generation the index goes through.
    possible = {len(BASE) + k * PER_COMMIT for k in range(COMMITS + 1)} | {len(REBUILT)}
    errors, totals = [], []
    last_total = [None] * 4
    progress = threading.Condition()  # notified after every client's search
    stop = threading.Event()

    def client(n):
        page = 1 + n % 2
        while not stop.is_set():
            try:
                result = engine.search(WORD, limit=20, page=page)
                ids = [h["id"] for h in result["hits"]]
                assert len(ids) == len(set(ids)), f"duplicate ids on one page: {ids}"
                assert all("<mark>" in h["snippet"] for h in result["hits"]), ids
                totals.append(result["total"])
                # Every hit is a document of the generation that was searched.
                for doc_id in ids[:2]:
                    doc = engine.document(doc_id, q=WORD)
                    assert doc is None or doc["id"] == doc_id
                engine.suggest("الجز")
                engine.health()
                with progress:
                    last_total[n] = result["total"]
                    progress.notify_all()
            except Exception as exc:  # collected: the assertion below shows them all
                with progress:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    progress.notify_all()

    def wait_until_every_client_sees(total):
        # Each client has finished a search on the new generation.
        with progress:
            done = progress.wait_for(
                lambda: errors or all(seen == total for seen in last_total), timeout=60)
            assert not errors, errors
            assert done, f"clients still see {last_total}, expected {total}"

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    try:
        wait_until_every_client_sees(len(BASE))
        for k in range(1, COMMITS + 1):
            index_records(index, batch(k))
            wait_until_every_client_sees(len(BASE) + k * PER_COMMIT)
        index_records(index, REBUILT, rebuild=True)
        wait_until_every_client_sees(len(REBUILT))
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert errors == []
    assert set(totals) <= possible
    assert engine.search(WORD)["total"] == len(REBUILT)


def test_close_releases_the_index_files_and_a_later_request_reopens(tmp_path):
    index_records(tmp_path / "ix", [batch(0)[0]])
    engine = SearchEngine(tmp_path / "ix", warmup=0)
    first = engine.view()
    engine.close()
    assert first.reader.is_closed
    assert engine.search(batch(0)[0]["text"].split()[0])["total"] == 1
    engine.close()
