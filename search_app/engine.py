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

Ranking: the BM25F score (Whoosh's formula) summed over the stemmed, exact
and root fields with the boosts of `schema.FIELD_BOOSTS` (an exact-form
match outranks a stem-only one, which outranks a root-only one), times the
coordination of the clauses matched, weighted by their rarity; documents
matching only common clauses come after the others (search_app.scoring says
how). Then, on the PROXIMITY_CANDIDATES best: for several plain words, up to
PROXIMITY_WEIGHT more when the query's content words stand close together
(stopwords skipped); for a word typed with harakat, documents that write it
only with other harakat come after the rest (indexer.vocalization).

Stages: the query is parsed (search_app.query), each atom becomes a scorer
over the view's query files (the plan, here), search_app.scoring finds the
best documents block by block without scoring what cannot reach the top,
the ranking above orders them, and the hits are presented with snippets
(search_app.highlight).
"""

import gc
import os
import re
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from html import escape
from pathlib import Path

import numpy as np
from whoosh.support.levenshtein import distance as damerau_levenshtein
from whoosh.util.times import datetime_to_long

from indexer import dates, store, vocalization
from indexer.analysis import analyze
from indexer.ids import IdError, check_id
from indexer.normalize import normalize, words as normalized_words
from schema import FIELD_BOOSTS, SEARCH_FIELDS
from search_app import highlight, keyboard
from search_app import scoring
from search_app.index_view import EMPTY_DOCS, IndexView, safe_text
from search_app.scoring import AllScorer, PhraseScorer, TermScorer, UnionScorer, sorted_member
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
PROXIMITY_CANDIDATES = 100  # best documents the proximity bonus looks at
PROXIMITY_WINDOW = 5  # positions apart (stopwords keep theirs) that count as standing together
PROXIMITY_WEIGHT = 0.2  # score x (1 + this x share of neighbouring query words standing together)
DEFAULT_TIME_LIMIT = 1.0  # seconds
DEFAULT_WARMUP = 3.0  # at most, per generation: page in the query file, load the kernels
FEW_RESULTS = 3  # below this, look for a spelling suggestion
RESULT_CACHE_SIZE = 512
MAX_TITLE_CHARS = 1_000  # a longer title is cut at a space and ends with …
MAX_DOCUMENT_CHARS = 200_000  # of a document's text per /api/documents response
# A TOC file name and its generation number (_MAIN_10.toc is newer than _MAIN_9.toc).
_TOC_NAME = re.compile(r"_MAIN_(\d+)\.toc\Z")

STEM_FIELDS = {"text": "text", "title": "title"}
EXACT_FIELDS = {"text": "text_exact", "title": "title_exact"}
ROOT_FIELDS = {"text": "text_root"}  # the recall stream (schema): the text only
RECALL_FIELDS = frozenset(ROOT_FIELDS.values())


class QueryError(ValueError):
    """A request that cannot be served as asked; the message says what to fix."""


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


def whole_phrase_words(q):
    """The words of a query that is one quoted phrase of several words ("..."), else None."""
    q = q.strip()
    if len(q) > 2 and q[0] == q[-1] == '"' and q.count('"') == 2:
        inner = q[1:-1].strip()
        if len(inner.split()) > 1:
            return inner
    return None


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
        self._listed = None  # ((folder, mtime), key) of the last listing of the live folder
        self._followed = None  # ((inode, mtime) of `current`, the folder it led to)
        self.view()  # fail now (missing index, wrong version), not at the first query

    # -- index generations

    def _current_key(self):
        """(live generation directory, newest TOC number) as on disk now.

        The folder is listed again only when its modification time changed
        (a commit writes a new TOC file into it), and the `current` link is
        resolved again only when it was replaced: two stats per request.
        """
        try:
            link = os.lstat(self.index_dir / store.CURRENT)
            link_stamp = (link.st_ino, link.st_mtime_ns)
        except OSError:
            link_stamp = None
        followed = self._followed
        if link_stamp is not None and followed is not None and followed[0] == link_stamp:
            generation = followed[1]
        else:
            generation = store.live_path(self.index_dir)
            self._followed = (link_stamp, generation)
        try:
            stamp = (str(generation), os.stat(generation).st_mtime_ns)
        except OSError:
            stamp = None
        seen = self._listed
        if stamp is not None and seen is not None and seen[0] == stamp:
            return seen[1]
        numbers = (_TOC_NAME.match(p.name) for p in generation.glob("_MAIN_*.toc"))
        key = (str(generation), max((int(m.group(1)) for m in numbers if m), default=-1))
        self._listed = (stamp, key)
        return key

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
            started = time.monotonic()
            view.warm(self.warmup)
            self._warm_queries(view, self.warmup - (time.monotonic() - started))
        # The view's tables are long-lived: keep the cyclic garbage collector
        # from walking them on every full collection (seen: 40-70 ms pauses
        # landing on unlucky queries).
        gc.freeze()
        return view

    def _warm_queries(self, view, seconds):
        """Run a few queries of frequent words on a new view, so that the first
        requests do not pay for loading the compiled kernels (search_app.kernels,
        ~0.3 s on first use in a process) or the frequent terms' statistics."""
        exact_df, _ = view.sample_frequencies()
        words = [w for w, _ in exact_df.most_common(6)]
        if len(words) < 2:
            return
        deadline = Deadline(max(seconds, 0.0), self.clock)
        for q in (words[0], f"{words[0]} {words[1]}", f'"{words[0]} {words[1]}"', f"{words[2]} -{words[3]}"):
            for facets in (True, False):
                if deadline.passed():
                    return
                self._run(view, q, None, None, None, None, "relevance", 10, facets, deadline)

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

    # -- query plan: each atom of the query becomes a scorer (search_app.scoring)

    def _terms(self, view, pairs, deadline):
        """(TermScorers of (field, term) pairs, complete): stops at the deadline (a subset)."""
        out = []
        for field, term in pairs:
            if deadline.passed():
                return out, False
            out.append(TermScorer(view, field, term, FIELD_BOOSTS[field], recall=field in RECALL_FIELDS))
        return out, True

    def _plan(self, view, atom, deadline):
        """(scorer, exact forms, stems, complete) of a word, prefix*, typo~ or phrase."""
        if isinstance(atom, Phrase):
            return self._phrase_plan(view, atom, deadline)
        scope = ("title",) if atom.field == "title" else ("text", "title")
        if atom.prefix or atom.fuzzy:
            exacts, complete = self._expand(view, atom, scope, deadline)
            terms, scored = self._terms(view, [(EXACT_FIELDS[s], e) for s in scope for e in exacts], deadline)
            return UnionScorer(view, terms), set(exacts), set(), complete and scored
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
            children = []
            for e in first.values():
                scorer, _, _, complete = self._plan(view, Word(e, atom.field), deadline)
                if not complete:
                    # A word not looked at matches nothing, so neither does the whole.
                    return UnionScorer(view, []), exacts, stems, False
                children.append(scorer)
            return AllScorer(view, children), exacts, stems, True
        pairs = [(STEM_FIELDS[s], st) for s in scope for st in stems]
        pairs += [(EXACT_FIELDS[s], e) for s in scope for e in exacts]
        # A common root (قول: قال، يقول، القول...) would find a large share of
        # the collection for little ranking: only the rarer roots are searched.
        pairs += [(ROOT_FIELDS[s], r) for s in scope if s in ROOT_FIELDS for r in roots
                  if not scoring.is_common(view, view.doc_frequency(ROOT_FIELDS[s], r))]
        terms, complete = self._terms(view, pairs, deadline)
        return UnionScorer(view, terms), exacts, stems, complete

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

    def _phrase_plan(self, view, atom: Phrase, deadline):
        tokens = analyze(atom.text)
        scope = ("title",) if atom.field == "title" else ("text", "title")
        # Group forms by position: a dagger-alef word has two spellings.
        positions = {}
        for t in tokens:
            positions.setdefault(t.position, set()).add(t.exact)
        groups = [sorted(positions[p]) for p in sorted(positions)]
        exacts = set().union(*groups) if groups else set()
        children = []
        if groups:
            for s in scope:
                field = EXACT_FIELDS[s]
                scorers = []
                for group in groups:
                    terms, complete = self._terms(view, [(field, term) for term in group], deadline)
                    if not complete:
                        # Documents matching only the start of the phrase are
                        # not matches, so this field contributes none.
                        return UnionScorer(view, children), exacts, set(), False
                    scorers.append(terms)
                children.append(PhraseScorer(view, scorers))
        return UnionScorer(view, children), exacts, set(), True

    def _all_docs(self, view, scorer, deadline):
        """Every document `scorer` matches (sorted), or None when the deadline cut it short."""
        if scorer.countable:
            mask = np.zeros(view.N, dtype=bool)
            scorer.mark(mask)
            return np.flatnonzero(mask)
        blocks = np.flatnonzero(scorer.present())
        found = []
        for start in range(0, len(blocks), scoring.MAX_BATCH):
            if deadline.passed():
                return None
            found.append(scorer.gather(blocks[start:start + scoring.MAX_BATCH])[0])
        return np.concatenate(found) if found else EMPTY_DOCS

    # -- search

    def search(self, q, page=1, limit=10, source=None, tag=None, date_from=None,
               date_to=None, sort="relevance", snippets=True, facets=True) -> dict:
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
            key = (q, source or "", tag or "", start_date, end_date, sort, bool(facets))
            # The ranking goes as deep as the page; a deeper page ranks again, deeper.
            depth = page * limit
            result = self._cached(generation, key)
            if result is None or result["depth"] < depth:
                result = self._run(view, q, source, tag, start_date, end_date, sort, depth, facets, deadline)
                searched_for = None
                if (result["total"] == 0 and not deadline.passed()
                        and keyboard.looks_like_wrong_layout(q)):
                    arabic = keyboard.latin_to_arabic(q)
                    fixed = self._run(view, arabic, source, tag, start_date, end_date, sort, depth, facets,
                                      deadline)
                    if fixed["total"]:
                        result, searched_for = fixed, arabic
                words = whole_phrase_words(q)
                if result["total"] == 0 and words and not deadline.passed():
                    # A question pasted in quotes is one exact phrase, which is
                    # rarely in any document as written: search its words.
                    loose = self._run(view, words, source, tag, start_date, end_date, sort, depth, facets,
                                      deadline)
                    if loose["total"]:
                        result, searched_for = loose, words
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
            "total_relation": result["total_relation"],
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

    def _allowed(self, view, docs, source, tag, start_date, end_date, extra_sources):
        """Which of `docs` (sorted) are live and pass the filters: a mask over `docs`."""
        ok = view.live[docs]
        for wanted in ([source] if source else [], extra_sources):
            if wanted:
                keep = np.zeros(len(docs), dtype=bool)
                for value in wanted:
                    keep |= sorted_member(docs, view.facet_docs("source", value))
                ok &= keep
        if tag:
            ok &= sorted_member(docs, view.facet_docs("tags", tag))
        if start_date is not None or end_date is not None:
            when = view.dates[docs]
            if start_date is not None:
                ok &= when >= datetime_to_long(start_date)
            if end_date is not None:
                ok &= (when != -1) & (when <= datetime_to_long(end_date))
        return ok

    def _run(self, view, q, source, tag, start_date, end_date, sort, depth, facets, deadline) -> dict:
        """The best `depth` documents for `q` (ties included), the count and facets.

        Words are always counted exactly. A phrase's matches are counted by
        checking positions: all of them with `facets` (facets need them all),
        else up to scoring.TRACK_TOTAL_HITS (`total_relation` "gte").
        """
        parsed = parse(q)
        # Exclusions first: a document may only be returned once every
        # exclusion has been fully checked against it.
        excluded, unknown = [], False
        for atom in (atom for clause in parsed.negative for atom in clause.options):
            docs = None
            if not deadline.passed():
                scorer, _, _, complete = self._plan(view, atom, deadline)
                docs = self._all_docs(view, scorer, deadline) if complete else None
            if docs is None:
                unknown = True  # cannot tell which documents to exclude: return none
                break
            excluded.append(docs)
        counted = counted_clauses(parsed)
        scorers = []
        exacts, stems = set(), set()
        plain_words = []
        for clause, counts in zip(parsed.positive, counted):
            children = []
            for atom in clause.options:
                if deadline.passed():
                    break  # the options not looked at add no documents: a subset
                scorer, atom_exacts, atom_stems, _ = self._plan(view, atom, deadline)
                children.append(scorer)
                exacts |= atom_exacts
                stems |= atom_stems
            if not children:
                break
            if counts:
                scorers.append(children[0] if len(children) == 1 else UnionScorer(view, children))
            if len(clause.options) == 1 and isinstance(clause.options[0], Word):
                plain_words.append(clause.options[0])

        vocalized = [w for w in plain_words if vocalization.is_vocalized(w.text)]
        if len(plain_words) >= 2 or vocalized:
            # The documents the proximity and vocalization checks look at.
            depth = max(depth, PROXIMITY_CANDIDATES)

        filtered = bool(source or tag or start_date or end_date or parsed.sources or excluded or unknown)

        def keep(docs):
            ok = self._allowed(view, docs, source, tag, start_date, end_date, parsed.sources)
            if unknown:
                ok[:] = False
            for gone in excluded:
                ok &= ~sorted_member(docs, gone)
            return ok

        exact = True
        weights, rare = scoring.clause_weights(view, scorers)
        if any(counted) and scorers:
            matches = None
            if all(s.countable for s in scorers):
                # Words: every match counted from the postings' document numbers.
                matches = scoring.matching(view, scorers)
                if filtered:
                    matches = matches[keep(matches)]
            # With facets every match is counted (facets need them all),
            # phrases included; without, up to scoring.TRACK_TOTAL_HITS.
            found = scoring.top(view, scorers, keep, depth, deadline, sort,
                                None if matches is None else len(matches),
                                track=None if facets else scoring.TRACK_TOTAL_HITS, weights=weights, rare=rare)
            if matches is None:
                matches = np.sort(np.concatenate(found.counted)) if found.counted else EMPTY_DOCS
            total, exact = found.total, found.exact
            docs, matched_count = found.docs, found.counts
            score = scoring.coordinated(found.scores, found.weights, found.total_weight)
        elif parsed.sources and not parsed.clauses and not deadline.passed():
            # Only a source: filter: every document of that source, by date.
            docs = np.flatnonzero(view.live)
            docs = docs[keep(docs)]
            matches, total = docs, len(docs)
            score, matched_count = np.zeros(len(docs)), np.zeros(len(docs), np.int16)
        else:
            docs = matches = EMPTY_DOCS
            total, score, matched_count = 0, np.zeros(0), np.zeros(0, np.int16)
        # Rank the best `depth` (ties included): the order scoring.top ranked by.
        if sort == "date":
            when = view.dates[docs]
            rows = _top(when, depth)
            order = np.lexsort((-score[rows], -when[rows]))
            ranked_scores = score[rows][order][:depth]
        else:
            rows = _top(scoring.ranking_key(matched_count, score), depth)
            row_scores = score[rows]
            tier = (matched_count[rows] > 0).astype(np.int8)
            if len(plain_words) >= 2 and len(rows) and not deadline.passed():
                row_scores = row_scores * self._proximity(view, plain_words, docs[rows],
                                                          scoring.ranking_key(tier, row_scores), deadline)
            agrees = np.ones(len(rows), np.int8)
            if vocalized and len(rows) and not deadline.passed():
                agrees = self._vocalization_agrees(view, vocalized, docs[rows],
                                                   scoring.ranking_key(tier, row_scores), deadline)
            order = np.lexsort((-row_scores, -agrees, -tier))
            ranked_scores = row_scores[order][:depth]
        ranked_rows = rows[order][:depth]
        counts = {name: view.facet_counts(name, matches) for name in view.facets} if facets else {}
        result = {
            "ranked": docs[ranked_rows],
            "scores": ranked_scores,
            "depth": depth,
            "total": total,
            "total_relation": "eq" if exact else "gte",
            "partial": deadline.hit,
            "facets": counts,
            "exacts": exacts,
            "stems": stems,
            "suggestion": None,
        }
        if total < FEW_RESULTS and plain_words and not deadline.passed():
            result["suggestion"] = self._suggestion(view, q, plain_words, deadline)
        return result

    def _proximity(self, view, words, docs, key, deadline):
        """Each document's proximity factor: 1 + PROXIMITY_WEIGHT x the share of
        neighbouring content words of the query (stopwords skipped) that stand
        within PROXIMITY_WINDOW positions of each other in its text, in either order.

        Looked at for the PROXIMITY_CANDIDATES best documents by `key` only:
        positions are read for a handful of documents, never for every match.
        Past the deadline the rest keep factor 1 (a coarser ranking, the same
        documents).
        """
        factor = np.ones(len(docs))
        stems = []
        for w in words:
            stems += [t.stem for t in analyze(w.text)[:1] if t.stem]
        pairs = [(a, b) for a, b in zip(stems, stems[1:]) if a != b]
        if not pairs:
            return factor
        best = _top(key, PROXIMITY_CANDIDATES)
        candidates, where = np.unique(docs[best], return_index=True)
        close = np.zeros(len(candidates), np.int64)
        terms = {s: TermScorer(view, "text", s, 1.0) for s in set(stems)}
        for a, b in pairs:
            if deadline.passed():
                return factor
            close += scoring.near(view, [terms[a], terms[b]], candidates, PROXIMITY_WINDOW)
        factor[best[where]] += PROXIMITY_WEIGHT * close / len(pairs)
        return factor

    def _vocalization_agrees(self, view, words, docs, key, deadline):
        """1 for each of the PROXIMITY_CANDIDATES best documents by `key` that
        never writes a vocalized query word only with other harakat (عِلْم
        against عَلِمَ, indexer.vocalization); 0 for the others and for the
        documents not looked at, which rank below the candidates anyway, so
        the order is the same whatever the depth. Reads the candidates' stored
        text; past the deadline the rest keep 0 (a coarser ranking)."""
        agrees = np.zeros(len(docs), np.int8)
        wanted = [(w.text, {t.exact for t in analyze(w.text)}) for w in words]
        for i in _top(key, PROXIMITY_CANDIDATES):
            if deadline.passed():
                break
            fields = view.stored(docs[i], text=True)
            texts = (fields.get("title") or "", fields.get("text") or "")
            agrees[i] = 1
            for typed, exacts in wanted:
                written = [text[a:b] for text in texts for a, b, _ in highlight.matched_spans(text, exacts, ())]
                if written and not any(vocalization.compatible(typed, w) for w in written):
                    agrees[i] = 0
        return agrees

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
            tokens = analyze(w.text)
            if len(tokens) != 1 or tokens[0].stem is None:
                continue  # several words, or a stopword: never changed
            exact, stem = tokens[0].exact, tokens[0].stem
            if view.doc_frequency("text_exact", exact) or view.doc_frequency("title_exact", exact):
                continue  # the word is in the index: nothing to correct
            if view.doc_frequency("text", stem) or view.doc_frequency("title", stem):
                # Another form of it is (معنى, in no document as written, shares
                # its stem with معناه): a real word, and it finds results. A
                # suggestion replaces a word that finds nothing at all, so it
                # always finds more.
                continue
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
        scores = result["scores"][(page - 1) * limit: page * limit]
        exacts, stems = result["exacts"], result["stems"]
        hits = []
        for doc, score in zip(ranked, scores):
            fields = view.stored(doc, text=snippets)
            text = fields.get("text") or ""
            if not snippets:
                hits.append({
                    "id": fields.get("id"),
                    "score": round(float(score), 4),
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
                "score": round(float(score), 4),
                "title": title,
                "snippet": snippet,
                **_metadata(fields),
            })
        return hits

    def _text_matches(self, view, doc, exacts, stems):
        """Whether any of the query's forms is in the document's text (from the postings)."""
        pairs = [("text_exact", e) for e in exacts] + [("text", s) for s in stems]
        return any(view.holds(field, term, doc) for field, term in pairs)

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
    if not exacts and not stems:
        return escape(_clip(text))
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


def _top(key, depth):
    """Rows (ascending) whose `key` is among the `depth` largest, ties included."""
    if len(key) <= 2 * depth:
        return np.arange(len(key))
    threshold = np.partition(key, len(key) - depth)[len(key) - depth]
    return np.flatnonzero(key >= threshold)


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
