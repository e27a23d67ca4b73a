"""Snippets and highlighting over the ORIGINAL text (diacritics kept).

Pure functions: the analysis chain gives each word's offsets in the stored
text, so a match is marked on the whole vocalized word (وَالْكِتَابِ), never
on a piece of it. Everything outside <mark> is HTML-escaped.
"""

import bisect
from html import escape

from indexer.analysis import analyze_surface
from indexer.tokenize import WORD_PATTERN

FRAGMENT_WORDS = 30
MAX_FRAGMENTS = 2
ELLIPSIS = " … "


def matched_spans(text: str, exacts, stems) -> list:
    """(start, end, key) of every word whose exact form or stem is wanted."""
    spans = []
    for match in WORD_PATTERN.finditer(text):
        for form in analyze_surface(match.group()):
            if form.exact in exacts:
                spans.append((match.start(), match.end(), form.exact))
                break
            if form.stem is not None and form.stem in stems:
                spans.append((match.start(), match.end(), form.stem))
                break
    return spans


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


def snippet(text: str, exacts, stems, max_chars=320) -> str:
    """The best fragments of `text` with matches marked, escaped HTML."""
    spans = matched_spans(text, exacts, stems) if (exacts or stems) else []
    words = [m.span() for m in WORD_PATTERN.finditer(text)] if spans else []
    if not spans:
        cut = text[:max_chars]
        if len(text) > max_chars:
            cut = cut[: cut.rfind(" ")] if " " in cut else cut
            return escape(cut) + "…"
        return escape(cut)
    # Score each window of FRAGMENT_WORDS words by the distinct matches in it.
    starts = [s for s, _ in words]
    span_word = [bisect.bisect_right(starts, s) - 1 for s, _, _ in spans]
    # span_word is sorted, so the matches inside a window are one slice of it:
    # linear in the matches, not quadratic (a long surah has thousands).
    best = []
    for lo in dict.fromkeys(max(0, w - FRAGMENT_WORDS // 3) for w in span_word):
        hi = min(len(words), lo + FRAGMENT_WORDS)
        first = bisect.bisect_left(span_word, lo)
        last = bisect.bisect_left(span_word, hi)
        keys = {spans[j][2] for j in range(first, last)}
        best.append((len(keys), -lo, lo, hi))
    best.sort(reverse=True)
    chosen = []
    for _, _, lo, hi in best:
        if all(hi <= a or lo >= b for a, b in chosen):
            chosen.append((lo, hi))
        if len(chosen) == MAX_FRAGMENTS:
            break
    chosen.sort()
    parts = []
    for lo, hi in chosen:
        start, end = words[lo][0], words[hi - 1][1]
        inside = spans[bisect.bisect_left(span_word, lo):bisect.bisect_left(span_word, hi)]
        piece = mark(text[start:end], [(s - start, e - start, k) for s, e, k in inside])
        prefix = "…" if start > 0 else ""
        suffix = "…" if end < len(text) else ""
        parts.append(prefix + piece + suffix)
    return " ".join(parts)
