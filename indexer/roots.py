"""The recall stream's words: ISRI roots, with a lone ب or ل proclitic also taken off.

light10 (indexer.stem) keeps words apart that share only a root (مدرسة and
مدارس, كتاب and يكتبون, خرج and استخراج): good for precision, and the main
stemmed fields use it. A third, low-boost field per text indexes roots so
that a question and a passage that share only a root still meet (issue
#9's recall stream; `schema.FIELD_BOOSTS` keeps it far below the other
fields, so it finds more than it ranks).

Roots come from the ISRI stemmer (Taghva, Elkhoury & Coombs 2005) as nltk
ships it (Apache-2.0), vendored in `indexer/isri.py` (importing nltk costs a
second and 75 MB per process, see there). Measured against Snowball Arabic
as the stream on the dev sets (bench/relevance.py): ISRI found more (hadith
Recall@100 0.130 against 0.111) and ranked better (news-title MAP@10 0.835
against 0.820).

light10 leaves a lone ب or ل proclitic on (ببغداد، لباريس، بسوسة) and so does
ISRI, so a word of PROCLITIC_MIN_LETTERS or more that starts with one also
gives the root of the rest, at the same position: ببغداد has the roots of
ببغداد and of بغداد, and a query for بغداد meets both. The extra root of a
word whose ب or ل is its own letter (بريطانيا) is noise a recall stream
tolerates.

Input is a NORMALIZED word, as for light10. Pure text: no Whoosh here.
"""

from functools import lru_cache

from indexer.isri import ISRIStemmer

BEH = "\u0628"  # ARABIC LETTER BEH
LAM = "\u0644"  # ARABIC LETTER LAM
LONE_PROCLITICS = (BEH, LAM)
# Prefixes light10 already strips (بال، لل): not a lone proclitic.
ARTICLE_PREFIXES = (BEH + "\u0627" + LAM, LAM + LAM)
PROCLITIC_MIN_LETTERS = 5
MIN_ROOT_LETTERS = 2  # a shorter result is not a root: the word itself is kept

_ISRI = ISRIStemmer()


@lru_cache(maxsize=1 << 18)
def root(word: str) -> str:
    """The ISRI root of a normalized word (the word itself when that is too short)."""
    found = _ISRI.stem(word)
    return found if len(found) >= MIN_ROOT_LETTERS else word


@lru_cache(maxsize=1 << 18)
def roots(word: str) -> tuple:
    """The recall stream's words for a normalized word: its root, and the
    root without a lone ب or ل proclitic when it may carry one."""
    first = root(word)
    if (len(word) >= PROCLITIC_MIN_LETTERS and word.startswith(LONE_PROCLITICS)
            and not word.startswith(ARTICLE_PREFIXES)):
        second = root(word[1:])
        if second != first:
            return (first, second)
    return (first,)
