"""The search engine core: queries in, ranked and highlighted results out.

No Flask here: the JSON API, the HTML pages and the `arsearch search`
command all call `SearchEngine`. It opens the index once per process, keeps
one numpy view per index generation, and opens a new view (never
Whoosh's searcher refresh, which returns duplicate hits after merges in
whoosh-reloaded) when a commit or a --rebuild swap changes the index.

Ranking, from the top: documents matching more of the query's clauses; then,
for several plain words, documents where the words stand together as a
phrase; then the BM25F score (Whoosh's formula) summed over the stemmed and
exact fields with the boosts of `schema.FIELD_BOOSTS`, so an exact-form match
outranks a stem-only one.
"""

import gc
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime, time as dtime, timezone
from pathlib import Path

import numpy as np
from whoosh.util.times import datetime_to_long

from indexer import store
from indexer.analysis import analyze
from indexer.normalize import normalize, words as normalized_words
from schema import FIELD_BOOSTS, SEARCH_FIELDS
from search_app import highlight, keyboard
from search_app.index_view import POSITION_BITS, IndexView, Postings
from search_app.query import Phrase, Word, parse
from search_app.spelling import edit_distance

MAX_QUERY_CHARS = 500
MAX_LIMIT = 100
MAX_RESULTS_DEPTH = 1000  # page * limit
MAX_PREFIX_EXPANSIONS = 50
MAX_FUZZY_EXPANSIONS = 20
PHRASE_BONUS_CANDIDATES = 100
DEFAULT_TIME_LIMIT = 1.0  # seconds
DEFAULT_WARMUP = 3.0  # seconds spent loading the most frequent terms per generation
FEW_RESULTS = 3  # below this, look for a spelling suggestion
RESULT_CACHE_SIZE = 512

STEM_FIELDS = {"text": "text", "title": "title"}
EXACT_FIELDS = {"text": "text_exact", "title": "title_exact"}


class QueryError(ValueError):
    """A request that cannot be served as asked; the message says what to fix."""


@dataclass
class _Unit:
    """One query word (or phrase) resolved to index terms."""

    mask: np.ndarray
    score: np.ndarray
    exacts: set
    stems: set


class _Deadline:
    def __init__(self, seconds):
        self.end = time.monotonic() + seconds
        self.hit = False

    def passed(self):
        if not self.hit and time.monotonic() > self.end:
            self.hit = True
        return self.hit


def parse_date(value, name, end=False):
    if value in (None, ""):
        return None
    try:
        day = date.fromisoformat(value) if len(value) <= 10 else datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise QueryError(f"{name} must be a date such as 2015-01-24, got {value!r}") from None
    if isinstance(day, datetime):
        if day.tzinfo is not None:
            day = day.astimezone(timezone.utc)
        return day.replace(tzinfo=None)
    return datetime.combine(day, dtime.max if end else dtime.min)


