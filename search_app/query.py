"""The query language, parsed into plain data (no Whoosh, no Flask).

    كلمة             a word: stem or exact form, in title and text
    "عبارة كاملة"    a phrase, matched on the exact stream (stopwords count)
    -كلمة  -"عبارة"  exclude documents that match
    أ OR ب           either side (OR in capitals)
    title:كلمة       only in titles (also title:"عبارة")
    source:اسم       only documents from that source
    كتا*             words starting with a prefix of at least 2 letters
    كتاب~            words within a small edit distance (typos)

Malformed syntax never raises: an unbalanced quote, a lone "-", "*" or
"OR", an unknown field or an empty "title:" fall back to plain words.
Arabic punctuation (؟ ، ؛) and a stray ? or * inside a question are text.
"""

import re
from dataclasses import dataclass, field
from typing import List, Optional, Union

from indexer.analysis import analyze

FIELDS = ("title", "source")
MIN_PREFIX_LETTERS = 2


@dataclass
class Word:
    text: str
    field: Optional[str] = None  # None (title and text) or "title"
    prefix: bool = False
    fuzzy: bool = False


@dataclass
class Phrase:
    text: str
    field: Optional[str] = None


Atom = Union[Word, Phrase]


@dataclass
class Clause:
    """One unit of a query: alternatives (a OR b), possibly excluded."""

    options: List[Atom]
    negated: bool = False


@dataclass
class ParsedQuery:
    clauses: List[Clause] = field(default_factory=list)
    sources: List[str] = field(default_factory=list)

    @property
    def positive(self):
        return [c for c in self.clauses if not c.negated]

    @property
    def negative(self):
        return [c for c in self.clauses if c.negated]


# A token of the query string: a quoted phrase (possibly with -, field:),
# or a run of non-space characters.
_TOKEN = re.compile(r'(-?(?:[A-Za-z]+:)?"[^"]*")|(\S+)')
_LETTERS = re.compile(r"[^\W_]", re.UNICODE)
_EDGE_PUNCT = "؟?،,؛;.!:«»()[]{}\u201c\u201d\u2018\u2019'"


def _letters(text: str) -> int:
    return len(_LETTERS.findall(text))


def _atom(raw: str, field_name: Optional[str]) -> Optional[Atom]:
    if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
        inner = raw[1:-1].strip()
        if not _letters(inner):
            return None
        return Phrase(inner, field_name)
    word = raw.strip(_EDGE_PUNCT)
    prefix = fuzzy = False
    if word.endswith("*") and _letters(word.rstrip("*")) >= MIN_PREFIX_LETTERS and "*" not in word.rstrip("*"):
        word, prefix = word.rstrip("*"), True
    elif word.endswith("~") and _letters(word[:-1]) >= 2:
        word, fuzzy = word[:-1], True
    if not _letters(word):
        return None
    return Word(word, field_name, prefix=prefix, fuzzy=fuzzy)


def parse(query: str) -> ParsedQuery:
    parsed = ParsedQuery()
    pending_or = False
    # An unbalanced quote is plain text.
    if query.count('"') % 2:
        query = query.replace('"', " ")
    for match in _TOKEN.finditer(query):
        raw = match.group(0)
        if raw == "OR":
            pending_or = bool(parsed.clauses) and not parsed.clauses[-1].negated
            continue
        negated = raw.startswith("-") and len(raw) > 1
        if negated:
            raw = raw[1:]
        field_name = None
        name, sep, rest = raw.partition(":")
        if sep and name.lower() in FIELDS and rest:
            field_name, raw = name.lower(), rest
            if field_name == "source":
                if not negated:
                    parsed.sources.append(raw.strip('"'))
                    pending_or = False
                    continue
                field_name, raw = None, rest  # -source: is not supported: plain words
        atoms = []
        if sep and field_name is None and not raw.startswith('"'):
            # unknown field: both sides are words ("foo:bar" -> foo bar)
            for part in raw.split(":"):
                atom = _atom(part, None)
                if atom:
                    atoms.append(atom)
        else:
            atom = _atom(raw, field_name)
            if atom:
                atoms.append(atom)
        if not atoms:
            continue
        if pending_or and not negated:
            parsed.clauses[-1].options.append(atoms[0])
            atoms = atoms[1:]
        pending_or = False
        for atom in atoms:
            parsed.clauses.append(Clause([atom], negated))
    return parsed


def counted_clauses(parsed: ParsedQuery) -> list:
    """For each positive clause, whether it counts towards matching.

    Unquoted stopwords (في, من) don't count as words to match when the query
    has other words; quoted phrases keep them. The one rule, used by the
    engine's scoring and by the peer benchmarks.
    """
    counted = [not all(isinstance(a, Word) and not a.prefix and not a.fuzzy
                       and all(t.stem is None for t in analyze(a.text))
                       for a in clause.options)
               for clause in parsed.positive]
    return counted if any(counted) else [True] * len(counted)
