"""The search engine core: queries in, ranked and highlighted results out.

No Flask here: the JSON API, the HTML pages and the `arsearch search`
command all call `SearchEngine`. It opens the index once per process, keeps
one numpy view per index generation, and opens a new view (never
Whoosh's searcher refresh, which returns duplicate hits after merges in
whoosh-reloaded) when a commit or a --rebuild swap changes the index.

Threads: one engine serves several requests at once (gunicorn's gthread
workers). Each request leases the generation it started on for its whole
duration (search, stored fields, snippets, document, suggestions); a view
is closed only once it is no longer current and no request holds it, and
every cache keyed by document numbers (the result cache) belongs to its
generation.

Time limit: one deadline per request covers parsing, expansions (prefix* and
typo~), scoring, phrases, the wrong-keyboard-layout retry, did-you-mean, the
proximity bonus and the hits' snippets. When it passes, the engine returns
what it has verified so far with `partial: true`: fewer documents or a
coarser ranking, never a document that does not match.

Ranking, from the top: documents matching more of the query's clauses; then,
for several plain words, documents where the words stand together as a
phrase; then the BM25F score (Whoosh's formula) summed over the stemmed and
exact fields with the boosts of `schema.FIELD_BOOSTS`, so an exact-form match
outranks a stem-only one.
"""

import gc
import re
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from html import escape
from pathlib import Path

import numpy as np
from whoosh.support.levenshtein import distance as damerau_levenshtein
from whoosh.util.times import datetime_to_long

from indexer import dates, store
from indexer.analysis import analyze
from indexer.ids import IdError, check_id
from indexer.normalize import normalize, words as normalized_words
from schema import FIELD_BOOSTS, SEARCH_FIELDS
from search_app import highlight, keyboard, scoring
from search_app.engine import PROXIMITY_CANDIDATES, PROXIMITY_WEIGHT, PROXIMITY_WINDOW
from search_app.index_view import safe_text
from tests.reference.exhaustive_view import POSITION_BITS, IndexView, Postings
from search_app.query import Phrase, Word, counted_clauses, parse
from search_app.spelling import edit_distance

MAX_QUERY_CHARS = 500
MAX_LIMIT = 100
MAX_RESULTS_DEPTH = 1000  # page * limit
MAX_PREFIX_EXPANSIONS = 50
MAX_FUZZY_EXPANSIONS = 20
MAX_NEAR_TERMS = 200  # terms within the edit distance kept per word looked at
MAX_LEXICON_SCAN = 20_000  # lexicon terms read per word for typo~ and did-you-mean
MAX_SUGGESTION_WORDS = 4  # distinct query words did-you-mean looks at
MAX_COMPLETION_SCAN = 2_000  # lexicon terms read per completion request
DEFAULT_TIME_LIMIT = 1.0  # seconds
DEFAULT_WARMUP = 3.0  # seconds spent loading the most frequent terms per generation
FEW_RESULTS = 3  # below this, look for a spelling suggestion
RESULT_CACHE_SIZE = 512
MAX_TITLE_CHARS = 1_000  # a longer title is cut at a space and ends with …
MAX_DOCUMENT_CHARS = 200_000  # of a document's text per /api/documents response
# A TOC file name and its generation number (_MAIN_10.toc is newer than _MAIN_9.toc).
_TOC_NAME = re.compile(r"_MAIN_(\d+)\.toc\Z")

STEM_FIELDS = {"text": "text", "title": "title"}
EXACT_FIELDS = {"text": "text_exact", "title": "title_exact"}


class QueryError(ValueError):
    """A request that cannot be served as asked; the message says what to fix."""


@dataclass
class _Unit:
    """One query word (or phrase) resolved to index terms.

    `complete` is False when the deadline cut the work short: `mask` then
    holds only documents already verified to match (a subset).
    """

    mask: np.ndarray
    score: np.ndarray
    exacts: set
    stems: set
    complete: bool = True
    df: int = 0  # the clause's document frequency as the ranking estimates it (issue #9)


class Deadline:
    """One request's time limit; `hit` stays True once it has been seen to pass."""

    def __init__(self, seconds, clock=time.monotonic):
        self.clock = clock
        self.end = clock() + seconds
        self.hit = False

    def passed(self):
        if not self.hit and self.clock() > self.end:
            self.hit = True
        return self.hit


