"""`arsearch index`, `delete` and `stats` as a user runs them: real processes, real files."""

import json

from whoosh.qparser import QueryParser

from indexer import store
from tests.conftest import run_arsearch, write_jsonl

ARTICLE = {
    "id": "dz-1",
    "title": "اجتماع أمني بين الجزائر وفرنسا",
    "text": "طلبت فرنسا من الجزائر عقد لقاءات أمنية على أعلى مستوى.",
    "url": "https://example.org/dz-1",
    "date": "2015-01-24",
    "source": "news",
    "tags": ["الجزائر", "فرنسا"],
}
HADITH = {
    "id": "h-1",
    "title": "باب العلم",
    "text": "قَالَ رَسُولُ اللَّهِ صلى الله عليه وسلم طَلَبُ الْعِلْمِ فَرِيضَةٌ",
    "source": "hadith",
    "tags": "علم, فريضة",
}


def stats(index):
    result = run_arsearch("stats", "--index", index, "--json", check=True)
    return json.loads(result.stdout)


def ids_matching(index, word, field="text"):
    ix = store.open_index(index)
    with ix.searcher() as s:
        hits = s.search(QueryParser(field, ix.schema).parse(word), limit=None)
        return sorted(h["id"] for h in hits)


def test_index_jsonl_then_stats(tmp_path):
    data = write_jsonl(tmp_path / "docs.jsonl", [ARTICLE, HADITH])
    result = run_arsearch("index", "--index", tmp_path / "ix", data)
    assert result.returncode == 0, result.stderr
    assert "added 2, replaced 0, deleted 0, skipped 0" in result.stderr
    info = stats(tmp_path / "ix")
    assert info["documents"] == 2
    assert info["analysis_version"] == store.ANALYSIS_VERSION
    assert info["terms"]["text"] > 5 and info["terms"]["text_exact"] > 5
    assert info["size_bytes"] > 0 and info["last_commit"]
    # Undiacritized, without the article: finds the vocalized hadith.
    assert ids_matching(tmp_path / "ix", "علم") == ["h-1"]
    text = run_arsearch("stats", "--index", tmp_path / "ix", check=True).stdout
    assert "documents:        2" in text and "text_exact" in text


def test_stored_fields_dates_and_tags(tmp_path):
    data = write_jsonl(tmp_path / "docs.jsonl", [ARTICLE, HADITH])
    run_arsearch("index", "--index", tmp_path / "ix", data, check=True)
    ix = store.open_index(tmp_path / "ix")
    with ix.searcher() as s:
        doc = s.document(id="dz-1")
        assert doc["url"] == "https://example.org/dz-1"
        assert doc["date"].isoformat().startswith("2015-01-24")
        assert doc["source"] == "news"
        assert doc["tags"].split(",") == ["الجزائر", "فرنسا"]
        assert s.document(id="h-1")["tags"].split(",") == ["علم", "فريضة"]


def test_csv_folder_and_stdin_inputs(tmp_path):
    csv_path = tmp_path / "docs.csv"
    csv_path.write_text(
        "\ufeffid,title,text,source\n"  # with a byte order mark
        'c-1,عنوان,"نص عربي\nعلى سطرين",csv\n', encoding="utf-8"
    )
    folder = tmp_path / "notes"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.md").write_text("# المدرسة\nذهب الولد إلى المدرسة", encoding="utf-8")
    (folder / "b.txt").write_text("الكتاب\nقرأت الكتاب", encoding="utf-8")
    (folder / "ignored.bin").write_bytes(b"\x00\x01")
    stdin = json.dumps({"id": "s-1", "title": "من المدخل", "text": "نص من المدخل القياسي"}, ensure_ascii=False)
    result = run_arsearch("index", "--index", tmp_path / "ix", csv_path, folder, "-", stdin=stdin + "\n")
    assert result.returncode == 0, result.stderr
    ix = store.open_index(tmp_path / "ix")
    with ix.searcher() as s:
        assert sorted(d["id"] for d in s.documents()) == ["b.txt", "c-1", "s-1", "sub/a.md"]
        assert s.document(id="sub/a.md")["title"] == "المدرسة"
        assert s.document(id="c-1")["text"] == "نص عربي\nعلى سطرين"


