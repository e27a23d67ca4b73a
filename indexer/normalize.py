"""Arabic (and Latin) normalization: a superset of Lucene's ArabicNormalizer.

Pure text functions, no Whoosh here. Both the index and the query side run the
same `normalize`, so anything folded here matches in both directions.
"""

import re
import unicodedata

# Letters folded to a plain form (Lucene's rules first, then ours).
ALEF = "\u0627"
ALEF_WITH_MADDA_ABOVE = "\u0622"
ALEF_WITH_HAMZA_ABOVE = "\u0623"
ALEF_WITH_HAMZA_BELOW = "\u0625"
ALEF_WASLA = "\u0671"
ALEF_WITH_WAVY_HAMZA_ABOVE = "\u0672"
ALEF_WITH_WAVY_HAMZA_BELOW = "\u0673"
ALEF_MAKSURA = "\u0649"
YEH = "\u064a"
FARSI_YEH = "\u06cc"
TEH_MARBUTA = "\u0629"
HEH = "\u0647"
WAW = "\u0648"
KAF = "\u0643"
KEHEH = "\u06a9"
TATWEEL = "\u0640"
SUPERSCRIPT_ALEF = "\u0670"  # the "dagger alef" of Qur'anic spelling
LOW_LINE = "_"

# Hamza on waw (ؤ) and on yeh (ئ) are deliberately NOT folded. Writers often
# drop the hamza on alef (احمد for أحمد), so folding alef forms buys recall;
# the hamza on waw and yeh is almost always written, and folding it merges
# different words: ؤ -> و would make رؤى (visions) equal روى (he narrated),
# and ئ -> ي would make قرئ (it was recited) equal قرى (villages), since
# alef maksura already folds to yeh. Folding either to a bare ء (hamza) would
# also break the word's shape for no gain in matching. Lucene keeps them too.

LETTER_FOLDS = {
    ALEF_WITH_MADDA_ABOVE: ALEF,
    ALEF_WITH_HAMZA_ABOVE: ALEF,
    ALEF_WITH_HAMZA_BELOW: ALEF,
    ALEF_WASLA: ALEF,
    ALEF_WITH_WAVY_HAMZA_ABOVE: ALEF,
    ALEF_WITH_WAVY_HAMZA_BELOW: ALEF,
    ALEF_MAKSURA: YEH,
    FARSI_YEH: YEH,
    TEH_MARBUTA: HEH,
    KEHEH: KAF,
}

# Code point ranges deleted outright: tatweel, harakat and the other Arabic
# marks, Qur'anic annotation marks, zero-width and bidi controls.
DELETED_RANGES = (
    (0x0610, 0x061A),  # ARABIC SIGN SALLALLAHOU ALAYHE WASSALLAM .. ARABIC SMALL KASRA
    (0x061C, 0x061C),  # ARABIC LETTER MARK
    (0x0640, 0x0640),  # ARABIC TATWEEL
    (0x064B, 0x065F),  # ARABIC FATHATAN .. ARABIC WAVY HAMZA BELOW (harakat, shadda, sukun, ...)
    (0x0670, 0x0670),  # ARABIC LETTER SUPERSCRIPT ALEF (an alternate form is indexed, see analysis)
    (0x06D6, 0x06DC),  # ARABIC SMALL HIGH LIGATURE SAD WITH LAM WITH ALEF MAKSURA .. SMALL HIGH SEEN
    (0x06DF, 0x06E8),  # ARABIC SMALL HIGH ROUNDED ZERO .. ARABIC SMALL HIGH NOON
    (0x06EA, 0x06ED),  # ARABIC EMPTY CENTRE LOW STOP .. ARABIC SMALL LOW MEEM
    (0x08D3, 0x08FF),  # ARABIC SMALL LOW WAW .. ARABIC MARK SIDEWAYS NOON GHUNNA
    (0x200B, 0x200F),  # ZERO WIDTH SPACE .. RIGHT-TO-LEFT MARK
    (0x202A, 0x202E),  # LEFT-TO-RIGHT EMBEDDING .. RIGHT-TO-LEFT OVERRIDE
    (0x2066, 0x2069),  # LEFT-TO-RIGHT ISOLATE .. POP DIRECTIONAL ISOLATE
    (0xFEFF, 0xFEFF),  # ZERO WIDTH NO-BREAK SPACE (byte order mark)
)