class _Generation:
    """One index generation as the engine serves it.

    `users` counts the requests holding it; a generation that is no longer
    current (`retired`) is closed when the last of them lets go. The result
    cache lives here so that ranked document numbers are only ever read
    against the view they came from.
    """

    def __init__(self, key, view):
        self.key = key
        self.view = view
        self.users = 0
        self.retired = False
        self.closed = False
        self.results = OrderedDict()


def parse_date(value, name, end=False):
    """A date filter parameter (the one ISO 8601 parser, indexer.dates), or QueryError."""
    try:
        return dates.parse_date(value, end_of_day=end)
    except dates.DateError:
        raise QueryError(f"{name} must be a date such as 2015-01-24, got {value!r}") from None


class SearchEngine:
    def __init__(self, index_dir, time_limit=DEFAULT_TIME_LIMIT, warmup=DEFAULT_WARMUP, clock=time.monotonic):
        self.index_dir = Path(index_dir)
        self.time_limit = time_limit
        self.warmup = warmup
        self.clock = clock  # the deadlines' clock (tests pass a fake one)
        self._lock = threading.Lock()  # guards _generation and every lease count
        self._open_lock = threading.Lock()  # one thread at a time opens a new view
        self._generation = None
        self.view()  # fail now (missing index, wrong version), not at the first query

    # -- index generations

    def _current_key(self):
        """(live generation directory, newest TOC number) as on disk now."""
        generation = store.live_path(self.index_dir)
        numbers = (_TOC_NAME.match(p.name) for p in generation.glob("_MAIN_*.toc"))
        return (str(generation), max((int(m.group(1)) for m in numbers if m), default=-1))

    def _acquire(self) -> _Generation:
        """Lease the current generation, opening a new view if the index changed."""
        key = self._current_key()
        with self._lock:
            current = self._generation
            if current is not None and current.key == key:
                current.users += 1
                return current
        # Opening and warming a view takes a while (seconds with warm-up):
        # while one thread does it, the others keep serving the current
        # generation (a consistent, slightly older index) instead of waiting.
        if not self._open_lock.acquire(blocking=self._generation is None):
            with self._lock:
                if self._generation is not None:
                    self._generation.users += 1
                    return self._generation
            self._open_lock.acquire()
        try:
            with self._lock:
                current = self._generation
                if current is not None and current.key == key:
                    current.users += 1
                    return current
            view = self._open_view()
            # Keyed by what this view really reads (a swap may have happened since).
            opened = _Generation((str(Path(view.ix.storage.folder)), view.generation), view)
            with self._lock:
                old, self._generation = self._generation, opened
                opened.users += 1
                if old is not None:
                    old.retired = True
                    closing = old.users == 0 and not old.closed
                    old.closed = old.closed or closing
                else:
                    closing = False
            if closing:
                old.view.close()
            return opened
        finally:
            self._open_lock.release()

    def _release(self, generation: _Generation):
        with self._lock:
            generation.users -= 1
            closing = generation.retired and generation.users == 0 and not generation.closed
            generation.closed = generation.closed or closing
        if closing:
            generation.view.close()

    @contextmanager
    def _leased(self):
        generation = self._acquire()
        try:
            yield generation
        finally:
            self._release(generation)

    def _open_view(self) -> IndexView:
        view = IndexView(store.open_index(self.index_dir), SEARCH_FIELDS)
        if self.warmup > 0:
            view.warm(self.warmup)
        # The cached postings are long-lived: keep the cyclic garbage
        # collector from walking them on every full collection (seen:
        # 40-70 ms pauses landing on unlucky queries).
        gc.freeze()
        return view

    def close(self):
        """Close the index files once no request holds them (tests, embedding programs)."""
        with self._lock:
            generation, self._generation = self._generation, None
            if generation is None:
                return
            generation.retired = True
            closing = generation.users == 0 and not generation.closed
            generation.closed = generation.closed or closing
        if closing:
            generation.view.close()

    def view(self) -> IndexView:
        """The current view, opened if the index changed (tests, benchmarks).

        Requests do not use this: they lease a generation for their whole
        duration, since a view returned here is closed once it is replaced
        and no request holds it.
        """
        with self._leased() as generation:
            return generation.view

    def _deadline(self) -> Deadline:
        return Deadline(self.time_limit, self.clock)

    def health(self) -> dict:
        with self._leased() as generation:
            view = generation.view
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

    def _score_terms(self, view, pairs, deadline):
        """(mask of docs with any term, boosted BM25F sums, complete) over (field, term) pairs."""
        score = np.zeros(view.N)
        mask = np.zeros(view.N, dtype=bool)
        for field, term in pairs:
            if deadline.passed():
                return mask, score, False
            postings = view.postings(field, term)
            if len(postings.docs):
                score[postings.docs] += view.bm25(field, term, postings, FIELD_BOOSTS[field])
                mask[postings.docs] = True
        return mask, score, True

    def _word_unit(self, view, atom: Word, deadline) -> _Unit:
        scope = ("title",) if atom.field == "title" else ("text", "title")
        if atom.prefix or atom.fuzzy:
            exacts, complete = self._expand(view, atom, scope, deadline)
            pairs = [(EXACT_FIELDS[s], e) for s in scope for e in exacts]
            mask, score, scored = self._score_terms(view, pairs, deadline)
            return _Unit(mask, score, set(exacts), set(), complete and scored, _max_df(view, pairs))
        tokens = analyze(atom.text)
        exacts = {t.exact for t in tokens}
        stems = {t.stem for t in tokens if t.stem is not None}
        roots = {r for t in tokens for r in t.roots}
        if len({t.position for t in tokens}) > 1:
            # One typed token that analyses into several words (a ligature,
            # "word,word"): all of them are required. (Two forms at one
            # position are a dagger-alef word's spellings: either matches.)
            first = {}
            for t in tokens:
                first.setdefault(t.position, t.exact)
            units = []
            for e in first.values():
                if deadline.passed():
                    # A word not looked at matches nothing, so neither does the whole.
                    return _Unit(np.zeros(view.N, dtype=bool), np.zeros(view.N), exacts, stems, False)
                units.append(self._word_unit(view, Word(e, atom.field), deadline))
            return _and_units(units)
        pairs = [(STEM_FIELDS[s], st) for s in scope for st in stems]
        pairs += [(EXACT_FIELDS[s], e) for s in scope for e in exacts]
        pairs += [("text_root", r) for s in scope if s == "text" for r in roots  # the recall stream (#9)
                  if not scoring.is_common(view, view.doc_frequency("text_root", r))]
        mask, score, complete = self._score_terms(view, pairs, deadline)
        return _Unit(mask, score, exacts, stems, complete, _max_df(view, pairs))

    def _expand(self, view, atom: Word, scope, deadline):
        """(the most frequent index terms for prefix* or typo~, complete)."""
        words = normalized_words(normalize(atom.text))
        if not words:
            return [], True
        base = words[-1] if atom.prefix else words[0]
        found = {}
        complete = True
        for s in scope:
            if deadline.passed():
                complete = False
                break
            complete &= self._expand_field(view, atom, base, EXACT_FIELDS[s], found, deadline)
        cap = MAX_PREFIX_EXPANSIONS if atom.prefix else MAX_FUZZY_EXPANSIONS
        return sorted(found, key=lambda t: (-found[t], t))[:cap], complete

    def _expand_field(self, view, atom, base, field, found, deadline):
        """Add `field`'s terms near `base` to `found` (term -> doc frequency); False if cut short."""
        if atom.prefix:
            terms, complete = view.terms_with_prefix(field, base, MAX_PREFIX_EXPANSIONS * 4, deadline)
        else:
            distance = 1 if len(base) <= 5 else 2
            terms, complete = self._near_terms(view, field, base, distance, MAX_FUZZY_EXPANSIONS * 4, deadline)
        for term in terms:
            if deadline.passed():
                return False
            found[term] = max(found.get(term, 0), view.doc_frequency(field, term))
        return complete

    def _near_terms(self, view, field, word, distance, limit, deadline):
        """(terms of `field` within `distance` edits of `word`, complete).

        The same terms as Whoosh's terms_within(prefix=1) (Damerau-Levenshtein,
        first letter kept), but bounded: at most MAX_LEXICON_SCAN lexicon
        terms read, at most `limit` kept, read in batches that let other
        threads in, and stopped by the deadline. A length check skips the
        edit distance for most terms.
        """
        scanned, complete = view.terms_with_prefix(field, word[:1], MAX_LEXICON_SCAN, deadline)
        near = []
        for i, term in enumerate(scanned):
            if i % 256 == 0 and deadline.passed():
                return near, False
            if abs(len(term) - len(word)) > distance:
                continue
            if damerau_levenshtein(word, term, limit=distance) <= distance:
                near.append(term)
                if len(near) == limit:
                    break
        return near, complete

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
        complete = True
        # The rarest position's frequency, in the field where that is largest.
        df = max((min(_max_df(view, [(EXACT_FIELDS[s], t) for t in g]) for g in groups) for s in scope
                  if groups), default=0)
        for s in scope:
            field = EXACT_FIELDS[s]
            matched = self._phrase_docs(view, field, groups, deadline)
            if matched is None:
                # Cut short: documents matching only the start of the phrase
                # are not matches, so this field contributes none.
                complete = False
                break
            if not len(matched):
                continue
            mask[matched] = True
            for group in groups:
                for term in group:
                    postings = view.postings(field, term)
                    keep = _sorted_member(postings.docs, matched)
                    if keep.any():
                        part = _subset(postings, keep)
                        score[part.docs] += view.bm25(field, term, part, FIELD_BOOSTS[field])
        return _Unit(mask, score, exacts, set(), complete, df)

    def _phrase_docs(self, view, field, groups, deadline):
        """Documents where the groups of forms occur at consecutive positions.

        None when the deadline passed before every group was checked.
        """
        keys = np.zeros(0, np.int64)
        for i, group in enumerate(groups):
            if deadline.passed():
                return None
            parts = [view.postings(field, term).position_keys() for term in group]
            # One term's keys are already sorted and unique (doc, then position).
            group_keys = parts[0] if len(parts) == 1 else np.unique(np.concatenate(parts))
            keys = group_keys if i == 0 else _sorted_intersection(keys + 1, group_keys)
            if not len(keys):
                break  # no document has the phrase so far: none can have it
        docs = keys >> POSITION_BITS
        return docs[np.r_[True, docs[1:] != docs[:-1]]] if len(docs) else docs

    # -- search

    def search(self, q, page=1, limit=10, source=None, tag=None, date_from=None,
               date_to=None, sort="relevance", snippets=True) -> dict:
        """Ranked hits with facets. `snippets=False` leaves out the snippets
        (each hit's `snippet` is null and its title unmarked): for programs
        that only want ids and scores, it skips most of the per-hit work."""
        started = time.perf_counter()
        deadline = self._deadline()
        q = self._check_query(q)
        page, limit = self._check_paging(page, limit)
        if sort not in ("relevance", "date"):
            raise QueryError("sort must be 'relevance' or 'date'")
        start_date = parse_date(date_from, "date_from")
        end_date = parse_date(date_to, "date_to", end=True)
        if start_date and end_date and start_date > end_date:
            raise QueryError("date_from is after date_to")
        source, tag = safe_text(source), safe_text(tag)
        with self._leased() as generation:
            view = generation.view
            key = (q, source or "", tag or "", start_date, end_date, sort)
            result = self._cached(generation, key)
            if result is None:
                result = self._run(view, q, source, tag, start_date, end_date, sort, deadline)
                searched_for = None
                if (result["total"] == 0 and not deadline.passed()
                        and keyboard.looks_like_wrong_layout(q)):
                    arabic = keyboard.latin_to_arabic(q)
                    fixed = self._run(view, arabic, source, tag, start_date, end_date, sort, deadline)
                    if fixed["total"]:
                        result, searched_for = fixed, arabic
                result["searched_for"] = searched_for
                # A result cut short by the deadline is served once, never
                # remembered: the next request gets the full one.
                result["partial"] = deadline.hit
                if not result["partial"]:
                    self._remember(generation, key, result)
            hits = self._hits(view, result, page, limit, deadline, snippets)
        return {
            "query": q,
            "total": int(result["total"]),
            "page": page,
            "limit": limit,
            "took_ms": round((time.perf_counter() - started) * 1000, 2),
            "partial": result["partial"] or deadline.hit,
            "hits": hits,
            "facets": result["facets"],
            "suggestion": result["suggestion"],
            "searched_for": result["searched_for"],
        }

    def _check_query(self, q):
        if q is None or not str(q).strip():
            raise QueryError("q is required: the words to search for")
        q = safe_text(str(q))
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

    def _cached(self, generation, key):
        with self._lock:
            result = generation.results.get(key)
            if result is not None:
                generation.results.move_to_end(key)
            return result

    def _remember(self, generation, key, result):
        with self._lock:
            generation.results[key] = result
            while len(generation.results) > RESULT_CACHE_SIZE:
                generation.results.popitem(last=False)

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

    def _run(self, view, q, source, tag, start_date, end_date, sort, deadline) -> dict:
        parsed = parse(q)
        allowed = self._filters(view, source, tag, start_date, end_date, parsed.sources)
        # Exclusions first: a document may only be returned once every
        # exclusion has been fully checked against it.
        for atom in (atom for clause in parsed.negative for atom in clause.options):
            unit = None if deadline.passed() else self._unit(view, atom, deadline)
            if unit is None or not unit.complete:
                allowed[:] = False  # cannot tell which documents to exclude: return none
                break
            allowed &= ~unit.mask
        counted = counted_clauses(parsed)
        matched_count = np.zeros(view.N, dtype=np.int16)
        score = np.zeros(view.N)
        clause_units = []
        exacts, stems = set(), set()
        plain_words = []
        for clause, counts in zip(parsed.positive, counted):
            units = []
            for atom in clause.options:
                if deadline.passed():
                    break  # the options not looked at add no documents: a subset
                units.append(self._unit(view, atom, deadline))
            if not units:
                break
            unit = _or_units(units)
            if counts:
                matched_count += unit.mask
                score += unit.score
                clause_units.append(unit)
            if len(clause.options) == 1 and isinstance(clause.options[0], Word):
                plain_words.append(clause.options[0])
            exacts |= unit.exacts
            stems |= unit.stems
        if any(counted):
            candidates = (matched_count > 0) & allowed
        elif parsed.sources and not parsed.clauses:
            # Only a source: filter: every document of that source, by date.
            candidates = allowed
        else:
            candidates = np.zeros(view.N, dtype=bool)
        matches = np.flatnonzero(candidates)
        # Issue #9's ranking, restated over whole-collection arrays: soft
        # coordination by idf weights, common clauses after rare ones, then
        # (below) proximity on the best candidates. (The vocalization rule is
        # not restated: the equivalence test's queries carry no harakat.)
        df = np.array([u.df for u in clause_units], np.int64)
        weights = np.log(view.N / (df + 1)) + 1
        common = df > max(scoring.COMMON_FRACTION * view.N, scoring.COMMON_MIN_DOCS)
        rare = ~common if not common.all() else np.ones(len(df), dtype=bool)
        matched_weight = np.zeros(view.N)
        rare_count = np.zeros(view.N, np.int16)
        for u, w, r in zip(clause_units, weights, rare):
            matched_weight += u.mask * w
            rare_count += u.mask * r
        score = scoring.coordinated(score, matched_weight, float(weights.sum()))
        key = scoring.ranking_key(rare_count, score)
        # Only the first MAX_RESULTS_DEPTH results can ever be shown: keep the
        # documents that can reach them (ties included), sort only those.
        if sort == "date":
            docs = _top(matches, view.dates[matches])
            order = np.lexsort((-score[docs], -view.dates[docs]))
        else:
            docs = _top(matches, key[matches])
            if len(plain_words) >= 2 and len(docs) and not deadline.passed():
                score = score.copy()
                score[docs] *= self._proximity(view, plain_words, docs, key[docs], deadline)
            order = np.lexsort((-score[docs], -(rare_count[docs] > 0).astype(np.int8)))
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
        if len(matches) < FEW_RESULTS and plain_words and not deadline.passed():
            result["suggestion"] = self._suggestion(view, q, plain_words, deadline)
        return result

    def _unit(self, view, atom, deadline):
        if isinstance(atom, Phrase):
            return self._phrase_unit(view, atom, deadline)
        return self._word_unit(view, atom, deadline)

    def _proximity(self, view, words, docs, key, deadline):
        """Proximity factors of `docs`: for the PROXIMITY_CANDIDATES best by
        `key` (ties included), 1 + PROXIMITY_WEIGHT x the share of neighbouring
        content words of the query standing within PROXIMITY_WINDOW positions."""
        factor = np.ones(len(docs))
        stems = []
        for w in words:
            stems += [t.stem for t in analyze(w.text)[:1] if t.stem]
        pairs = [(a, b) for a, b in zip(stems, stems[1:]) if a != b]
        if not pairs:
            return factor
        if len(key) > 2 * PROXIMITY_CANDIDATES:
            best = np.flatnonzero(key >= np.sort(key)[len(key) - PROXIMITY_CANDIDATES])
        else:
            best = np.arange(len(key))
        postings = {s: view.postings("text", s) for s in set(stems)}
        for i in best:
            close = 0
            for a, b in pairs:
                first, second = postings[a].positions_of(docs[i]), postings[b].positions_of(docs[i])
                if any(0 < abs(q - p) <= PROXIMITY_WINDOW for p in first for q in second):
                    close += 1
            factor[i] += PROXIMITY_WEIGHT * close / len(pairs)
        return factor

    def _suggestion(self, view, q, plain_words, deadline):
        """A corrected query (did you mean), or None.

        Looks at no more than MAX_SUGGESTION_WORDS distinct words (a query
        may repeat one word hundreds of times) and stops at the deadline.
        """
        changed = False
        suggestion = q
        looked_at = {}
        for w in plain_words:
            if w.prefix or w.fuzzy:
                continue
            if w.text in looked_at:
                continue
            if len(looked_at) == MAX_SUGGESTION_WORDS or deadline.passed():
                break
            looked_at[w.text] = None
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
            near, _ = self._near_terms(view, "text_exact", exact, distance, MAX_NEAR_TERMS, deadline)
            for term in near:
                if deadline.passed():
                    break
                key = (edit_distance(exact, term), -view.doc_frequency("text_exact", term), term)
                if best_key is None or key < best_key:
                    best, best_key = term, key
            if best:
                suggestion = suggestion.replace(w.text, view.display_form(best), 1)
                changed = True
        return suggestion if changed else None

    # -- results

    def _hits(self, view, result, page, limit, deadline, snippets=True):
        ranked = result["ranked"][(page - 1) * limit: page * limit]
        exacts, stems = result["exacts"], result["stems"]
        hits = []
        for doc in ranked:
            fields = view.stored(doc)
            text = fields.get("text") or ""
            if not snippets:
                hits.append({
                    "id": fields.get("id"),
                    "score": round(float(result["scores"][doc]), 4),
                    "title": _clip_html(fields.get("title") or "", (), ()),
                    "snippet": None,
                    **_metadata(fields),
                })
                continue
            if len(text) > highlight.DIRECT_CHARS and not self._text_matches(view, doc, exacts, stems):
                text_exacts = text_stems = ()  # matched in the title only: no need to scan a long text
            else:
                text_exacts, text_stems = exacts, stems
            if deadline.passed():
                # Past the time limit the remaining hits keep their place but
                # not their highlighting: the plain, unmarked start of the text.
                title, snippet = _clip_html(fields.get("title") or "", (), ()), highlight.plain_start(text)
            else:
                title = _clip_html(fields.get("title") or "", exacts, stems)
                snippet = highlight.snippet(text, text_exacts, text_stems, deadline=deadline)
            hits.append({
                "id": fields.get("id"),
                "score": round(float(result["scores"][doc]), 4),
                "title": title,
                "snippet": snippet,
                **_metadata(fields),
            })
        return hits

    def _text_matches(self, view, doc, exacts, stems):
        """Whether any of the query's forms is in the document's text (from the postings)."""
        pairs = [("text_exact", e) for e in exacts] + [("text", s) for s in stems]
        for field, term in pairs:
            docs = view.postings(field, term).docs
            i = int(np.searchsorted(docs, doc))
            if i < len(docs) and docs[i] == doc:
                return True
        return False

    def document(self, doc_id, q=None, offset=0):
        """One document, its text from `offset` in a chunk of at most MAX_DOCUMENT_CHARS.

        The chunk ends at a space when it can; `next_offset` is where the
        next one starts (None at the end), `text_length` the whole text's.
        """
        try:
            doc_id = check_id(doc_id)
        except IdError as exc:
            raise QueryError(str(exc)) from None
        try:
            offset = int(offset)
        except (TypeError, ValueError):
            raise QueryError(f"offset must be a whole number, got {offset!r}") from None
        if offset < 0:
            raise QueryError(f"offset must be 0 or more, got {offset}")
        q = safe_text(q)
        if q is not None and len(q) > MAX_QUERY_CHARS:
            raise QueryError(f"q is too long: {len(q)} characters, at most {MAX_QUERY_CHARS}")
        with self._leased() as generation:
            fields = generation.view.document(doc_id)
        if fields is None:
            return None
        text = fields.get("text") or ""
        if offset > len(text):
            raise QueryError(f"offset {offset} is past the end of the text ({len(text)} characters)")
        end = _chunk_end(text, offset, MAX_DOCUMENT_CHARS)
        chunk = text[offset:end]
        exacts, stems = set(), set()
        if q and q.strip():
            for clause in parse(q).positive:
                for atom in clause.options:
                    tokens = analyze(atom.text)
                    exacts |= {t.exact for t in tokens}
                    if isinstance(atom, Word):
                        stems |= {t.stem for t in tokens if t.stem}
        title = fields.get("title") or ""
        return {
            "id": fields["id"],
            "title": _clip(title),
            "text": chunk,
            "title_html": _clip_html(title, exacts, stems),
            "text_html": highlight.highlight_all(chunk, exacts, stems),
            "text_length": len(text),
            "offset": offset,
            "next_offset": end if end < len(text) else None,
            **_metadata(fields),
        }

    def suggest(self, prefix, limit=8):
        """Completions for the last word being typed, most frequent first."""
        prefix = safe_text(prefix)
        if not prefix or len(prefix) > MAX_QUERY_CHARS or prefix[-1].isspace():
            return []  # a finished word: wait for the next one
        head, _, last = prefix.rpartition(" ")
        words = normalized_words(normalize(last))
        if not words or len(words[-1]) < 2:
            return []
        deadline = self._deadline()
        with self._leased() as generation:
            view = generation.view
            stem = words[-1]
            # Frequent words first (from the sampled frequencies: a short prefix
            # such as ال has tens of thousands of expansions), then the lexicon.
            sampled = view.sample_frequencies()[0]
            found = {t: sampled[t] * view.N for t in sampled if t.startswith(stem)}
            terms, _ = view.terms_with_prefix("text_exact", stem, MAX_COMPLETION_SCAN, deadline)
            for term in terms:
                if deadline.passed():
                    break
                if term not in found:
                    found[term] = view.doc_frequency("text_exact", term)
            completions = []
            for term in sorted(found, key=lambda t: (-found[t], t)):
                # Past the deadline, terms show as indexed (normalized).
                shown = term if deadline.passed() else view.display_form(term)
                completion = (head + " " + shown).strip()
                if completion not in completions:
                    completions.append(completion)
                if len(completions) == limit:
                    break
            return completions


