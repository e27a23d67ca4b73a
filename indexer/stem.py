"""Larkey's light10 stemmer, exactly as Lucene's ArabicStemmer applies it.

Input is a NORMALIZED word (ة already folded to ه, ى to ي), which is why the
teh marbuta suffixes never match here although they are listed, as in Lucene.
"""

from functools import lru_cache

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


@lru_cache(maxsize=1 << 18)
def stem(word: str) -> str:
    """Light stem of a normalized word; cached since word frequencies are Zipfian."""
    return _strip_suffixes(_strip_prefix(word))
