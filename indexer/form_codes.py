"""Texts as integer codes of their index forms: the bulk indexing path.

`analyze_surface` (indexer.analysis) says what each written word indexes
to. Indexing a large collection asks that question tens of millions of
times, and building a dictionary of position lists per document and field
(what Whoosh's field API wants) costs far more than the answer. The
segment writer instead keeps, per field, one flat array of form codes and
one of positions for all the documents of a segment, and sorts them into
postings with numpy when the segment is written.

A code stands for one index form (exact spelling, stem and roots, none
for a stopword). `FormCodes` hands them out and remembers, per written word, the
codes it gives. Most words give one form at the next position: those are
coded with one dictionary lookup per word, in C (`map`); the rest (ﷺ gives
four words, a dagger-alef word two spellings at one position, a run of
marks none) take a loop in Python.

Pure text: no Whoosh here.
"""

from array import array

from indexer.analysis import analyze_surface
from indexer.tokenize import WORD_PATTERN


class FormCodes:
    """Form codes and the terms they stand for, shared by a writer's fields.

    `exact[code]`, `stem[code]`, `root[code]` and `root2[code]` are term
    numbers (-1: none; `stem` and `root` are -1 for a stopword, `root2` for
    a word with one root); `terms[number]` is the term's text. They share
    one numbering: a field uses the numbers of its stream only
    (ArabicTextField.stream: exact, stem, or root and root2).
    """

    def __init__(self):
        self.exact = array("i")
        self.stem = array("i")
        self.root = array("i")
        self.root2 = array("i")
        self.second_root = bytearray()  # code -> 1 when root2 is a term
        self.terms = []
        self._term_numbers = {}
        self._codes = {}  # (exact, stem) -> code
        self._simple = {}  # written word -> its one code (one form, next position)
        self._other = {}  # written word -> ((code, new_position), ...)
        self._stopword = bytearray()  # code -> 1 for a stopword
        self._last = (None, None)

    def _term(self, text):
        number = self._term_numbers.get(text)
        if number is None:
            number = self._term_numbers[text] = len(self.terms)
            self.terms.append(text)
        return number

    def _code(self, form):
        key = (form.exact, form.stem)
        code = self._codes.get(key)
        if code is None:
            code = self._codes[key] = len(self.exact)
            self.exact.append(self._term(form.exact))
            self.stem.append(-1 if form.stem is None else self._term(form.stem))
            roots = [self._term(r) for r in form.roots] + [-1, -1]
            self.root.append(roots[0])
            self.root2.append(roots[1])
            self.second_root.append(roots[1] >= 0)
            self._stopword.append(form.stem is None)
        return code

    def _learn(self, surface):
        forms = analyze_surface(surface)
        if len(forms) == 1 and forms[0].new_position:
            self._simple[surface] = self._code(forms[0])
        else:
            self._other[surface] = tuple((self._code(f), f.new_position) for f in forms)

    def encode(self, text):
        """(codes, positions, stems): the forms of `text` in order.

        `positions` is None when the i-th code is at position i (the usual
        case), else a list of each code's position. `stems` counts the
        codes that are not stopwords (the stemmed field's length). The last
        text's answer is kept: a text is indexed as two fields in a row.
        """
        if self._last[0] is text:
            return self._last[1]
        surfaces = WORD_PATTERN.findall(text)
        simple = self._simple
        try:
            codes = list(map(simple.__getitem__, surfaces))
            positions = None
        except KeyError:
            for surface in set(surfaces):
                if surface not in simple and surface not in self._other:
                    self._learn(surface)
            codes, positions = self._encode_slowly(surfaces)
        stops = sum(map(self._stopword.__getitem__, codes)) if codes else 0
        result = (codes, positions, len(codes) - stops)
        self._last = (text, result)
        return result

    def _encode_slowly(self, surfaces):
        simple, other = self._simple, self._other
        codes, positions = [], []
        pos = -1
        for surface in surfaces:
            code = simple.get(surface)
            if code is not None:
                pos += 1
                codes.append(code)
                positions.append(pos)
                continue
            for code, new_position in other[surface]:
                if new_position:
                    pos += 1
                codes.append(code)
                positions.append(pos)
        if len(positions) == len(codes) and positions == list(range(len(codes))):
            positions = None
        return codes, positions