class SearchEngine:
    def __init__(self, index_dir, time_limit=DEFAULT_TIME_LIMIT, warmup=DEFAULT_WARMUP):
        self.index_dir = Path(index_dir)
        self.time_limit = time_limit
        self.warmup = warmup
        self._lock = threading.Lock()
        self._view = None
        self._view_key = None
        self._results = OrderedDict()
        self.view()  # fail now (missing index, wrong version), not at the first query

    # -- index generations

    def _current_key(self):
        generation = store.live_path(self.index_dir)
        toc = max((p.name for p in generation.glob("_MAIN_*.toc")), default="")
        return (str(generation), toc)

    def view(self) -> IndexView:
        key = self._current_key()
        with self._lock:
            if key != self._view_key:
                ix = store.open_index(self.index_dir)
                old = self._view
                self._view = IndexView(ix, SEARCH_FIELDS)
                if self.warmup > 0:
                    self._view.warm(self.warmup)
                # The cached postings are long-lived: keep the cyclic garbage
                # collector from walking them on every full collection (seen:
                # 40-70 ms pauses landing on unlucky queries).
                gc.freeze()
                self._view_key = key
                self._results.clear()
                if old is not None:
                    old.close()
            return self._view

    def health(self) -> dict:
        view = self.view()
        meta = store.read_meta(store.live_path(self.index_dir))
        return {
            "status": "ok",
            "documents": view.doc_count,
            "generation": view.generation,
            "index": store.live_path(self.index_dir).name,
            "analysis_version": meta.get("analysis_version"),
            "last_commit": meta.get("last_commit"),
        }

    # -- query resolution


    def _score_terms(self, view, pairs):
        """Sum of boosted BM25F over (field, term) pairs; mask of docs with any."""
        score = np.zeros(view.N)
        mask = np.zeros(view.N, dtype=bool)
        for field, term in pairs:
            postings = view.postings(field, term)
            if len(postings.docs):
                score[postings.docs] += view.bm25(field, term, postings, FIELD_BOOSTS[field])
                mask[postings.docs] = True
        return mask, score

    def _word_unit(self, view, atom: Word, deadline) -> _Unit:
        scope = ("title",) if atom.field == "title" else ("text", "title")
        if atom.prefix or atom.fuzzy:
            exacts = self._expand(view, atom, scope)
            pairs = [(EXACT_FIELDS[s], e) for s in scope for e in exacts]
            mask, score = self._score_terms(view, pairs)
            return _Unit(mask, score, set(exacts), set())
        tokens = analyze(atom.text)
        exacts = {t.exact for t in tokens}
        stems = {t.stem for t in tokens if t.stem is not None}
        if len({t.position for t in tokens}) > 1:
            # One typed token that analyses into several words (a ligature,
            # "word,word"): all of them are required. (Two forms at one
            # position are a dagger-alef word's spellings: either matches.)
            first = {}
            for t in tokens:
                first.setdefault(t.position, t.exact)
            units = [self._word_unit(view, Word(e, atom.field), deadline) for e in first.values()]
            return _and_units(units)
        pairs = [(STEM_FIELDS[s], st) for s in scope for st in stems]
        pairs += [(EXACT_FIELDS[s], e) for s in scope for e in exacts]
        mask, score = self._score_terms(view, pairs)
        return _Unit(mask, score, exacts, stems)

    def _expand(self, view, atom: Word, scope):
        words = normalized_words(normalize(atom.text))
        if not words:
            return []
        base = words[-1] if atom.prefix else words[0]
        found = {}
        with view.io:
            for s in scope:
                self._expand_field(view, atom, base, EXACT_FIELDS[s], found)
        cap = MAX_PREFIX_EXPANSIONS if atom.prefix else MAX_FUZZY_EXPANSIONS
        return sorted(found, key=lambda t: (-found[t], t))[:cap]

    def _expand_field(self, view, atom, base, field, found):
        """Add `field`'s terms near `base` to `found` (term -> doc frequency)."""
        if atom.prefix:
            terms = view.reader.expand_prefix(field, base)
            limit = MAX_PREFIX_EXPANSIONS * 4
        else:
            distance = 1 if len(base) <= 5 else 2
            terms = view.reader.terms_within(field, base, distance, prefix=1)
            limit = MAX_FUZZY_EXPANSIONS * 4
        for i, term in enumerate(terms):
            if i >= limit:
                break
            term = term.decode("utf-8") if isinstance(term, bytes) else term
            found[term] = max(found.get(term, 0), view.doc_frequency(field, term))

    def _phrase_unit(self, view, atom: Phrase, deadline) -> _Unit:
        tokens = analyze(atom.text)
        scope = ("title",) if atom.field == "title" else ("text", "title")
        score = np.zeros(view.N)
        mask = np.zeros(view.N, dtype=bool)
        # Group forms by position: a dagger-alef word has two spellings.
        positions = {}
        for t in tokens:
            positions.setdefault(t.position, set()).add(t.exact)
        groups = [positions[p] for p in sorted(positions)]
        exacts = set().union(*groups) if groups else set()
        for s in scope:
            field = EXACT_FIELDS[s]
            matched = self._phrase_docs(view, field, groups, deadline)
            if matched is None or not len(matched):
                continue
            mask[matched] = True
            for group in groups:
                for term in group:
                    postings = view.postings(field, term)
                    keep = _sorted_member(postings.docs, matched)
                    if keep.any():
                        part = _subset(postings, keep)
                        score[part.docs] += view.bm25(field, term, part, FIELD_BOOSTS[field])
        return _Unit(mask, score, exacts, set())

    def _phrase_docs(self, view, field, groups, deadline):
        """Documents where the groups of forms occur at consecutive positions."""
        if not groups:
            return None
        keys = None
        for group in groups:
            parts = [view.postings(field, term).position_keys() for term in group]
            # One term's keys are already sorted and unique (doc, then position).
            group_keys = parts[0] if len(parts) == 1 else np.unique(np.concatenate(parts))
            if keys is None:
                keys = group_keys
            else:
                keys = _sorted_intersection(keys + 1, group_keys)
            if not len(keys) or deadline.passed():
                break
        if keys is None:
            return None
        docs = keys >> POSITION_BITS
        return docs[np.r_[True, docs[1:] != docs[:-1]]] if len(docs) else docs

    # -- search

    def search(self, q, page=1, limit=10, source=None, tag=None, date_from=None,
               date_to=None, sort="relevance") -> dict:
        started = time.perf_counter()
        q = self._check_query(q)
        page, limit = self._check_paging(page, limit)
        if sort not in ("relevance", "date"):
            raise QueryError("sort must be 'relevance' or 'date'")
        start_date = parse_date(date_from, "date_from")
        end_date = parse_date(date_to, "date_to", end=True)
        if start_date and end_date and start_date > end_date:
            raise QueryError("date_from is after date_to")
        view = self.view()
        key = (q, source or "", tag or "", start_date, end_date, sort)
        result = self._cached(key)
        if result is None:
            result = self._run(view, q, source, tag, start_date, end_date, sort)
            searched_for = None
            if result["total"] == 0 and keyboard.looks_like_wrong_layout(q):
                arabic = keyboard.latin_to_arabic(q)
                fixed = self._run(view, arabic, source, tag, start_date, end_date, sort)
                if fixed["total"]:
                    result, searched_for = fixed, arabic
            result["searched_for"] = searched_for
            self._remember(key, result)
        hits = self._hits(view, result, page, limit)
        return {
            "query": q,
            "total": int(result["total"]),
            "page": page,
            "limit": limit,
            "took_ms": round((time.perf_counter() - started) * 1000, 2),
            "partial": result["partial"],
            "hits": hits,
            "facets": result["facets"],
            "suggestion": result["suggestion"],
            "searched_for": result["searched_for"],
        }

    def _check_query(self, q):
        if q is None or not str(q).strip():
            raise QueryError("q is required: the words to search for")
        q = str(q)
        if len(q) > MAX_QUERY_CHARS:
            raise QueryError(f"q is too long: {len(q)} characters, at most {MAX_QUERY_CHARS}")
        return q.strip()

    def _check_paging(self, page, limit):
        try:
            page, limit = int(page), int(limit)
        except (TypeError, ValueError):
            raise QueryError("page and limit must be whole numbers") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise QueryError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
        if page < 1:
            raise QueryError(f"page must be 1 or more, got {page}")
        if page * limit > MAX_RESULTS_DEPTH:
            raise QueryError(
                f"page {page} is too deep: at most the first {MAX_RESULTS_DEPTH} results can be paged"
            )
        return page, limit

    def _cached(self, key):
        with self._lock:
            result = self._results.get(key)
            if result is not None:
                self._results.move_to_end(key)
            return result

    def _remember(self, key, result):
        with self._lock:
            self._results[key] = result
            while len(self._results) > RESULT_CACHE_SIZE:
                self._results.popitem(last=False)

    def _filters(self, view, source, tag, start_date, end_date, extra_sources):
        allowed = view.live.copy()
        for name, wanted in (("source", [source] if source else []), ("source", extra_sources)):
            if wanted:
                names, docs, ids = view.facets[name]
                keep = np.zeros(view.N, dtype=bool)
                for value in wanted:
                    if value in names:
                        keep[docs[ids == names.index(value)]] = True
                allowed &= keep
        if tag:
            names, docs, ids = view.facets["tags"]
            keep = np.zeros(view.N, dtype=bool)
            if tag in names:
                keep[docs[ids == names.index(tag)]] = True
            allowed &= keep
        if start_date is not None:
            allowed &= view.dates >= datetime_to_long(start_date)
        if end_date is not None:
            allowed &= (view.dates != -1) & (view.dates <= datetime_to_long(end_date))
        return allowed

    def _run(self, view, q, source, tag, start_date, end_date, sort) -> dict:
        deadline = _Deadline(self.time_limit)
        parsed = parse(q)
        allowed = self._filters(view, source, tag, start_date, end_date, parsed.sources)
        clauses = []
        exacts, stems = set(), set()
        plain_words = []
        for clause in parsed.positive:
            if deadline.passed():
                break
            units = [self._unit(view, atom, deadline) for atom in clause.options]
            clauses.append(_or_units(units))
            if len(clause.options) == 1 and isinstance(clause.options[0], Word):
                plain_words.append(clause.options[0])
            for u in units:
                exacts |= u.exacts
                stems |= u.stems
        clauses = self._drop_stopword_clauses(clauses, parsed)
        for clause in parsed.negative:
            for atom in clause.options:
                allowed &= ~self._unit(view, atom, deadline).mask
        if clauses:
            matched_count = np.zeros(view.N, dtype=np.int16)
            score = np.zeros(view.N)
            for unit in clauses:
                matched_count += unit.mask
                score += unit.score
            candidates = (matched_count > 0) & allowed
        elif parsed.sources and not parsed.clauses:
            # Only a source: filter: every document of that source, by date.
            matched_count = np.zeros(view.N, dtype=np.int16)
            score = np.zeros(view.N)
            candidates = allowed
        else:
            candidates = np.zeros(view.N, dtype=bool)
            matched_count = np.zeros(view.N, dtype=np.int16)
            score = np.zeros(view.N)
        matches = np.flatnonzero(candidates)
        # Only the first MAX_RESULTS_DEPTH results can ever be shown: keep the
        # documents that can reach them (ties included), sort only those.
        if sort == "date":
            docs = _top(matches, view.dates[matches])
            order = np.lexsort((-score[docs], -view.dates[docs]))
        else:
            # matched clauses first, then score (BM25 sums stay far below 1e6)
            docs = _top(matches, matched_count[matches] * 1e6 + score[matches])
            order = np.lexsort((-score[docs], -matched_count[docs]))
            if len(plain_words) >= 2 and len(docs) and not deadline.passed():
                bonus = self._adjacency_bonus(view, plain_words, docs, order, matched_count, score)
                order = np.lexsort((-score[docs], -bonus, -matched_count[docs]))
        ranked = docs[order][:MAX_RESULTS_DEPTH]
        facets = {}
        for name, (names, fdocs, ids) in view.facets.items():
            if not names:
                facets[name] = {}
                continue
            counts = np.bincount(ids[candidates[fdocs]], minlength=len(names))
            facets[name] = {names[i]: int(counts[i]) for i in np.argsort(-counts, kind="stable") if counts[i]}
        result = {
            "ranked": ranked,
            "scores": score,
            "total": len(matches),
            "partial": deadline.hit,
            "facets": facets,
            "exacts": exacts,
            "stems": stems,
            "suggestion": None,
        }
        if len(matches) < FEW_RESULTS and plain_words:
            result["suggestion"] = self._suggestion(view, q, plain_words)
        return result

    def _drop_stopword_clauses(self, clauses, parsed):
        # Unquoted stopwords (في, من) don't count as words to match when the
        # query has other words; quoted phrases keep them.
        keep = []
        for clause, unit in zip(parsed.positive, clauses):
            only_stopwords = all(isinstance(a, Word) and not a.prefix and not a.fuzzy
                                 and all(t.stem is None for t in analyze(a.text))
                                 for a in clause.options)
            if not only_stopwords:
                keep.append(unit)
        return keep if keep else clauses

    def _unit(self, view, atom, deadline):
        if isinstance(atom, Phrase):
            return self._phrase_unit(view, atom, deadline)
        return self._word_unit(view, atom, deadline)

    def _adjacency_bonus(self, view, words, docs, order, matched_count, score):
        """1 for the best candidates where the words stand together, in order.

        Verified only on the top PHRASE_BONUS_CANDIDATES documents that match
        every word: positions are decoded for a handful of documents, never
        for every match.
        """
        bonus = np.zeros(len(docs), dtype=np.int8)
        stems = []
        for w in words:
            tokens = [t for t in analyze(w.text) if t.stem]
            if not tokens:
                return bonus
            stems.append(tokens[0].stem)
        full = len(words)
        top = [i for i in order[:PHRASE_BONUS_CANDIDATES] if matched_count[docs[i]] >= full]
        postings = [view.postings("text", s) for s in stems]
        for i in top:
            doc = docs[i]
            lists = [set(p.positions_of(doc)) for p in postings]
            if any(not l for l in lists):
                continue
            first = lists[0]
            # The stemmed stream keeps a stopword's position, so allow a gap of one.
            if any(all(any(p + k + g in lists[k] for g in (0, k)) for k in range(1, full)) for p in first):
                bonus[i] = 1
        return bonus

    def _suggestion(self, view, q, plain_words):
        changed = False
        suggestion = q
        for w in plain_words:
            if w.prefix or w.fuzzy:
                continue
            forms = [t.exact for t in analyze(w.text)]
            if len(forms) != 1:
                continue
            exact = forms[0]
            if view.doc_frequency("text_exact", exact) or view.doc_frequency("title_exact", exact):
                continue  # the word is in the index: nothing to correct
            # Closest first, then most frequent: الجزاير -> الجزائر, not a
            # frequent word two edits away.
            best, best_key = None, None
            distance = 1 if len(exact) <= 4 else 2
            with view.io:
                near = view.reader.terms_within("text_exact", exact, distance, prefix=1)
                for i, term in enumerate(near):
                    if i > 200:
                        break
                    term = term.decode("utf-8") if isinstance(term, bytes) else term
                    key = (edit_distance(exact, term), -view.doc_frequency("text_exact", term), term)
                    if best_key is None or key < best_key:
                        best, best_key = term, key
            if best:
                suggestion = suggestion.replace(w.text, view.display_form(best), 1)
                changed = True
        return suggestion if changed else None

    # -- results

    def _hits(self, view, result, page, limit):
        ranked = result["ranked"][(page - 1) * limit: page * limit]
        hits = []
        for doc in ranked:
            fields = view.stored(doc)
            hits.append(self._hit(fields, float(result["scores"][doc]), result["exacts"], result["stems"]))
        return hits

    def _hit(self, fields, score, exacts, stems):
        return {
            "id": fields.get("id"),
            "score": round(score, 4),
            "title": highlight.highlight_all(fields.get("title") or "", exacts, stems),
            "snippet": highlight.snippet(fields.get("text") or "", exacts, stems),
            **_metadata(fields),
        }

    def document(self, doc_id, q=None):
        view = self.view()
        with view.io:
            fields = view.searcher.document(id=doc_id)
        if fields is None:
            return None
        exacts, stems = set(), set()
        if q and q.strip() and len(q) <= MAX_QUERY_CHARS:
            for clause in parse(q).positive:
                for atom in clause.options:
                    tokens = analyze(atom.text)
                    exacts |= {t.exact for t in tokens}
                    if isinstance(atom, Word):
                        stems |= {t.stem for t in tokens if t.stem}
        return {
            "id": fields["id"],
            "title": fields.get("title") or "",
            "text": fields.get("text") or "",
            "title_html": highlight.highlight_all(fields.get("title") or "", exacts, stems),
            "text_html": highlight.highlight_all(fields.get("text") or "", exacts, stems),
            **_metadata(fields),
        }

    def suggest(self, prefix, limit=8):
        """Completions for the last word being typed, most frequent first."""
        if not prefix or len(prefix) > MAX_QUERY_CHARS or prefix[-1].isspace():
            return []  # a finished word: wait for the next one
        head, _, last = prefix.rpartition(" ")
        words = normalized_words(normalize(last))
        if not words or len(words[-1]) < 2:
            return []
        view = self.view()
        stem = words[-1]
        # Frequent words first (from the sampled frequencies: a short prefix
        # such as ال has tens of thousands of expansions), then the lexicon.
        sampled = view.sample_frequencies()[0]
        found = {t: sampled[t] * view.N for t in sampled if t.startswith(stem)}
        with view.io:
            for i, term in enumerate(view.reader.expand_prefix("text_exact", stem)):
                if i >= 2000:
                    break
                term = term.decode("utf-8") if isinstance(term, bytes) else term
                if term not in found:
                    found[term] = view.doc_frequency("text_exact", term)
        completions = []
        for term in sorted(found, key=lambda t: (-found[t], t)):
            completion = (head + " " + view.display_form(term)).strip()
            if completion not in completions:
                completions.append(completion)
            if len(completions) == limit:
                break
        return completions


