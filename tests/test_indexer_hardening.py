"""No input, typo or crash may wipe the index: the indexer's fault tests.

Each test reproduces a defect found by a hostile pass (a typo that published
an empty index, a record that aborted the run, a worker death that hung the
parent, a damaged file served silently) with real processes and files.
"""

import gzip
import json
import os
import signal
import subprocess

import pytest

from indexer import store
from indexer.ids import MAX_ID_CHARS
from tests.conftest import arsearch_command, run_arsearch, sample_records, write_jsonl

ARTICLE = {"id": "dz-1", "title": "اجتماع أمني", "text": "طلبت فرنسا من الجزائر عقد لقاءات أمنية."}
HADITH = {"id": "h-1", "title": "باب العلم", "text": "قَالَ رَسُولُ اللَّهِ طَلَبُ الْعِلْمِ فَرِيضَةٌ"}


def documents(index):
    ix = store.open_index(index)
    with ix.searcher() as s:
        return sorted(d["id"] for d in s.documents())


def generations(index):
    return sorted(p.name for p in index.glob("gen-*"))


@pytest.fixture()
def index(small_index):
    return small_index


# -- 1. a typo never wipes the index


def test_missing_input_on_rebuild_is_an_error_and_the_index_is_untouched(index, tmp_path):
    before_ids, before_gens = documents(index), generations(index)
    result = run_arsearch("index", "--rebuild", "--index", index, tmp_path / "typo.jsonl")
    assert result.returncode == 2
    assert "typo.jsonl: no such file or folder" in result.stderr
    assert "nothing was read or written" in result.stderr
    assert documents(index) == before_ids and generations(index) == before_gens


def test_every_bad_input_is_named_before_anything_is_written(index, tmp_path):
    good = write_jsonl(tmp_path / "good.jsonl", [ARTICLE])
    notes = tmp_path / "notes.txt"
    notes.write_text("نص عادي", encoding="utf-8")
    empty_folder = tmp_path / "empty"
    empty_folder.mkdir()
    result = run_arsearch("index", "--index", index, good, notes, empty_folder, tmp_path / "gone.csv")
    assert result.returncode == 2
    err = result.stderr
    assert "notes.txt: unsupported input type" in err and "give the folder that holds them" in err
    assert "empty: no .txt or .md files in this folder" in err
    assert "gone.csv: no such file or folder" in err
    assert "dz-1" not in documents(index)  # the good input was not indexed either


