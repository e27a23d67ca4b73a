"""Whether a written word's vocalization agrees with the query's.

A query word with harakat says which word is meant: عِلْم (knowledge) is
not عَلِمَ (he knew), though both are علم once the marks are gone. Two
spellings are compatible unless some letter carries a vowel in both and the
vowels differ, or carries marks in both and only one has a shadda. Missing
marks never disagree (most text is partly vocalized or not at all), and the
last letter is not compared: its vowel is the case ending, which changes
with the sentence (عِلْمُ، عِلْمَ، عِلْمٍ are one word).

pyarabic's `vocalizedlike` was measured for this and not used: it calls
عَلَّمَ and عَلِمَ alike (a shadda with fatha against a kasra).

Pure text: no Whoosh, no index.
"""

FATHATAN = "\u064b"  # ARABIC FATHATAN
DAMMATAN = "\u064c"  # ARABIC DAMMATAN
KASRATAN = "\u064d"  # ARABIC KASRATAN
FATHA = "\u064e"  # ARABIC FATHA
DAMMA = "\u064f"  # ARABIC DAMMA
KASRA = "\u0650"  # ARABIC KASRA
SHADDA = "\u0651"  # ARABIC SHADDA
SUKUN = "\u0652"  # ARABIC SUKUN
TATWEEL = "\u0640"  # ARABIC TATWEEL
SUPERSCRIPT_ALEF = "\u0670"  # ARABIC LETTER SUPERSCRIPT ALEF

# The vowel each mark writes (tanween is its vowel plus a final n).
VOWEL_OF = {
    FATHA: FATHA, FATHATAN: FATHA,
    DAMMA: DAMMA, DAMMATAN: DAMMA,
    KASRA: KASRA, KASRATAN: KASRA,
    SUKUN: SUKUN,
}
# Marks that belong to the letter before them but say nothing compared here.
_IGNORED = frozenset({TATWEEL, SUPERSCRIPT_ALEF}) | frozenset(chr(c) for c in range(0x0653, 0x0660))


def letters(word: str) -> list:
    """[(letter, vowel or None, shadda: bool, marked: bool)] of a written word."""
    out = []
    for ch in word:
        if ch in VOWEL_OF or ch == SHADDA:
            if out:
                letter, vowel, shadda, _ = out[-1]
                if ch == SHADDA:
                    shadda = True
                else:
                    vowel = VOWEL_OF[ch]
                out[-1] = (letter, vowel, shadda, True)
        elif ch not in _IGNORED:
            out.append((ch, None, False, False))
    return out


def is_vocalized(word: str) -> bool:
    """Whether any letter before the last carries a vowel or a shadda."""
    return any(marked for _, _, _, marked in letters(word)[:-1])


def compatible(query_word: str, written: str) -> bool:
    """False only when both spell the same number of letters and the marks
    of some letter but the last disagree (see the module's rule)."""
    q, w = letters(query_word), letters(written)
    if len(q) != len(w):
        return True  # not the same spelling: nothing to compare
    for (_, qv, qs, qm), (_, wv, ws, wm) in zip(q[:-1], w[:-1]):
        if qv is not None and wv is not None and qv != wv:
            return False
        if qm and wm and qs != ws:
            return False
    return True
