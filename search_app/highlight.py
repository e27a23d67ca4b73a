"""Snippets and highlighting over the ORIGINAL text (diacritics kept).

Pure functions: the analysis chain gives each word's offsets in the stored
text, so a match is marked on the whole vocalized word (وَالْكِتَابِ), never
on a piece of it. Everything outside <mark> is HTML-escaped.

Long texts: analysing every word of a 50 MB text takes tens of seconds, so a
text longer than `DIRECT_CHARS` is first scanned by a locator that runs in
numpy: it folds every character as normalization does (hamza seats on alef,
ى, ة, Farsi letters, presentation forms, case and accents, decomposed
hamza), skips what normalization deletes (marks, tatweel, invisible
controls) and looks for the query's normalized forms, so it finds at least
every place the exact analysis would match. The exact analysis
(`matched_spans`) then runs only on windows around the first candidates. A
word lying wholly inside a window is analysed exactly as in the whole text,
so a window's marks and fragments are the ones the whole-text computation
gives there. Work per text is bounded by the number of windows, the
characters scanned and the caller's deadline.
"""

import bisect
import re
import unicodedata
from collections import defaultdict
from functools import lru_cache
from html import escape

import numpy as np

from indexer.analysis import analyze_surface
from indexer.normalize import ALEF, SUPERSCRIPT_ALEF, TATWEEL, normalize
from indexer.tokenize import WORD_PATTERN

FRAGMENT_WORDS = 30
MAX_FRAGMENTS = 2
ELLIPSIS = " … "

DIRECT_CHARS = 20_000  # texts up to this length are analysed whole
WINDOW_BEFORE = 1_000  # characters analysed before a located candidate
WINDOW_AFTER = 2_000  # and after it (a fragment is 10 words before, 20 after)
MAX_WINDOW_CHARS = 8_000  # nearby candidates share a window up to this size
MAX_WINDOWS = 8  # windows with real matches that a snippet chooses from
MAX_ANALYSED_WINDOWS = 16  # windows analysed in all (candidates can be false)
SCAN_CHUNK = 1_000_000  # characters scanned between deadline checks
SCAN_OVERLAP = 1_000  # a candidate crossing a chunk's end is found in the next
MAX_SCAN_CHARS = 64_000_000  # covers a 50 MB text in any script

# Code points whose normalization is worked out to build the locator's letter
# classes: Latin, Greek, Cyrillic, Arabic and the other alphabetic blocks,
# compatibility ideographs, presentation forms and full-width letters, and
# the mathematical Latin and Arabic letters. Elsewhere a character stands
# for itself.
_VARIANT_RANGES = ((0x0000, 0x33FF), (0xF900, 0xFFFF), (0x1D400, 0x1D7FF), (0x1EE00, 0x1EEFF))


def matched_spans(text: str, exacts, stems, start=0, end=None) -> list:
    """(start, end, key) of every word whose exact form or stem is wanted.

    With `start`/`end`, only the words of text[start:end] that lie wholly
    inside it (a word touching a cut edge may be a piece of a longer one).
    """
    end = len(text) if end is None else end
    spans = []
    for match in _words(text, start, end):
        for form in analyze_surface(match.group()):
            if form.exact in exacts:
                spans.append((match.start(), match.end(), form.exact))
                break
            if form.stem is not None and form.stem in stems:
                spans.append((match.start(), match.end(), form.stem))
                break
    return spans


def _words(text, start, end):
    """WORD_PATTERN matches wholly inside text[start:end]."""
    for match in WORD_PATTERN.finditer(text, start, end):
        if (match.start() == start and start > 0) or (match.end() == end and end < len(text)):
            continue  # touches a cut edge: maybe part of a longer word
        yield match


def mark(text: str, spans) -> str:
    out, last = [], 0
    for start, end, _ in spans:
        out.append(escape(text[last:start]))
        out.append("<mark>" + escape(text[start:end]) + "</mark>")
        last = end
    out.append(escape(text[last:]))
    return "".join(out)


def highlight_all(text: str, exacts, stems) -> str:
    return mark(text, matched_spans(text, exacts, stems))


def plain_start(text: str, max_chars=320) -> str:
    """The start of `text`, escaped and unmarked, cut at a space."""
    cut = text[:max_chars]
    if len(text) > max_chars:
        cut = cut[: cut.rfind(" ")] if " " in cut else cut
        return escape(cut) + "…"
    return escape(cut)


