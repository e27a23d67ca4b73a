"""`arsearch search` in the terminal, and the progress bar on a terminal."""

import json
import os
import pty
import subprocess

from tests.conftest import arsearch_command, run_arsearch, write_jsonl, index_records

DOCS = [
    {"id": "v1", "title": "باب العلم", "text": "قَرَأْتُ وَالْكِتَابِ فِي الْمَسْجِدِ", "source": "hadith"},
    {"id": "n1", "title": "خبر", "text": "صدر الكتاب الجديد في الجزائر", "source": "news"},
]


def test_search_prints_ranked_results_with_marks(tmp_path):
    index = tmp_path / "ix"
    index_records(index, DOCS)
    result = run_arsearch("search", "--index", index, "الكتاب", check=True)
    out = result.stdout
    assert out.startswith("2 results")
    # Not a terminal: matches are shown between guillemets, diacritics kept.
    assert "«وَالْكِتَابِ»" in out and "«الكتاب»" in out
    assert "[n1]" in out and "score" in out
    as_json = json.loads(run_arsearch("search", "--json", "--index", index, "الكتاب", check=True).stdout)
    assert as_json["total"] == 2 and {h["id"] for h in as_json["hits"]} == {"v1", "n1"}
    bad = run_arsearch("search", "--index", index, "الكتاب", "--limit", "500")
    assert bad.returncode == 1 and "limit must be between 1 and 100" in bad.stderr


def test_progress_bar_on_a_terminal(tmp_path):
    records = [dict(DOCS[0], id=f"d{i}") for i in range(300)]
    path = write_jsonl(tmp_path / "d.jsonl", records)
    main, child = pty.openpty()
    proc = subprocess.Popen(
        arsearch_command() + ["index", "--index", str(tmp_path / "ix"), str(path)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=child,
    )
    os.close(child)
    output = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        output += chunk
    proc.wait(timeout=60)
    os.close(main)
    text = output.decode("utf-8", "replace")
    assert proc.returncode == 0
    assert "indexing: 100%" in text  # tqdm's bar, with the input's size as total
    assert "added 300" in text
