"""Whoosh wrappers around the pure analysis chain.

Whoosh pickles these objects into every index it writes, so their import
path (`indexer.whoosh_analysis`) and attribute names must stay stable, and an
index records `ANALYSIS_VERSION` (see `indexer.analysis`) so that a changed
chain is detected instead of silently mismatching terms.
"""

from whoosh.analysis import Filter, Token, Tokenizer
from whoosh.fields import TEXT

from indexer.analysis import ANALYSIS_VERSION, analyze_surface
from indexer.tokenize import WORD_PATTERN

__all__ = [
    "ANALYSIS_VERSION",
    "ArabicTokenizer",
    "ArabicStemFilter",
    "ArabicRootFilter",
    "ArabicTextField",
    "exact_analyzer",
    "root_analyzer",
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

    @staticmethod
    def words(form):
        """The stream's words for one Form: none for a stopword."""
        return () if form.stem is None else (form.stem,)

    def __call__(self, tokens):
        for t in tokens:
            found = self.words(t.form)
            if not found:
                if not t.removestops:
                    t.stopped = True
                    yield t
                continue
            for word in found:  # several words stand at the same position
                t.text = word
                yield t


class ArabicRootFilter(ArabicStemFilter):
    """As ArabicStemFilter, with the recall stream's roots (indexer.roots):
    one token per root, the second at the same position as the first."""

    @staticmethod
    def words(form):
        return form.roots


def exact_analyzer():
    """Tokenize + normalize: the stream for exact-form and phrase matching."""
    return ArabicTokenizer()


def stemmed_analyzer():
    """Tokenize + normalize + stopwords + light stem: the stemmed stream."""
    return ArabicTokenizer() | ArabicStemFilter()


def root_analyzer():
    """Tokenize + normalize + stopwords + roots: the recall stream."""
    return ArabicTokenizer() | ArabicRootFilter()


STREAMS = ("exact", "stem", "root")  # the order of term_positions' result
_last_analysis = [None, None]  # (text, (exact positions, stem positions, root positions))


def term_positions(text: str) -> tuple:
    """Positions of every exact form, stem and root in `text`, in one pass.

    Each text is indexed by several fields (exact, stemmed, root); Whoosh
    indexes them one after the other with the same string, so the last
    result is kept and the other fields cost a dictionary lookup.
    """
    if _last_analysis[0] is text:
        return _last_analysis[1]
    exact = {}
    stems = {}
    roots = {}
    pos = -1
    for match in WORD_PATTERN.finditer(text):
        for form in analyze_surface(match.group()):
            if form.new_position:
                pos += 1
            poslist = exact.get(form.exact)
            if poslist is None:
                exact[form.exact] = [pos]
            else:
                poslist.append(pos)
            stem = form.stem
            if stem is not None:
                poslist = stems.get(stem)
                if poslist is None:
                    stems[stem] = [pos]
                else:
                    poslist.append(pos)
                for r in form.roots:
                    poslist = roots.get(r)
                    if poslist is None:
                        roots[r] = [pos]
                    else:
                        poslist.append(pos)
    result = (exact, stems, roots)
    _last_analysis[0] = text
    _last_analysis[1] = result
    return result


# Encoded value of a one-element position list, by position (bounded by the
# longest document seen; a few hundred KB at most).
_SINGLE_POSITION = {}


class ArabicTextField(TEXT):
    """A TEXT field analysed by our chain, with a fast indexing path.

    `index()` gives exactly what Whoosh's generic Positions.word_values would
    give for the same analyzer (a test checks this), without building a
    Token object per word.
    """

    root = False  # the recall stream (indexer.roots); a class default for fields pickled before it

    def __init__(self, stemmed=True, stored=False, root=False):
        analyzer = root_analyzer() if root else stemmed_analyzer() if stemmed else exact_analyzer()
        super().__init__(analyzer=analyzer, phrase=True, stored=stored)
        self.stemmed = stemmed or root  # stopwords left out, so lengths count the same words
        self.root = root

    @property
    def stream(self):
        """Which of a Form's words this field indexes: exact, stem or root."""
        return "root" if self.root else "stem" if self.stemmed else "exact"

    def index(self, value, **kwargs):
        if not isinstance(value, str):
            return super().index(value, **kwargs)
        poses = term_positions(value)[STREAMS.index(self.stream)]
        encode = self.format.encode
        boost = self.format.field_boost
        single = _SINGLE_POSITION
        result = []
        for term, poslist in poses.items():
            if len(poslist) == 1:
                # Most terms occur once in a document: reuse the encoding.
                pos = poslist[0]
                vbytes = single.get(pos)
                if vbytes is None:
                    vbytes = single[pos] = encode(poslist)
                result.append((term.encode("utf-8"), 1, boost, vbytes))
            else:
                n = len(poslist)
                result.append((term.encode("utf-8"), n, n * boost, encode(poslist)))
        return result