def snippet(text: str, exacts, stems, max_chars=320, deadline=None) -> str:
    """The best fragments of `text` with matches marked, escaped HTML.

    `deadline` (an object with `passed()`) bounds the work on a long text;
    when it passes before any match is found, the snippet is the plain start
    of the text.
    """
    if not (exacts or stems):
        return plain_start(text, max_chars)
    choices, rendered = [], []
    for start, end, spans in regions(text, exacts, stems, deadline):
        words = [m.span() for m in _words(text, start, end)]
        choices.extend(_fragment_choices(words, spans))
    if not choices:
        return plain_start(text, max_chars)
    # Most distinct matches first, then the earliest.
    choices.sort(key=lambda c: (-c[0], c[1]))
    chosen = []
    for choice in choices:
        _, start, end, _ = choice
        if all(end <= s or start >= e for _, s, e, _ in chosen):
            chosen.append(choice)
        if len(chosen) == MAX_FRAGMENTS:
            break
    chosen.sort(key=lambda c: c[1])
    for _, start, end, inside in chosen:
        piece = mark(text[start:end], [(s - start, e - start, k) for s, e, k in inside])
        prefix = "…" if start > 0 else ""
        suffix = "…" if end < len(text) else ""
        rendered.append(prefix + piece + suffix)
    return " ".join(rendered)


