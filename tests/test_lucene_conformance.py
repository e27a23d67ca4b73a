"""Every row of Lucene's own Arabic analysis tests must pass (tests/data/README.md)."""

import csv
from pathlib import Path

import pytest

from indexer.analysis import analyze
from indexer.normalize import normalize
from indexer.stem import stem

VECTORS = Path(__file__).parent / "data" / "lucene_arabic_vectors.tsv"


def _rows():
    with VECTORS.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert len(rows) >= 50, "the vector file lost rows"
    return rows


ROWS = _rows()


@pytest.mark.parametrize(
    "row", ROWS, ids=[f"{r['test_class']}.{r['test_name']}:{r['input']}" for r in ROWS]
)
def test_lucene_vector(row):
    words = row["input"].split()
    expected = row["expected_tokens"].split()
    kind = row["kind"]
    if kind == "normalize":
        got = [normalize(w) for w in words]
    elif kind == "stem":
        if row["test_class"] == "TestArabicFilters":
            words = [normalize(w) for w in words]
        got = [stem(w) for w in words]
    elif kind == "analyzer":
        got = [t.stem for t in analyze(row["input"]) if t.stem is not None]
    else:
        pytest.fail(f"unknown kind {kind!r}")
    assert got == expected


def test_every_kind_is_covered():
    assert {r["kind"] for r in ROWS} == {"normalize", "stem", "analyzer"}