def test_bad_records_are_reported_with_file_and_line_and_skipped(tmp_path):
    good = json.dumps(ARTICLE, ensure_ascii=False).encode()
    lines = [
        good,
        b"{not json",
        "\u0627".encode() + b"\xff\xfe",  # invalid UTF-8
        json.dumps({"id": "x", "title": "t"}).encode(),  # no text
        json.dumps({"id": "y", "text": "نص", "date": "24/01/2015"}).encode(),
        json.dumps({"id": 7.5, "text": "نص"}).encode(),  # id is not a string (an integer would do)
        json.dumps(HADITH, ensure_ascii=False).encode(),
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    csv_path = tmp_path / "rows.csv"
    csv_path.write_text("id,title,text\nr-1,عنوان,نص\nr-2,ناقص\n", encoding="utf-8")
    result = run_arsearch("index", "--index", tmp_path / "ix", path, csv_path)
    assert result.returncode == 0, result.stderr
    err = result.stderr
    assert f"{path}:2: invalid JSON" in err
    assert f"{path}:3: invalid UTF-8" in err
    assert f"{path}:4: missing text" in err
    assert f"{path}:5: bad date '24/01/2015'" in err
    assert f"{path}:6: id must be a string" in err
    assert f"{csv_path}:3: expected 3 fields, found 2" in err
    assert "added 3, replaced 0, deleted 0, skipped 6" in err
    assert stats(tmp_path / "ix")["documents"] == 3


def test_strict_mode_commits_nothing(tmp_path):
    index = tmp_path / "ix"
    run_arsearch("index", "--index", index, write_jsonl(tmp_path / "a.jsonl", [ARTICLE]), check=True)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(HADITH, ensure_ascii=False) + "\n{oops\n", encoding="utf-8")
    result = run_arsearch("index", "--strict", "--index", index, bad)
    assert result.returncode == 1
    assert f"{bad}:2: invalid JSON" in result.stderr
    assert "nothing was committed" in result.stderr
    assert ids_matching(index, "علم") == []
    assert stats(index)["documents"] == 1


def test_missing_id_gets_a_stable_id_and_a_warning(tmp_path):
    record = {"title": "بلا معرف", "text": "نص بلا معرف"}
    path = write_jsonl(tmp_path / "a.jsonl", [record])
    first = run_arsearch("index", "--index", tmp_path / "ix", path, check=True)
    assert f"{path}:1: warning: no id; using sha1-" in first.stderr
    second = run_arsearch("index", "--index", tmp_path / "ix", path, check=True)
    assert "added 0, replaced 1" in second.stderr
    assert stats(tmp_path / "ix")["documents"] == 1


def test_replace_by_id_delete_and_deletion_records(tmp_path):
    index = tmp_path / "ix"
    run_arsearch("index", "--index", index, write_jsonl(tmp_path / "a.jsonl", [ARTICLE, HADITH]), check=True)
    changed = dict(ARTICLE, text="خبر جديد عن الاقتصاد")
    result = run_arsearch("index", "--index", index, write_jsonl(tmp_path / "b.jsonl", [changed]), check=True)
    assert "added 0, replaced 1" in result.stderr
    assert ids_matching(index, "اقتصاد") == ["dz-1"]
    assert ids_matching(index, "لقاءات") == []
    # A deletion record removes a document; the delete command removes by id.
    deletion = write_jsonl(tmp_path / "c.jsonl", [{"id": "h-1", "deleted": True}])
    result = run_arsearch("index", "--index", index, deletion, check=True)
    assert "deleted 1" in result.stderr
    assert stats(index)["documents"] == 1
    result = run_arsearch("delete", "--index", index, "dz-1", "nope")
    assert result.returncode == 0
    assert "nope: not in the index" in result.stderr and "deleted 1, not found 1" in result.stderr
    assert stats(index)["documents"] == 0
    assert run_arsearch("delete", "--strict", "--index", index, "nope").returncode == 1


def test_same_id_twice_in_one_run_keeps_the_last(tmp_path):
    records = [ARTICLE, dict(ARTICLE, text="النسخة الأخيرة من الخبر")]
    for jobs in ("1", "2"):
        index = tmp_path / f"ix{jobs}"
        result = run_arsearch("index", "--jobs", jobs, "--index", index, write_jsonl(tmp_path / "a.jsonl", records))
        assert "added 1, replaced 1" in result.stderr
        assert stats(index)["documents"] == 1
        assert ids_matching(index, "الأخيرة") == ["dz-1"]