def _fragment_choices(words, spans):
    """(distinct keys, start, end, spans inside) of each fragment worth showing.

    `words` are the (start, end) of one region's words and `spans` its
    matches, both in order. A fragment is FRAGMENT_WORDS words starting a
    third of that before a match; the matches inside a fragment are one
    slice of the sorted `span_word`, so this is linear in the matches, not
    quadratic (a long surah has thousands).
    """
    starts = [s for s, _ in words]
    span_word = [bisect.bisect_right(starts, s) - 1 for s, _, _ in spans]
    choices = []
    for lo in dict.fromkeys(max(0, w - FRAGMENT_WORDS // 3) for w in span_word):
        hi = min(len(words), lo + FRAGMENT_WORDS)
        first = bisect.bisect_left(span_word, lo)
        last = bisect.bisect_left(span_word, hi)
        inside = spans[first:last]
        choices.append((len({k for _, _, k in inside}), words[lo][0], words[hi - 1][1], inside))
    return choices


# -- locating matches in long texts


def regions(text: str, exacts, stems, deadline=None):
    """(start, end, spans) of the parts of `text` that hold matches.

    The whole text when it is short; otherwise windows around the locator's
    first candidates: at most MAX_WINDOWS windows holding real matches, at
    most MAX_ANALYSED_WINDOWS analysed, at most MAX_SCAN_CHARS scanned, and
    no new chunk scanned once `deadline` has passed.
    """
    if len(text) <= DIRECT_CHARS:
        spans = matched_spans(text, exacts, stems)
        return [(0, len(text), spans)] if spans else []
    found, analysed = [], 0
    for start, end in _windows(text, _locator(frozenset(exacts) | frozenset(stems)), deadline):
        spans = matched_spans(text, exacts, stems, start, end)
        if spans:
            found.append((start, end, spans))
        analysed += 1
        if len(found) == MAX_WINDOWS or analysed == MAX_ANALYSED_WINDOWS:
            break
        if deadline is not None and deadline.passed():
            break
    return found


def _windows(text, pattern, deadline):
    """Windows around the candidates, in order; near candidates share one."""
    if pattern is None:
        return
    current = None
    for position in _candidates(text, pattern, deadline):
        if current is not None and position < current[1]:
            if current[1] - current[0] < MAX_WINDOW_CHARS:
                current[1] = min(len(text), max(current[1], position + WINDOW_AFTER))
            continue
        if current is not None:
            yield tuple(current)
        start = max(position - WINDOW_BEFORE, current[1] if current is not None else 0)
        current = [start, min(len(text), position + WINDOW_AFTER)]
    if current is not None:
        yield tuple(current)


def _candidates(text, locator, deadline):
    """Start offsets of the locator's candidates, in order, chunk by chunk."""
    pos, last = 0, -1
    limit = min(len(text), MAX_SCAN_CHARS)
    while pos < limit:
        if deadline is not None and deadline.passed():
            return
        end = min(limit, pos + SCAN_CHUNK)
        for found in locator.find(text[pos:end]):
            if found + pos > last:
                last = found + pos
                yield last
        if end == limit:
            return
        pos = end - SCAN_OVERLAP


# The locator works on code points in numpy arrays: each character becomes the
# code point of its normalized form (its "class"), characters that
# normalization deletes are dropped (their offsets kept aside), and a form is
# found as a run of classes, one vectorised comparison per letter. About 10 ms
# per million characters whatever the query, several times faster than a
# regular expression whose every letter is a character class.
_DROPPED = np.uint32(0xFFFFFFFF)  # class of a character normalization deletes
_LIGATURE = np.uint32(0xFFFFFFFE)  # class of a character that writes several letters
# A superscript (dagger) alef is indexed both ways: deleted (ذَٰلِكَ = ذلك) and
# as a full alef (ٱلْعَٰلَمِينَ = العالمين), which after waw replaces the waw
# (ٱلصَّلَوٰةَ = الصلاة) and after alef maksura adds nothing (عَلَىٰ = على);
# see indexer.analysis. Texts holding one are scanned a second time spelled
# the second way, rewritten character for character so offsets stay put.
_HARAKAT = "[\u064b-\u065f]*"
_DAGGER_AFTER_WAW = re.compile("\u0648(" + _HARAKAT + ")\u0670")
_DAGGER_AFTER_MAKSURA = re.compile("(\u0649" + _HARAKAT + ")\u0670")


class _Locator:
    def __init__(self, forms):
        table, allowed = _class_table()
        # A form holding another form adds no candidate (a stem is part of
        # its word): keep the shortest.
        kept = [f for f in forms if f and not any(g != f and g in f for g in forms if g)]
        self.forms = [[allowed.get(ord(c), np.array([ord(c)], np.uint32)) for c in f] for f in kept]
        # A ligature sharing a letter with the forms may write part of one.
        letters = set("".join(kept))
        self.ligatures = np.array(sorted(ord(ch) for ch, spelled in _ligatures().items()
                                         if letters & set(spelled)), np.uint32)
        self.table = table

    def find(self, chunk):
        """Offsets in `chunk` where a form may start, sorted."""
        found = self._find(chunk)
        if SUPERSCRIPT_ALEF in chunk:
            second = _DAGGER_AFTER_WAW.sub(lambda m: ALEF + m.group(1) + TATWEEL, chunk)
            second = _DAGGER_AFTER_MAKSURA.sub(lambda m: m.group(1) + TATWEEL, second)
            found = np.union1d(found, self._find(second.replace(SUPERSCRIPT_ALEF, ALEF)))
        return found.tolist()

    def _find(self, chunk):
        points = np.frombuffer(chunk.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        classes = self.table[points]
        dropped = classes == _DROPPED
        if dropped.any():
            kept = np.flatnonzero(~dropped)
            folded = classes[kept]
        else:  # nothing to skip (unvocalized text): offsets are indexes
            kept, folded = None, classes
        starts = []
        for form in self.forms:
            n = len(form)
            head = folded[: len(folded) - n + 1]
            cand = np.flatnonzero(head == form[0][0] if len(form[0]) == 1 else np.isin(head, form[0]))
            for i in range(1, n):
                if not len(cand):
                    break
                at = folded[cand + i]
                cand = cand[at == form[i][0]] if len(form[i]) == 1 else cand[np.isin(at, form[i])]
            starts.append(cand if kept is None else kept[cand])
        if len(self.ligatures):
            written = np.flatnonzero(classes == _LIGATURE)
            starts.append(written[np.isin(points[written], self.ligatures)])
        return np.unique(np.concatenate(starts)) if starts else np.zeros(0, np.int64)


@lru_cache(maxsize=256)
def _locator(forms):
    return _Locator(forms) if any(forms) else None


@lru_cache(maxsize=1)
def _class_table():
    """(code point -> class, class of a normalized char -> the classes that may write it).

    Worked out once per process from `normalize` itself (about 0.1 s), so
    the locator folds exactly what the analysis folds.
    """
    table = np.arange(0x110000, dtype=np.uint32)
    bases = defaultdict(set)
    for lo, hi in _VARIANT_RANGES:
        for cp in range(lo, hi + 1):
            if 0xD800 <= cp <= 0xDFFF:
                continue
            ch = chr(cp)
            folded = normalize(ch)
            if folded == "":
                table[cp] = _DROPPED
            elif len(folded) == 1:
                table[cp] = ord(folded)
                # A letter written as base + combining mark (و + hamza above
                # is ؤ): the base letter may stand for the composed one.
                parts = unicodedata.decomposition(ch).split()
                if len(parts) == 2 and not parts[0].startswith("<"):
                    bases[ord(folded)].add(int(parts[0], 16))
            elif not folded.isspace():
                table[cp] = _LIGATURE
    allowed = {}
    for letter, chars in bases.items():
        classes = {int(table[c]) for c in chars} - {int(_DROPPED), int(_LIGATURE)}
        allowed[letter] = np.array(sorted(classes | {letter}), np.uint32)
    return table, allowed


@lru_cache(maxsize=1)
def _ligatures():
    """Each character that writes several letters (ﻻ, ﷲ, ﷺ) -> those letters."""
    table, _ = _class_table()
    return {chr(cp): normalize(chr(cp)).replace(" ", "") for cp in np.flatnonzero(table == _LIGATURE)}
