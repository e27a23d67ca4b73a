"""Find word spans in ORIGINAL text, keeping Arabic marks inside the word.

Python's \\w does not match harakat (they are combining marks), so a plain
\\w+ split cuts a vocalized word such as الكِتابِ into pieces. Our word class
adds the Arabic marks and, for other scripts, all combining marks; tatweel is
already a letter-modifier that \\w matches. Offsets always refer to the text
as given, so a highlighter can mark the vocalized original.
"""

import re

_MARKS = (
    "\u0300-\u036f"  # COMBINING GRAVE ACCENT .. COMBINING LATIN SMALL LETTER X
    "\u0610-\u061a"  # ARABIC SIGN SALLALLAHOU ALAYHE WASSALLAM .. ARABIC SMALL KASRA
    "\u064b-\u065f"  # ARABIC FATHATAN .. ARABIC WAVY HAMZA BELOW
    "\u0670"  # ARABIC LETTER SUPERSCRIPT ALEF
    "\u06d6-\u06dc"  # Qur'anic small high ligatures .. ARABIC SMALL HIGH SEEN
    "\u06df-\u06e8"  # ARABIC SMALL HIGH ROUNDED ZERO .. ARABIC SMALL HIGH NOON
    "\u06ea-\u06ed"  # ARABIC EMPTY CENTRE LOW STOP .. ARABIC SMALL LOW MEEM
    "\u08d3-\u08ff"  # ARABIC SMALL LOW WAW .. ARABIC MARK SIDEWAYS NOON GHUNNA
)
_JOINERS = "\u200c\u200d"  # ZERO WIDTH NON-JOINER, ZERO WIDTH JOINER

# One character class (not an alternation): several times faster in `re`.
# Underscores slip in through \w; normalization later splits on them.
WORD_PATTERN = re.compile(
    "[\\w{m}]+(?:[{j}]+[\\w{m}]+)*".format(m=_MARKS, j=_JOINERS)
)


def word_spans(text: str):
    """Yield (start, end) of every candidate word in `text`."""
    for match in WORD_PATTERN.finditer(text):
        yield match.span()
