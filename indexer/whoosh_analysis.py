"""Whoosh wrappers around the pure analysis chain.

Whoosh pickles these objects into every index it writes, so their import
path (`indexer.whoosh_analysis`) and attribute names must stay stable, and an
index records `ANALYSIS_VERSION` (see `indexer.analysis`) so that a changed
chain is detected instead of silently mismatching terms.
"""

from whoosh.analysis import Filter, Token, Tokenizer

from indexer.analysis import ANALYSIS_VERSION, analyze_surface
from indexer.tokenize import WORD_PATTERN

__all__ = [
    "ANALYSIS_VERSION",
    "ArabicTokenizer",
    "ArabicStemFilter",
    "exact_analyzer",
    "stemmed_analyzer",
]


class ArabicTokenizer(Tokenizer):
    """Tokenize and normalize in one pass: yields exact forms with ORIGINAL offsets.

    Normalization is fused into the tokenizer because it can change the number
    of tokens (ﷺ is four words; a dagger-alef word has two spellings at one
    position), and one cache lookup per written word keeps it fast.
    """

    def __call__(self, value, positions=False, chars=False, keeporiginal=False,
                 removestops=True, start_pos=0, start_char=0, tokenize=True,
                 mode="", **kwargs):
        t = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
        pos = start_pos - 1
        for match in WORD_PATTERN.finditer(value):
            surface = match.group()
            for form in analyze_surface(surface):
                if form.new_position:
                    pos += 1
                t.text = form.exact
                t.form = form
                t.boost = 1.0
                t.stopped = False
                if keeporiginal:
                    t.original = surface
                if positions:
                    t.pos = pos
                if chars:
                    t.startchar = start_char + match.start()
                    t.endchar = start_char + match.end()
                yield t


class ArabicStemFilter(Filter):
    """Drop stopwords and replace each word by its light stem.

    Positions are kept as they were (no renumbering), so the gap a stopword
    leaves still counts when phrases are matched on the stemmed stream.
    """

    def __eq__(self, other):
        return other is not None and self.__class__ is other.__class__

    def __call__(self, tokens):
        for t in tokens:
            stem = t.form.stem
            if stem is None:
                if not t.removestops:
                    t.stopped = True
                    yield t
                continue
            t.text = stem
            yield t


def exact_analyzer():
    """Tokenize + normalize: the stream for exact-form and phrase matching."""
    return ArabicTokenizer()


def stemmed_analyzer():
    """Tokenize + normalize + stopwords + light stem: the recall stream."""
    return ArabicTokenizer() | ArabicStemFilter()
