"""`arsearch analyze` as a user runs it: a real process."""

import json
import shutil
import subprocess
import sys



def run(*args, stdin=None):
    exe = shutil.which("arsearch")
    cmd = [exe] if exe else [sys.executable, "-m", "search_app.cli"]
    return subprocess.run(
        cmd + list(args), input=stdin, capture_output=True, text=True, encoding="utf-8", timeout=60
    )


def test_analyze_prints_each_token():
    result = run("analyze", "فِي الْكِتَابِ")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    assert "فِي" in lines[0] and "(stopword)" in lines[0]
    assert "الْكِتَابِ" in lines[1] and "exact=الكتاب" in lines[1] and "stem=كتاب" in lines[1]
    assert "4-14" in lines[1]  # code points: فِي is 3, a space, then 10


def test_analyze_json():
    result = run("analyze", "--json", "فِي الْكِتَابِ")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert rows == [
        {"text": "فِي", "start": 0, "end": 3, "exact": "في", "stem": None},
        {"text": "الْكِتَابِ", "start": 4, "end": 14, "exact": "الكتاب", "stem": "كتاب"},
    ]


def test_analyze_reads_standard_input():
    result = run("analyze", "--json", "-", stdin="أحمد")
    assert json.loads(result.stdout)[0]["exact"] == "احمد"


def test_analyze_without_text_is_a_usage_error():
    result = run("analyze")
    assert result.returncode == 2
    assert "TEXT" in result.stderr