# Scripts whose composed letters we keep composed: Arabic letters such as ؤ
# and ئ canonically decompose into a base letter plus a hamza mark.
_KEEP_COMPOSED = ((0x0600, 0x06FF), (0x0750, 0x077F), (0x08A0, 0x08FF))


def _in_ranges(cp, ranges):
    return any(lo <= cp <= hi for lo, hi in ranges)


class _FoldTable(dict):
    """A str.translate table over all of Unicode, filled in on first sight.

    Precomputing every code point is slow to import; a missing key is worked
    out once and remembered, so translate stays a single C-level pass.
    """

    def __missing__(self, cp):
        value = _fold_char(cp)
        self[cp] = value
        return value


def _fold_char(cp):
    ch = chr(cp)
    if ch in LETTER_FOLDS:
        return LETTER_FOLDS[ch]
    if _in_ranges(cp, DELETED_RANGES):
        return None
    category = unicodedata.category(ch)
    if category == "Nd":
        # Arabic-Indic, Extended Arabic-Indic and every other decimal digit.
        return str(unicodedata.digit(ch))
    if category == "Mn":
        # Accents of Latin (French in Maghreb news) and marks of other scripts.
        return None
    if category.startswith("L") and not _in_ranges(cp, _KEEP_COMPOSED):
        decomposed = unicodedata.normalize("NFD", ch)
        if decomposed != ch:
            stripped = "".join(c for c in decomposed if unicodedata.category(c) != "Mn")
            return stripped.casefold()
    if category.startswith("L"):
        folded = ch.casefold()
        return folded if folded != ch else cp
    return cp


_TABLE = _FoldTable((ord(k), v) for k, v in LETTER_FOLDS.items())
# The same folds but alef maksura kept: for stopwords, which are told apart
# before ى and ي merge (على "on" is a stopword, علي the name Ali is not).
_SPELLING_TABLE = _FoldTable((ord(k), v) for k, v in LETTER_FOLDS.items() if k != ALEF_MAKSURA)
_SPELLING_TABLE[ord(ALEF_MAKSURA)] = ord(ALEF_MAKSURA)
_MAX_ROUNDS = 4


def _fold(text, table):
    if text.isascii():
        return text.lower()
    for _ in range(_MAX_ROUNDS):
        folded = unicodedata.normalize("NFKC", text).translate(table)
        if folded == text:
            break
        text = folded
    return text


def normalize(text: str) -> str:
    """Normalize a text or a single word; idempotent by construction.

    NFKC first, so decomposed input (ا + hamza mark) and presentation forms
    (ﻻ) compare equal to their ordinary spelling; then one table pass. A
    fold can expose a new NFKC composition or case pair, so repeat until
    nothing changes (in practice at most twice).
    """
    return _fold(text, _TABLE)


def spelling(text: str) -> str:
    """`normalize` without folding alef maksura into yeh: على stays على and
    علي stays علي, so stopwords can be told apart from the words their
    folded form merges with (Lucene removes stopwords before normalizing)."""
    return _fold(text, _SPELLING_TABLE)


_MARKS_ONLY = {
    cp: None
    for lo, hi in DELETED_RANGES
    for cp in range(lo, hi + 1)
}
_MARKS_ONLY[ord(ALEF_WASLA)] = ALEF


def strip_marks(word: str) -> str:
    """Drop diacritics, tatweel and controls but keep the letters as written.

    For showing a word to users (a suggestion): مَدْرَسَةٌ -> مدرسة, unlike
    `normalize`, which would also fold ة and ى.
    """
    return word.translate(_MARKS_ONLY)


_WORD = re.compile(r"[^\W_]+")


def words(normalized: str) -> list:
    """Split normalized text into index words (letters and digits only).

    Normalization can turn one written token into several words: the
    ligature ﷺ expands to four words, and an underscore separates two.
    """
    return _WORD.findall(normalized)
