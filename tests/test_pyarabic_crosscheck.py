"""Cross-check with pyarabic: our table must subsume its tashkeel stripping.

pyarabic's helpers disagree with their own docs (normalize_alef also turns ى
into ا; strip_tashkeel keeps U+0670 and the Qur'anic marks), so our
normalization is our own table; this test only checks that removing the
marks pyarabic knows first never changes what we index.
"""

from pyarabic import araby

from indexer.normalize import normalize, words
from indexer.tokenize import word_spans
from tests.conftest import sample_records


def test_pyarabic_tashkeel_removal_never_changes_our_result():
    checked = 0
    for record in sample_records()[:120]:
        text = record["text"]
        for start, end in word_spans(text):
            word = text[start:end]
            assert normalize(araby.strip_tashkeel(word)) == normalize(word), word
            checked += 1
    assert checked > 10_000


def test_pyarabic_normalize_alef_differs_from_our_rule():
    # The documented trap: pyarabic folds alef maksura to alef; we fold it to yeh (as Lucene).
    assert araby.normalize_alef("على") != "على"
    assert words(normalize("على")) == ["علي"]
