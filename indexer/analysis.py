"""The whole analysis chain as pure functions: tokenize, normalize, stop, stem.

Whoosh wrappers live in `indexer.whoosh_analysis`; everything here works on
plain strings so it can be tested, benchmarked and reused without an index.

Each written word (a "surface" slice of the original text) is analysed once
and remembered: word frequencies are Zipfian, so after the first few thousand
documents nearly every word is a cache hit.
"""

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

from indexer.normalize import ALEF, ALEF_MAKSURA, SUPERSCRIPT_ALEF, WAW, normalize, spelling, words
from indexer.roots import roots
from indexer.stem import stem
from indexer.stopwords import stopwords
from indexer.tokenize import word_spans

# Bump when any rule changes what a text indexes to: indexes record it and
# refuse to open under another version (they must be rebuilt).
ANALYSIS_VERSION = 4


@dataclass(frozen=True)
class Form:
    """One index word made from a surface slice.

    `new_position` is False for an alternate spelling indexed at the same
    position as the previous form (the dagger alef case). `stem` (light10)
    is None and `roots` (the recall stream, indexer.roots) is empty when the
    word is a stopword.
    """

    exact: str
    stem: Optional[str]
    new_position: bool = True
    roots: tuple = ()


@dataclass(frozen=True)
class Token:
    text: str  # the original slice, marks and tatweel included
    start: int
    end: int
    position: int
    exact: str
    stem: Optional[str]
    roots: tuple = ()


def _dagger_alef_as_alef(word: str) -> str:
    """Spell each superscript alef as a full alef (ٱلْعَٰلَمِينَ -> العالمين).

    After waw, the waw itself is the seat that modern spelling writes as alef
    (ٱلصَّلَوٰةَ -> الصلاة, ٱلزَّكَوٰةَ -> الزكاة, ٱلْحَيَوٰةِ -> الحياة).
    After alef maksura nothing is added: in عَلَىٰ the dagger only marks the
    long vowel that ى already writes, and modern spelling is على.
    """
    chars = []
    base_at = -1
    for ch in word:
        if ch == SUPERSCRIPT_ALEF:
            base = chars[base_at] if base_at >= 0 else ""
            if base == WAW:
                chars[base_at] = ALEF
            elif base != ALEF_MAKSURA:
                chars.append(ALEF)
            continue
        if not ("\u064b" <= ch <= "\u065f"):  # harakat don't change the base letter
            base_at = len(chars)
        chars.append(ch)
    return "".join(chars)


def _forms(surface: str, new_position=True) -> list:
    """A Form per word of `surface`: the normalized word, and its stems unless
    the word as spelled (before ى folds into ي) is a stopword."""
    forms = []
    for word in words(spelling(surface)):
        exact = normalize(word)
        if word in stopwords():
            forms.append(Form(exact, None, new_position))
        else:
            forms.append(Form(exact, stem(exact), new_position, roots(exact)))
    return forms


@lru_cache(maxsize=1 << 18)
def analyze_surface(surface: str) -> tuple:
    """All index forms of one written word, as a tuple of `Form`.

    Usually one form. A ligature such as ﷺ gives several words in a row;
    a word written with a dagger alef also gives the full-alef spelling at
    the same position, so both ذلك and العالمين find the Qur'anic spelling.
    """
    forms = _forms(surface)
    if SUPERSCRIPT_ALEF in surface:
        alternates = _forms(_dagger_alef_as_alef(surface), new_position=False)
        if len(alternates) == len(forms):
            for i in range(len(forms) - 1, -1, -1):
                if alternates[i].exact != forms[i].exact:
                    forms.insert(i + 1, alternates[i])
    return tuple(forms)


def analyze(text: str) -> list:
    """Every token of `text` with original offsets, exact form and stem."""
    tokens = []
    position = -1
    for start, end in word_spans(text):
        surface = text[start:end]
        for form in analyze_surface(surface):
            if form.new_position:
                position += 1
            tokens.append(Token(surface, start, end, position, form.exact, form.stem, form.roots))
    return tokens