def _clip(text, limit=MAX_TITLE_CHARS):
    """`text` cut at a space to at most `limit` characters, with … when cut."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut) + "…"


def _clip_html(text, exacts, stems):
    """A title as escaped HTML with its matches marked, clipped like `_clip`."""
    clipped = _clip(text)
    if clipped is text:
        return highlight.highlight_all(text, exacts, stems)
    return highlight.highlight_all(clipped[:-1], exacts, stems) + escape("…")


def _chunk_end(text, offset, size):
    """Where a chunk of `text` starting at `offset` ends: after a space if one is near the end."""
    end = offset + size
    if end >= len(text):
        return len(text)
    space = max(text.rfind(c, offset + size // 2, end) for c in " \n\t")
    return space + 1 if space >= 0 else end


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
    return _Unit(mask, score, set().union(*(u.exacts for u in units)), set().union(*(u.stems for u in units)),
                 df=max(u.df for u in units))


def _and_units(units):
    mask = np.logical_and.reduce([u.mask for u in units])
    score = np.sum([u.score for u in units], axis=0) * mask
    return _Unit(mask, score, set().union(*(u.exacts for u in units)), set().union(*(u.stems for u in units)),
                 df=min(u.df for u in units))


def _max_df(view, pairs):
    # The recall stream's roots are left out (see scoring.UnionScorer.doc_frequency).
    return max((view.doc_frequency(field, term) for field, term in pairs if field != "text_root"), default=0)
