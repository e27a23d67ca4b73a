"""Larkey's light10 stemmer, exactly as Lucene's ArabicStemmer applies it,
with a stem-exclusion set as Lucene's ArabicAnalyzer has one.

Input is a NORMALIZED word (ة already folded to ه, ى to ي), which is why the
teh marbuta suffixes never match here although they are listed, as in Lucene.
Words in `indexer/data/stem_exclusions_ar.txt` (names and a few words whose
suffix-stripping merges them with another word: إنسان -> انس, the name أنس)
keep their letters once the prefixes are off.
"""

from functools import lru_cache
from importlib import resources

from indexer.normalize import normalize, words

STEM_EXCLUSIONS_RESOURCE = "stem_exclusions_ar.txt"

PREFIXES = ("ال", "وال", "بال", "كال", "فال", "لل", "و")
SUFFIXES = ("ها", "ان", "ات", "ون", "ين", "يه", "ية", "ه", "ة", "ي")


def _strip_prefix(word: str) -> str:
    stripped = _strip_one_prefix(word)
    if len(stripped) == len(word) - 1:
        # Deliberate deviation from Lucene, which stops after و: Larkey's
        # light10 removes و first and THEN an article, so وبالكتاب (and with
        # the book) stems to كتاب like الكتاب, instead of to بالكتاب. Rows of
        # Lucene's own tests are unaffected (tests/test_stem_and_stopwords.py).
        again = _strip_one_prefix(stripped)
        if again is not stripped and len(again) <= len(stripped) - 2:
            return again
    return stripped


def _strip_one_prefix(word: str) -> str:
    n = len(word)
    for prefix in PREFIXES:
        # و needs a word of 4 letters or more; longer prefixes leave >= 2.
        if len(prefix) == 1 and n < 4:
            continue
        if n < len(prefix) + 2:
            continue
        if word.startswith(prefix):
            return word[len(prefix):]
    return word


def _strip_suffixes(word: str) -> str:
    # Unlike prefixes, every suffix in turn is tried once, in list order.
    for suffix in SUFFIXES:
        if len(word) >= len(suffix) + 2 and word.endswith(suffix):
            word = word[: -len(suffix)]
    return word


@lru_cache(maxsize=1)
def stem_exclusions() -> frozenset:
    """The protected words, normalized (the data file is written naturally)."""
    text = resources.files("indexer.data").joinpath(STEM_EXCLUSIONS_RESOURCE).read_text("utf-8")
    found = set()
    for line in text.splitlines():
        found.update(words(normalize(line.split("#", 1)[0])))
    return frozenset(found)


# The accusative alef (tanween fath: كتاباً -> كتابا) is dropped from words
# of at least this many letters, unless the letter before it makes the
# alef part of a suffix light10 leaves alone or of the word: نا (ours),
# ها (hers), وا (verb plural: كتبوا), يا (سوريا, بريطانيا), اا.
ACCUSATIVE_ALEF = "\u0627"  # ARABIC LETTER ALEF
ACCUSATIVE_MIN_LETTERS = 5
NOT_BEFORE_ACCUSATIVE = frozenset("\u0646\u0647\u0648\u064a\u0627")  # NOON, HEH, WAW, YEH, ALEF


def _strip_accusative(word: str) -> str:
    if (len(word) >= ACCUSATIVE_MIN_LETTERS and word[-1] == ACCUSATIVE_ALEF
            and word[-2] not in NOT_BEFORE_ACCUSATIVE):
        return word[:-1]
    return word


@lru_cache(maxsize=1 << 18)
def stem(word: str) -> str:
    """Light stem of a normalized word; cached since word frequencies are Zipfian."""
    base = _strip_accusative(_strip_prefix(word))
    if base in stem_exclusions():
        return base
    return _strip_suffixes(base)