def _top(docs, key, depth=MAX_RESULTS_DEPTH):
    """The documents whose `key` is among the `depth` largest, ties included."""
    if len(docs) <= 2 * depth:
        return docs
    threshold = np.partition(key, len(key) - depth)[len(key) - depth]
    return docs[key >= threshold]


def _metadata(fields):
    """The stored fields a hit and a document page share, as JSON values."""
    when = fields.get("date")
    tags = fields.get("tags")
    return {
        "url": fields.get("url"),
        "date": when.date().isoformat() if when else None,
        "source": fields.get("source"),
        "tags": tags.split(",") if tags else [],
    }


def _sorted_member(values, sorted_set):
    """Boolean mask of `values` found in `sorted_set` (np.isin without its sort)."""
    if not len(sorted_set):
        return np.zeros(len(values), dtype=bool)
    i = np.searchsorted(sorted_set, values)
    i[i == len(sorted_set)] = 0
    return sorted_set[i] == values


def _sorted_intersection(a, b):
    """Intersection of two sorted arrays of unique keys."""
    if len(a) > len(b):
        a, b = b, a
    return a[_sorted_member(a, b)]


def _subset(postings, keep):
    return Postings(postings.docs[keep], postings.tf[keep], [])


def _or_units(units):
    if len(units) == 1:
        return units[0]
    mask = np.logical_or.reduce([u.mask for u in units])
    score = np.sum([u.score for u in units], axis=0)
    return _Unit(mask, score, set().union(*(u.exacts for u in units)), set().union(*(u.stems for u in units)))


def _and_units(units):
    mask = np.logical_and.reduce([u.mask for u in units])
    score = np.sum([u.score for u in units], axis=0) * mask
    return _Unit(mask, score, set().union(*(u.exacts for u in units)), set().union(*(u.stems for u in units)))