def test_a_rebuild_that_accepted_nothing_is_not_published_without_allow_empty(index, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    live = store.live_path(index)
    result = run_arsearch("index", "--rebuild", "--index", index, empty)
    assert result.returncode == 1
    assert "accepted 0 documents" in result.stderr and "--allow-empty" in result.stderr
    assert store.live_path(index) == live and len(documents(index)) == 20
    result = run_arsearch("index", "--rebuild", "--allow-empty", "--index", index, empty)
    assert result.returncode == 0, result.stderr
    assert documents(index) == []


def test_a_run_where_every_record_was_bad_fails_and_commits_nothing(index, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x"}\n{oops\n', encoding="utf-8")
    for extra in ((), ("--rebuild",)):
        result = run_arsearch("index", *extra, "--index", index, bad)
        assert result.returncode == 1
        assert "every record was bad (2 skipped" in result.stderr
        assert len(documents(index)) == 20


def test_gzip_inputs_and_a_forced_format(tmp_path):
    with gzip.open(tmp_path / "news.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write(json.dumps(ARTICLE, ensure_ascii=False) + "\n")
    with gzip.open(tmp_path / "rows.csv.gz", "wt", encoding="utf-8") as f:
        f.write("id,title,text\nc-1,عنوان,نص من ملف مضغوط\n")
    export = tmp_path / "export.dat"  # JSON Lines under another name
    export.write_text(json.dumps(HADITH, ensure_ascii=False) + "\n", encoding="utf-8")
    index = tmp_path / "ix"
    result = run_arsearch("index", "--index", index, tmp_path / "news.jsonl.gz", tmp_path / "rows.csv.gz")
    assert result.returncode == 0, result.stderr
    assert run_arsearch("index", "--index", index, export).returncode == 2
    result = run_arsearch("index", "--format", "jsonl", "--index", index, export)
    assert result.returncode == 0, result.stderr
    assert documents(index) == ["c-1", "dz-1", "h-1"]


# -- 2, 3, 4: one record never aborts the run; text, size and id rules


def test_records_that_cannot_be_encoded_are_reported_with_file_and_line(tmp_path):
    path = tmp_path / "mixed.jsonl"
    lines = [
        '{"id": "s1", "text": "\\ud800 كلمة"}',  # a JSON-escaped lone surrogate
        '{"id": "s2", "title": "\\udfff", "text": "نص"}',
        '{"id": "s3", "text": "نص", "tags": ["\\ud83d"]}',
        '{"id": "s4", "text": "نص", "source": "\\udc00"}',
        '{"id": "\\ud800", "text": "نص"}',
        '{"id": "ok", "text": "نص \\ud83d\\ude00 سليم"}',  # a proper surrogate PAIR is an emoji
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run_arsearch("index", "--index", tmp_path / "ix", path)
    assert result.returncode == 0, result.stderr
    for line, name in ((1, "text"), (2, "title"), (3, "a tag"), (4, "source")):
        assert f"{path}:{line}: {name} contains a lone surrogate" in result.stderr
    assert f"{path}:5: id contains a forbidden character U+D800" in result.stderr
    assert documents(tmp_path / "ix") == ["ok"]


def test_deeply_nested_json_and_huge_csv_cells_are_bad_records_not_crashes(tmp_path):
    path = tmp_path / "deep.jsonl"
    deep = '{"id": "deep", "text": "نص", "extra": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path.write_text(deep + "\n" + json.dumps(ARTICLE, ensure_ascii=False) + "\n", encoding="utf-8")
    long_cell = "كلمة " * 40_000  # 200,000 characters: over the csv module's default limit
    rows = tmp_path / "rows.csv"
    rows.write_text(f'id,text\nlong,"{long_cell}"\nhuge,"{"حرف" * 600_000}"\nafter,نص بعد\n', encoding="utf-8")
    result = run_arsearch("index", "--max-record-mb", "1", "--index", tmp_path / "ix", path, rows)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{path}:1: invalid JSON: nested too deeply" in result.stderr
    assert f"{rows}:3: invalid CSV: a field is over the" in result.stderr
    # A long but allowed cell is indexed; the rows after the huge one still are.
    assert documents(tmp_path / "ix") == ["after", "dz-1", "long"]


def test_records_over_the_size_limit_are_skipped_with_a_clear_report(tmp_path):
    big = dict(HADITH, id="big", text="كلمة " * 5_000)  # about 45 KB
    path = write_jsonl(tmp_path / "docs.jsonl", [big, ARTICLE])
    line_bytes = len(path.read_bytes().split(b"\n")[0]) + 1
    folder = tmp_path / "letters"
    folder.mkdir()
    (folder / "long.txt").write_text("عنوان\n" + "كلمة " * 5_000, encoding="utf-8")
    (folder / "short.txt").write_text("عنوان\nرسالة قصيرة", encoding="utf-8")
    result = run_arsearch("index", "--max-record-mb", "0.02", "--index", tmp_path / "ix", path, folder)
    assert result.returncode == 0, result.stderr
    assert f"{path}:1: record is {line_bytes:,} bytes, over the 20,971 bytes limit" in result.stderr
    assert "limit per record (--max-record-mb raises it)" in result.stderr
    assert f"{folder / 'long.txt'}:1: record is" in result.stderr
    assert documents(tmp_path / "ix") == ["dz-1", "short.txt"]
    # The default limit (10 MiB) takes it.
    run_arsearch("index", "--index", tmp_path / "ix", path, check=True)
    assert "big" in documents(tmp_path / "ix")


@pytest.mark.parametrize("bad_id, reason", [
    ("", "id is empty"),
    (" ", "has leading or trailing white space"),
    (" dz-1", "has leading or trailing white space"),
    ("a\nb", "forbidden character U+000A"),
    ("a\u0000b", "forbidden character U+0000"),
    ("a\u2028b", "forbidden character U+2028"),  # LINE SEPARATOR
    ("x" * 100_000, f"id is too long: 100000 characters, at most {MAX_ID_CHARS}"),
    (True, "id must be a string, got bool"),
    ([1], "id must be a string, got list"),
])
def test_id_rules_apply_to_documents_and_deletions(tmp_path, bad_id, reason):
    path = write_jsonl(tmp_path / "docs.jsonl", [
        dict(ARTICLE, id=bad_id), {"id": bad_id, "deleted": True}, HADITH,
    ])
    result = run_arsearch("index", "--index", tmp_path / "ix", path)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    for number in (1, 2):
        line = next(l for l in lines if l.startswith(f"{path}:{number}: "))
        assert reason in line
    assert documents(tmp_path / "ix") == ["h-1"]


def test_id_rules_integer_ids_and_the_delete_command(tmp_path):
    path = write_jsonl(tmp_path / "docs.jsonl", [dict(ARTICLE, id=17), dict(HADITH, id="العلم/١")])
    run_arsearch("index", "--index", tmp_path / "ix", path, check=True)
    assert documents(tmp_path / "ix") == ["17", "العلم/١"]
    result = run_arsearch("delete", "--index", tmp_path / "ix", "17", "bad\tid")
    assert result.returncode == 2
    assert "forbidden character U+0009" in result.stderr and "nothing was deleted" in result.stderr
    assert documents(tmp_path / "ix") == ["17", "العلم/١"]
    run_arsearch("delete", "--index", tmp_path / "ix", "17", check=True)
    assert documents(tmp_path / "ix") == ["العلم/١"]


# -- 5. process handling


@pytest.fixture()
def big(big_input):
    return big_input[0]


def test_a_dead_worker_fails_the_run_at_once_instead_of_hanging(index, big):
    first_id = sample_records()[3]["id"] + "#0"
    # Before the fix the parent reported the death, then hung forever in
    # multiprocessing's queue flush: subprocess.run's timeout would fire.
    result = run_arsearch("index", "--jobs", "2", "--index", index, big,
                          env={"ARSEARCH_TEST_CRASH_ON_ID": first_id}, timeout=90)
    assert result.returncode == 1
    assert "died" in result.stderr and "nothing from this run was committed" in result.stderr
    assert len(documents(index)) == 20


def _ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def start(args, ignore_sigint=False):
    env = dict(os.environ, ARSEARCH_PROGRESS_SECONDS="0")
    return subprocess.Popen(
        arsearch_command() + [str(a) for a in args], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, encoding="utf-8", env=env,
        preexec_fn=_ignore_sigint if ignore_sigint else None,
    )


def wait_for_progress(proc):
    for line in proc.stderr:
        if line.startswith("indexing:"):
            return
    raise AssertionError("the indexer ended before reporting progress")


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_works_when_started_with_sigint_ignored(index, big, jobs):
    # As `arsearch index ... &` from a shell: SIGINT arrives ignored.
    proc = start(["index", "--jobs", jobs, "--index", index, big], ignore_sigint=True)
    wait_for_progress(proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert len(documents(index)) == 20


def test_a_killed_rebuild_leaves_a_partial_generation_that_the_next_run_removes(index, big, tmp_path):
    live = store.live_path(index)
    proc = start(["index", "--rebuild", "--jobs", "1", "--index", index, big])
    wait_for_progress(proc)
    proc.kill()
    proc.communicate(timeout=60)
    partial = [g for g in generations(index) if index / g != live]
    assert partial, "the killed rebuild left no partial generation to clean"
    result = run_arsearch("index", "--index", index, write_jsonl(tmp_path / "one.jsonl", [ARTICLE]))
    assert result.returncode == 0, result.stderr
    assert f"removed {index / partial[0]}, left by an interrupted rebuild" in result.stderr
    assert generations(index) == [live.name]
    assert len(documents(index)) == 21


def test_a_rebuild_keeps_the_previous_generation_for_open_readers_only(index, tmp_path):
    first = store.live_path(index)
    data = write_jsonl(tmp_path / "one.jsonl", [ARTICLE])
    run_arsearch("index", "--rebuild", "--index", index, data, check=True)
    second = store.live_path(index)
    assert generations(index) == sorted([first.name, second.name])
    run_arsearch("index", "--rebuild", "--index", index, data, check=True)
    third = store.live_path(index)
    assert generations(index) == sorted([second.name, third.name])
    assert (index / "previous").resolve() == second


def test_index_given_a_file_and_commands_on_a_missing_index_create_nothing(tmp_path):
    a_file = write_jsonl(tmp_path / "docs.jsonl", [ARTICLE])
    before = a_file.read_bytes()
    result = run_arsearch("index", "--index", a_file, a_file)
    assert result.returncode == 2
    assert f"{a_file} is a file, not an index directory" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 2 and "Traceback" not in result.stderr
    assert a_file.read_bytes() == before
    missing = tmp_path / "nothing"
    for args in (("delete", "--index", missing, "x"), ("stats", "--index", missing),
                 ("check", "--index", missing)):
        result = run_arsearch(*args)
        assert result.returncode == 1
        assert result.stderr.strip() == (
            f"arsearch: no index at {missing}: create one with arsearch index --index {missing} INPUT..."
        )
        assert not missing.exists()


def test_a_non_empty_folder_that_is_not_an_index_is_refused(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "letter.txt").write_text("رسالة", encoding="utf-8")
    result = run_arsearch("index", "--index", home, write_jsonl(tmp_path / "a.jsonl", [ARTICLE]))
    assert result.returncode == 2
    assert "is not empty and holds no arsearch index (found letter.txt)" in result.stderr
    assert sorted(p.name for p in home.iterdir()) == ["letter.txt"]


# -- 7. silent corruption


def segment_file(index):
    return max(store.live_path(index).glob("*.seg"), key=lambda p: p.stat().st_size)


def test_every_commit_records_checksums_of_its_files(index, tmp_path):
    generation = store.live_path(index)
    recorded = store.read_checksums(generation)
    assert recorded["toc"] == store.latest_toc(generation)
    assert sorted(recorded["files"]) == sorted(store.referenced_files(generation))
    run_arsearch("index", "--index", index, write_jsonl(tmp_path / "one.jsonl", [ARTICLE]), check=True)
    run_arsearch("delete", "--index", index, "base-3", check=True)
    recorded = store.read_checksums(generation)
    assert recorded["toc"] == store.latest_toc(generation)
    result = run_arsearch("check", "--index", index)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"ok: {len(recorded['files'])} files match their checksums" in result.stdout


def test_check_names_a_file_with_flipped_bytes(index):
    path = segment_file(index)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    for i in range(middle, middle + 400):
        data[i] ^= 0x55
    path.write_bytes(bytes(data))
    result = run_arsearch("check", "--index", index)
    assert result.returncode == 1
    assert f"DAMAGED {path}: contents differ from the recorded SHA-256" in result.stdout


def test_a_truncated_segment_is_refused_in_one_line_naming_the_file(index):
    path = segment_file(index)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    result = run_arsearch("check", "--index", index)
    assert result.returncode == 1
    assert f"DAMAGED {path}: {size // 2:,} bytes, the commit wrote {size:,}" in result.stdout
    for args in (("stats", "--index", index), ("serve", "--index", index, "--port", "9"),
                 ("search", "--index", index, "العلم")):
        result = run_arsearch(*args, timeout=60)
        assert result.returncode == 1, args
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert f"{path} is {size // 2:,} bytes" in lines[0]
        assert f"arsearch check --index {index}" in lines[0]


def test_deep_check_finds_damage_in_an_index_without_checksums(index):
    generation = store.live_path(index)
    (generation / store.CHECKSUMS_NAME).unlink()  # as an index from an older arsearch
    assert run_arsearch("check", "--index", index).returncode == 0
    path = segment_file(index)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    result = run_arsearch("check", "--index", index)
    assert result.returncode == 1
    assert f"UNREADABLE segment {path.stem}" in result.stdout and path.name in result.stdout


def test_toc_generations_compare_as_numbers(tmp_path):
    for n in (9, 10):
        (tmp_path / f"_MAIN_{n}.toc").write_bytes(b"")
    assert store.latest_toc(tmp_path) == "_MAIN_10.toc"
    assert store.toc_generation("_MAIN_10.toc") > store.toc_generation("_MAIN_9.toc")