def test_rebuild_swaps_in_a_complete_index(tmp_path):
    index = tmp_path / "ix"
    run_arsearch("index", "--index", index, write_jsonl(tmp_path / "a.jsonl", [ARTICLE, HADITH]), check=True)
    old_generation = store.live_path(index)
    reader = store.open_index(index).searcher()  # a reader holding the old generation
    result = run_arsearch("index", "--rebuild", "--index", index, write_jsonl(tmp_path / "b.jsonl", [HADITH]))
    assert result.returncode == 0, result.stderr
    assert store.live_path(index) != old_generation
    assert stats(index)["documents"] == 1
    assert reader.doc_count() == 2  # the old generation is still readable
    reader.close()
    # A failed rebuild (strict, bad record) leaves the live index untouched.
    live = store.live_path(index)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{broken\n", encoding="utf-8")
    assert run_arsearch("index", "--rebuild", "--strict", "--index", index, bad).returncode == 1
    assert store.live_path(index) == live and stats(index)["documents"] == 1


def test_worker_that_dies_fails_the_run_and_commits_nothing(tmp_path):
    index = tmp_path / "ix"
    run_arsearch("index", "--index", index, write_jsonl(tmp_path / "a.jsonl", [ARTICLE]), check=True)
    records = [dict(HADITH, id=f"h-{i}") for i in range(200)]
    path = write_jsonl(tmp_path / "many.jsonl", records)
    result = run_arsearch(
        "index", "--jobs", "2", "--index", index, path, env={"ARSEARCH_TEST_CRASH_ON_ID": "h-77"}
    )
    assert result.returncode == 1
    assert "worker" in result.stderr and "died" in result.stderr
    assert "nothing" in result.stderr and "committed" in result.stderr
    assert stats(index)["documents"] == 1
    # Without the fault every record arrives: the count is checked, not assumed.
    result = run_arsearch("index", "--jobs", "2", "--index", index, path, check=True)
    assert "added 200" in result.stderr
    assert stats(index)["documents"] == 201


def test_index_from_another_analysis_version_asks_for_rebuild(tmp_path):
    index = tmp_path / "ix"
    run_arsearch("index", "--index", index, write_jsonl(tmp_path / "a.jsonl", [ARTICLE]), check=True)
    meta_path = store.live_path(index) / store.META_NAME
    meta = json.loads(meta_path.read_text())
    meta["analysis_version"] = 0
    meta_path.write_text(json.dumps(meta))
    for args in (("stats", "--index", index), ("index", "--index", index, tmp_path / "a.jsonl")):
        result = run_arsearch(*args)
        assert result.returncode == 1
        assert "analysis version 0" in result.stderr
        assert f"arsearch index --rebuild --index {index}" in result.stderr
        assert "Traceback" not in result.stderr
    result = run_arsearch("index", "--rebuild", "--index", index, tmp_path / "a.jsonl")
    assert result.returncode == 0, result.stderr
    assert stats(index)["analysis_version"] == store.ANALYSIS_VERSION


def test_unpicklable_schema_asks_for_rebuild(tmp_path):
    # An index whose pickled schema names a class this arsearch doesn't have.
    ghost = tmp_path / "ghostlib"
    ghost.mkdir()
    (ghost / "ghost_fields.py").write_text(
        "from whoosh.fields import TEXT\nclass GhostText(TEXT):\n    pass\n"
    )
    index = tmp_path / "ix"
    script = (
        "import sys; sys.path.insert(0, %r)\n"
        "from ghost_fields import GhostText\n"
        "from whoosh import index\nfrom whoosh.fields import Schema, ID\n"
        "from indexer import store\n"
        "gen, _ = store.create_generation(%r, Schema(id=ID(stored=True), text=GhostText()))\n"
        "store.publish(%r, gen)\n"
    ) % (str(ghost), str(index), str(index))
    import subprocess, sys
    subprocess.run([sys.executable, "-c", script], check=True)
    result = run_arsearch("stats", "--index", index)
    assert result.returncode == 1
    assert "cannot be read by this arsearch" in result.stderr
    assert "--rebuild" in result.stderr and "Traceback" not in result.stderr


def test_missing_index_and_missing_input(tmp_path):
    result = run_arsearch("stats", "--index", tmp_path / "nothing")
    assert result.returncode == 1 and "no index at" in result.stderr
    result = run_arsearch("index", "--index", tmp_path / "ix", tmp_path / "nope.jsonl")
    assert result.returncode == 2
    assert f"{tmp_path / 'nope.jsonl'}: no such file or folder" in result.stderr
    assert not (tmp_path / "ix").exists()  # nothing created


def test_plain_progress_lines_when_not_a_terminal(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [dict(HADITH, id=f"h-{i}") for i in range(50)])
    result = run_arsearch(
        "index", "--index", tmp_path / "ix", path, env={"ARSEARCH_PROGRESS_SECONDS": "0"}
    )
    assert "indexing: " in result.stderr and "records/s" in result.stderr
    quiet = run_arsearch("index", "--quiet", "--index", tmp_path / "ix2", path)
    assert quiet.stderr == ""
