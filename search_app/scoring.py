"""Scoring and top k: BM25F over the query files, block by block, with upper bounds.

The documents are cut into blocks of BLOCK_DOCS consecutive numbers (never
across a segment). For every (field, term) the view keeps, per block, where
its postings are and the best score any of them reaches there
(`IndexView.block_stats`, computed on a term's first use: a few kilobytes).
A query's bound for a block is the sum of its terms' best scores there,
times the coordination the clauses with a posting there would give (see
Ranking below). Blocks are scored exactly, a batch at a time, best bound first;
the search stops when the next block's bound is below the k-th best key
found, since nothing there can enter the top k. This is block-max MaxScore in
its document-range form, which numpy runs as a few vector operations per
batch; the ranking is the exhaustive one (tests/test_ranking_equivalence.py
checks it against the old path), only the work changes.

Counting: a query of words counts its matches exactly from the postings'
document numbers (a compiled mark per posting, no score: measured cheaper
than counting by blocks, even for the most common words). A phrase is only
a match once its positions are checked, so a query with a phrase counts the
documents of the blocks it checked. Facets need every match, so with facets
every block is counted; without, counting stops once TRACK_TOTAL_HITS are
found (Elasticsearch's `track_total_hits` convention: `total_relation`
"gte").

Ranking: a document's score is its BM25F sum times its coordination,
(weight of the clauses it matches / weight of all the query's clauses) **
COORD_POWER, a clause's weight being its idf (Lucene's classic coord, with
idf weights: a rare word counts for more than a generic one). A clause found
in more than COMMON_FRACTION of the documents is common (Lucene's
CommonTermsQuery, Elasticsearch's cutoff_frequency): documents that match
only common clauses rank after every document that matches a rarer one.
The key is (matches a rare clause) * TIER + score: both parts have valid
per-block bounds, so the pruning stays exact.

No Flask and no Whoosh here: the view gives arrays, this module gives ranked
document numbers.
"""

from contextlib import contextmanager

import numpy as np

from indexer import query_file
from indexer.query_file import ranges
from search_app import kernels
from search_app.index_view import EMPTY_DOCS, K1, POSITION_BITS

TRACK_TOTAL_HITS = 10_000  # matches counted exactly at least up to this many
FIRST_BATCH = 8  # blocks scored in the first batch; each next batch doubles
MAX_BATCH = 256
# Scores are sums of floats added in different orders: a bound gets a margin
# far above rounding and far below any real difference in score.
BOUND_MARGIN = 1e-9
TIER = 1e6  # key = (matches a rare clause) * TIER + score (BM25 sums stay far below)
COORD_POWER = 1.5  # coordination = (matched weight / query weight) ** COORD_POWER
COMMON_FRACTION = 0.1  # a clause in more of the documents than this is common
COMMON_MIN_DOCS = 50  # ... and in at least this many (small collections have no common words)
EMPTY_SCORES = np.zeros(0)
EMPTY_COUNTS = np.zeros(0, np.int16)


def is_common(view, df):
    """Whether a document frequency makes a clause, or a root, common."""
    return df > max(COMMON_FRACTION * view.N, COMMON_MIN_DOCS)


def clause_weights(view, scorers):
    """(weights, rare) of the query's counted clauses: each clause's idf
    (from its document frequency, as each scorer estimates it from its
    terms') and whether it is rare. When every clause is common, all count
    as rare."""
    df = np.array([s.doc_frequency() for s in scorers], np.int64)
    weights = np.array([view.idf_of(f) for f in df.tolist()], np.float64)
    common = is_common(view, df)
    rare = ~common if not common.all() else np.ones(len(scorers), dtype=bool)
    return weights, rare


def coordinated(scores, weights, total_weight):
    """Scores times their coordination (matched weight / query weight) ** COORD_POWER."""
    if total_weight <= 0:
        return scores
    return scores * np.minimum(weights / total_weight, 1.0) ** COORD_POWER


def merge(parts):
    """Union of (sorted docs, scores) parts: (docs, summed scores, parts holding each doc).

    A stable sort of the concatenated runs (timsort merges sorted runs in
    about linear time) keeps each document's scores in the order of `parts`,
    so they are added in the exhaustive path's order.
    """
    parts = [(d, s) for d, s in parts if len(d)]
    if not parts:
        return EMPTY_DOCS, EMPTY_SCORES, EMPTY_COUNTS
    if len(parts) == 1:
        docs, score = parts[0]
        return docs, score, np.ones(len(docs), np.int16)
    docs = np.concatenate([d for d, _ in parts])
    order = np.argsort(docs, kind="stable")
    docs = docs[order]
    scores = np.concatenate([s for _, s in parts])[order]
    first = np.flatnonzero(np.r_[True, docs[1:] != docs[:-1]])
    counts = np.diff(np.r_[first, len(docs)]).astype(np.int16)
    return docs[first], np.add.reduceat(scores, first), counts


def sorted_member(values, sorted_set):
    """Boolean mask of `values` found in `sorted_set` (np.isin without its sort)."""
    if not len(sorted_set) or not len(values):
        return np.zeros(len(values), dtype=bool)
    i = np.searchsorted(sorted_set, values)
    i[i == len(sorted_set)] = 0
    return sorted_set[i] == values


class TermScorer:
    """One term in one field, with a boost: BM25F scores of its postings, per block."""

    countable = True

    def __init__(self, view, field, term, boost, recall=False):
        self.view = view
        self.field = field
        self.term = term
        self.recall = recall  # a recall stream's term: left out of its clause's frequency
        self.stats = view.block_stats(field, term)
        self.df = view.doc_frequency(field, term)
        self.coef = boost * view.idf_of(self.df) * (K1 + 1)
        self.boost = boost

    def bound(self):
        return self.stats.best.astype(np.float64) * self.boost

    def doc_frequency(self):
        return self.df

    def present(self):
        return self.stats.hi > self.stats.lo

    def _rows(self, blocks):
        """[(part, blocks there, posting rows)] of `blocks` (ascending) that hold the term."""
        st = self.stats
        blocks = blocks[st.hi[blocks] > st.lo[blocks]]
        out = []
        if not len(blocks):
            return out
        parts = st.part[blocks]
        for k in np.unique(parts):
            b = blocks[parts == k]
            out.append((k, b, ranges(st.lo[b].astype(np.int64), st.hi[b].astype(np.int64))))
        return out

    def postings_in(self, blocks):
        """(docs, tf as float) of the term's postings in `blocks` (sorted ascending)."""
        docs_out, tf_out = [], []
        st = self.stats
        for k, b, rows in self._rows(blocks):
            f, i, _ = st.found[k]
            low, tf, _, _ = f.compact(i)
            base = np.repeat(self.view.block_base[b], st.hi[b] - st.lo[b])
            docs_out.append(base + low[rows])
            tf_out.append(tf[rows].astype(np.float64))
        if not docs_out:
            return EMPTY_DOCS, EMPTY_SCORES
        if len(docs_out) == 1:
            return docs_out[0], tf_out[0]
        return np.concatenate(docs_out), np.concatenate(tf_out)

    def scores(self, docs, tf):
        """BM25 of postings (docs, tf) of this term."""
        return self.coef * tf / (tf + self.view.norm[self.field][docs])

    def gather(self, blocks):
        """(docs, scores) of the term's postings in `blocks` (sorted ascending)."""
        docs, tf = self.postings_in(blocks)
        return docs, self.scores(docs, tf)

    def mark(self, mask):
        """Set `mask` at every document holding the term."""
        for f, i, offset in self.stats.found:
            low, _, run_blocks, run_counts = f.compact(i)
            kernels.mark(low, run_blocks, run_counts, query_file.BLOCK, offset, mask)

    def add(self, blocks, acc, touched, n):
        """Add the term's scores in `blocks` (ascending) into `acc` (see kernels.add_term)."""
        st = self.stats
        norm = self.view.norm[self.field]
        base = self.view.block_base
        if len(st.found) == 1:
            f, i, _ = st.found[0]
            low, tf, _, _ = f.compact(i)
            return kernels.add_term(low, tf, base, st.lo, st.hi, blocks, self.coef, norm, acc, touched, n)
        # `blocks` is ascending and a segment's blocks are consecutive: one slice per segment.
        bounds = np.searchsorted(blocks, st.part_blocks)
        for k, (f, i, offset) in enumerate(st.found):
            a, b = bounds[k]
            if b > a:
                low, tf, _, _ = f.compact(i)
                n = kernels.add_term(low, tf, base, st.lo, st.hi, blocks[a:b], self.coef, norm, acc, touched, n)
        return n

    def accumulate(self, blocks, scratch, m, w, rare):
        n = self.add(blocks, scratch.acc, scratch.touched, 0)
        return kernels.fold(scratch.acc, scratch.touched, n, scratch.total, scratch.count, scratch.weight,
                            scratch.total_touched, m, w, rare)

    def positions(self, candidates):
        """(counts, positions): how many positions each candidate document has and
        all of them, candidate after candidate. `candidates` (sorted) must hold the term."""
        st = self.stats
        view = self.view
        counts = np.zeros(len(candidates), np.int64)
        found = []
        for k, (f, i, _) in enumerate(st.found):
            b0, b1 = st.part_blocks[k]
            a, b = np.searchsorted(candidates, view.block_starts[[b0, b1]])
            if b <= a:
                continue
            low, tf, _, _ = f.compact(i)
            mine = candidates[a:b]
            starts = np.zeros(b - a, np.int64)
            kernels.locate(mine, view.block_of(mine), low, tf, view.block_base, st.lo, st.pos_lo, starts,
                           counts[a:b])
            found.append(f.positions_at(i, starts, counts[a:b])[1])
        return counts, (np.concatenate(found) if found else np.zeros(0, np.int64))

    def position_keys(self, docs):
        """Sorted doc << POSITION_BITS | position keys of the term in `docs` (sorted, unique)."""
        if not len(docs):
            return np.zeros(0, np.int64)
        held, _ = self.postings_in(np.unique(self.view.block_of(docs)))
        docs = docs[sorted_member(docs, held)]
        counts, positions = self.positions(docs)
        return (np.repeat(docs.astype(np.int64), counts) << POSITION_BITS) + positions


class UnionScorer:
    """Any of several scorers; a document's score is the sum of theirs."""

    def __init__(self, view, children):
        self.view = view
        self.children = list(children)
        self.countable = all(c.countable for c in self.children)

    def bound(self):
        return sum((c.bound() for c in self.children), np.zeros(self.view.block_count))

    def doc_frequency(self):
        # A word's forms (stem, exact, title) mostly find the same documents:
        # the largest of theirs stands for the union's. A recall stream's
        # term (a root, shared by many words) would make every word common.
        return max((c.doc_frequency() for c in self.children if not getattr(c, "recall", False)), default=0)

    def present(self):
        return np.logical_or.reduce([c.present() for c in self.children],
                                    initial=False) if self.children else np.zeros(self.view.block_count, bool)

    def gather(self, blocks):
        docs, scores, _ = merge([c.gather(blocks) for c in self.children])
        return docs, scores

    def mark(self, mask):
        for c in self.children:
            c.mark(mask)

    def accumulate(self, blocks, scratch, m, w, rare):
        """Add this clause's scores in `blocks` into the query's (scratch.total,
        and its weight `w` into scratch.weight; scratch.count if `rare`)."""
        if all(isinstance(c, TermScorer) for c in self.children):
            # A word: its terms add into one accumulator, in order, then fold in.
            n = 0
            for c in self.children:
                n = c.add(blocks, scratch.acc, scratch.touched, n)
            return kernels.fold(scratch.acc, scratch.touched, n, scratch.total, scratch.count, scratch.weight,
                                scratch.total_touched, m, w, rare)
        return _accumulate_gathered(self, blocks, scratch, m, w, rare)


def _accumulate_gathered(scorer, blocks, scratch, m, w, rare):
    docs, scores = scorer.gather(blocks)
    return kernels.fold_sparse(docs, scores, scratch.total, scratch.count, scratch.weight, scratch.total_touched,
                               m, w, rare)


class Scratch:
    """One thread's accumulators, as long as the collection, all zero between queries.

    Allocated with np.zeros (pages the OS hands out zeroed on first touch),
    so a thread only pays for the part of the collection its queries touch.
    """

    def __init__(self, n_docs):
        self.acc = np.zeros(n_docs)  # the current clause's scores
        self.touched = np.zeros(n_docs, np.int64)
        self.total = np.zeros(n_docs)  # the query's scores, summed over clauses
        self.count = np.zeros(n_docs, np.int16)  # rare clauses matched
        self.weight = np.zeros(n_docs)  # weight of the clauses matched (> 0 once matched)
        self.total_touched = np.zeros(n_docs, np.int64)
        self.mask = np.zeros(n_docs, dtype=bool)  # documents matching, for counting
        self.found = np.zeros(n_docs, np.int64)
        self.clean = True

    def take(self, view, blocks, m):
        """(docs ascending, scores, rare counts, weights) accumulated in `blocks`; the accumulators are cleared."""
        docs = np.empty(m, np.int64)
        scores = np.empty(m)
        counts = np.empty(m, np.int16)
        weights = np.empty(m)
        kernels.take_blocks(self.total, self.count, self.weight, view.block_starts, blocks, docs, scores, counts,
                            weights)
        return docs, scores, counts, weights

    def reset(self):
        self.acc[:] = 0
        self.total[:] = 0
        self.count[:] = 0
        self.weight[:] = 0
        self.mask[:] = False
        self.clean = True


class AllScorer:
    """Every one of several scorers (a typed token that is several words)."""

    countable = False

    def __init__(self, view, children):
        self.view = view
        self.children = children

    def bound(self):
        return sum(c.bound() for c in self.children)

    def present(self):
        return np.logical_and.reduce([c.present() for c in self.children])

    def doc_frequency(self):
        return min(c.doc_frequency() for c in self.children)

    def accumulate(self, blocks, scratch, m, w, rare):
        return _accumulate_gathered(self, blocks, scratch, m, w, rare)

    def gather(self, blocks):
        blocks = blocks[self.present()[blocks]]
        docs, scores, count = merge([c.gather(blocks) for c in self.children])
        every = count == len(self.children)
        return docs[every], scores[every]


class PhraseScorer:
    """Groups of forms at consecutive positions in one field (a form per position).

    A document's score is the BM25F of the phrase's terms in it, as for words;
    only documents where the positions line up match. Candidates first, rarest
    group first: positions are read only for documents holding every group.
    """

    countable = False

    def __init__(self, view, groups):
        self.view = view
        self.groups = groups  # [[TermScorer, ...] per position]
        self.terms = [t for g in groups for t in g]

    def bound(self):
        return sum(t.bound() for t in self.terms)

    def present(self):
        return np.logical_and.reduce([np.logical_or.reduce([t.present() for t in g]) for g in self.groups])

    def doc_frequency(self):
        # At most the rarest position's: an estimate from above, like a word's.
        return min(max(t.doc_frequency() for t in g) for g in self.groups)

    def accumulate(self, blocks, scratch, m, w, rare):
        return _accumulate_gathered(self, blocks, scratch, m, w, rare)

    def gather(self, blocks):
        blocks = blocks[self.present()[blocks]]
        if not len(blocks):
            return EMPTY_DOCS, EMPTY_SCORES
        if len(self.view.files) == 1 and all(len(g) == 1 and len(g[0].stats.found) == 1 for g in self.groups):
            return self._gather_compiled(blocks)
        postings = [[t.postings_in(blocks) for t in g] for g in self.groups]
        doc_sets = [g[0][0] if len(g) == 1 else np.unique(np.concatenate([d for d, _ in g]))
                    for g in postings]
        order = sorted(range(len(doc_sets)), key=lambda k: len(doc_sets[k]))
        candidates = doc_sets[order[0]]
        for k in order[1:]:
            if not len(candidates):
                break
            out = np.empty(len(candidates), np.int64)
            candidates = out[:kernels.intersect(candidates, doc_sets[k], out)]
        if not len(candidates):
            return EMPTY_DOCS, EMPTY_SCORES
        if all(len(g) == 1 for g in self.groups):
            matched = self._verify(candidates)
        else:
            matched = self._verify_forms(candidates)
        # Scores of the matched documents only, term by term as for words.
        parts = [(matched, np.zeros(len(matched)))]
        for g, terms in zip(postings, self.groups):
            for (docs, tf), term in zip(g, terms):
                keep = sorted_member(docs, matched)
                parts.append((docs[keep], term.scores(docs[keep], tf[keep])))
        docs, scores, _ = merge(parts)
        return docs, scores

    def _gather_compiled(self, blocks):
        """gather() for one query file and one form per position: one compiled pass."""
        terms = [g[0] for g in self.groups]
        f = terms[0].stats.found[0][0]
        post_base = np.array([f.post_starts[t.stats.found[0][1]] for t in terms], np.int64)
        pos_base = np.array([f.pos_starts[t.stats.found[0][1]] for t in terms], np.int64)
        lo = np.stack([t.stats.lo for t in terms]).astype(np.int64)
        hi = np.stack([t.stats.hi for t in terms]).astype(np.int64)
        pos_lo = np.stack([t.stats.pos_lo for t in terms])
        size = int((hi[0, blocks] - lo[0, blocks]).sum())
        docs_out = np.empty(size, np.int64)
        rows = np.empty((len(terms), size), np.int64)
        m = kernels.phrase_blocks(f.low, f.tf, f.positions, f.pos_exc, f.pos_high, post_base, pos_base, lo, hi,
                                  pos_lo, blocks, self.view.block_base, docs_out, rows)
        docs = docs_out[:m]
        # Scores as for words: the phrase's terms, in order, from zero.
        scores = np.zeros(m)
        for k, t in enumerate(terms):
            scores += t.scores(docs, f.tf[rows[k, :m]].astype(np.float64))
        return docs, scores

    def _verify(self, candidates):
        """The candidates (holding every word) where the words stand in order, one form each."""
        return candidates[in_sequence([g[0] for g in self.groups], candidates)]

    def _verify_forms(self, candidates):
        """As _verify, for groups of several forms (a dagger-alef word's two spellings)."""
        keys = None
        for g in self.groups:
            parts = [t.position_keys(candidates) for t in g]
            # One term's keys are already sorted and unique (doc, then position).
            group_keys = parts[0] if len(parts) == 1 else np.unique(np.concatenate(parts))
            keys = group_keys if keys is None else group_keys[sorted_member(group_keys, keys + 1)]
            if not len(keys):
                return EMPTY_DOCS
        return np.unique(keys >> POSITION_BITS)


def positions_table(terms, candidates):
    """(positions, offsets) of `terms` in `candidates` (sorted; each holds every
    term): term g's positions in candidate j are
    positions[offsets[g, j]:offsets[g, j + 1]], ascending, as the kernels read them."""
    offsets = np.zeros((len(terms), len(candidates) + 1), np.int64)
    found, total = [], 0
    for g, term in enumerate(terms):
        counts, positions = term.positions(candidates)
        found.append(positions)
        offsets[g, 0] = total
        offsets[g, 1:] = total + np.cumsum(counts)
        total = int(offsets[g, -1])
    return (np.concatenate(found) if found else np.zeros(0, np.int64)), offsets


def in_sequence(terms, candidates):
    """Mask over `candidates` (sorted; each holds every term): the terms stand
    at consecutive positions. Reads the positions of the candidates only."""
    matched = np.zeros(len(candidates), dtype=bool)
    kernels.phrase_check(*positions_table(terms, candidates), matched)
    return matched


def near(view, terms, candidates, window):
    """1 for each of `candidates` (sorted) where the two terms stand within
    `window` positions of each other (either order), else 0. Reads the
    positions of the candidates that hold both only."""
    close = np.zeros(len(candidates), np.int64)
    both = holding_all(view, terms, candidates)
    if len(both):
        hits = np.zeros(len(both), np.int64)
        kernels.near_pairs(*positions_table(terms, both), window, hits)
        close[np.searchsorted(candidates, both)] = hits
    return close


def holding_all(view, terms, docs):
    """The documents of `docs` (sorted) that hold every one of `terms`."""
    blocks = np.unique(view.block_of(docs))
    for term in terms:
        if not len(docs):
            break
        held, _ = term.postings_in(blocks)
        docs = docs[sorted_member(docs, held)]
    return docs


class Ranked:
    """What `top` found: the best documents (sorted by document), and the count."""

    def __init__(self):
        self.docs = EMPTY_DOCS
        self.scores = EMPTY_SCORES
        self.counts = EMPTY_COUNTS  # rare clauses matched
        self.weights = EMPTY_SCORES  # weight of the clauses matched
        self.total_weight = 0.0  # of all the query's clauses
        self.total = 0
        self.exact = True  # total is every match (else a lower bound)
        self.complete = True  # False when the deadline stopped the scoring
        self.counted = []  # documents counted, when counting was by blocks
        self.blocks_ranked = 0  # blocks scored for the ranking (the rest were skipped or only counted)


def top(view, scorers, keep, depth, deadline, sort="relevance", counted_exactly=None,
        track=TRACK_TOTAL_HITS, weights=None, rare=None):
    """The `depth` best documents for `scorers` (one per counted clause), ties included.

    `weights` and `rare` are the clauses' (see clause_weights); by default
    every clause weighs 1 and is rare.

    `keep(docs)` says which of a batch's documents may be returned (live,
    filters, exclusions). `counted_exactly` is the exact number of matches
    when the caller counted them from the postings; otherwise matches are
    counted by the blocks scored here, going on past the top k until `track`
    are counted (None: all of them) or every block is.
    """
    out = Ranked()
    weights = np.ones(len(scorers)) if weights is None else weights
    rare = np.ones(len(scorers), dtype=bool) if rare is None else rare
    out.total_weight = total_weight = float(weights.sum())
    present = np.zeros(view.block_count, np.int16)
    present_weight = np.zeros(view.block_count)
    rare_present = np.zeros(view.block_count, dtype=bool)
    bound = np.zeros(view.block_count)
    for s, w, r in zip(scorers, weights, rare):
        here = s.present()
        present += here
        present_weight += here * w
        if r:
            rare_present |= here
        bound += s.bound()
    if sort == "date":
        block_key = np.where(present > 0, view.block_max_date, -np.inf).astype(np.float64)
    else:
        # No document of a block matches more clauses than are present there.
        block_key = (rare_present * TIER + coordinated(bound * (1 + BOUND_MARGIN), present_weight, total_weight)
                     + BOUND_MARGIN)
    candidates = np.flatnonzero(present > 0)
    order = candidates[np.argsort(-block_key[candidates], kind="stable")]
    done = np.zeros(view.block_count, dtype=bool)
    threshold = -np.inf
    key = EMPTY_SCORES  # the ranking key of each kept document (out.docs)
    counting = counted_exactly is None
    batch = FIRST_BATCH
    i = 0
    while i < len(order):
        if deadline.passed():
            out.complete = False
            break
        if block_key[order[i]] < threshold:
            break  # no block left can reach the top `depth`
        blocks = order[i:i + batch]
        blocks = blocks[block_key[blocks] >= threshold]  # a prefix: `order` is by key
        i += len(blocks)
        out.blocks_ranked += len(blocks)
        blocks = np.sort(blocks)
        batch = min(batch * 2, MAX_BATCH)
        done[blocks] = True
        docs, scores, counts, matched = _score(view, scorers, blocks, weights, rare)
        ok = keep(docs)
        docs, scores, counts, matched = docs[ok], scores[ok], counts[ok], matched[ok]
        if counting:
            out.counted.append(docs)
            out.total += len(docs)
        out.docs = np.concatenate([out.docs, docs])
        out.scores = np.concatenate([out.scores, scores])
        out.counts = np.concatenate([out.counts, counts])
        out.weights = np.concatenate([out.weights, matched])
        # Keys of the kept documents are kept too: only a batch's new ones are computed.
        key = np.concatenate([key, _key(view, docs, scores, counts, matched, total_weight, sort)])
        if len(key) > depth:
            threshold = np.partition(key, len(key) - depth)[len(key) - depth]
            best = key >= threshold
            out.docs, out.scores, out.counts, out.weights, key = (out.docs[best], out.scores[best], out.counts[best],
                                                                  out.weights[best], key[best])
    if counting:
        # Past the top k, count on (no ranking) until the count is large
        # enough to be reported as a lower bound, or exact.
        rest = np.sort(candidates[~done[candidates]])
        start = 0
        while start < len(rest):
            if (track is not None and out.total >= track) or deadline.passed():
                out.exact = False
                break
            # As many blocks as the matches per block so far say are needed.
            per_block = max(out.total, 1) / max(int(done.sum()), 1)
            wanted = MAX_BATCH if track is None else 1.2 * (track - out.total) / per_block
            step = int(min(MAX_BATCH, max(FIRST_BATCH, wanted)))
            blocks = rest[start:start + step]
            done[blocks] = True
            start += step
            docs = _score(view, scorers, blocks, weights, rare)[0]
            docs = docs[keep(docs)]
            out.counted.append(docs)
            out.total += len(docs)
        if not out.complete:
            out.exact = False
    else:
        out.total = counted_exactly
    order = np.argsort(out.docs, kind="stable")
    out.docs, out.scores, out.counts, out.weights = (out.docs[order], out.scores[order], out.counts[order],
                                                     out.weights[order])
    return out


@contextmanager
def _scratch(view):
    """This thread's Scratch, all zero; left marked unclean if the work raises,
    so the next user zeroes it first."""
    scratch = view.scratch(Scratch)
    if not scratch.clean:
        scratch.reset()
    scratch.clean = False
    yield scratch
    scratch.clean = True


def matching(view, scorers):
    """Every live document matched by any of `scorers` (all countable), ascending."""
    with _scratch(view) as scratch:
        for s in scorers:
            s.mark(scratch.mask)
        m = kernels.collect(scratch.mask, view.live, scratch.found)
        return scratch.found[:m].copy()


def _score(view, scorers, blocks, weights, rare):
    """(docs, scores, rare clauses matched, weight matched) of the documents in `blocks` (ascending)."""
    with _scratch(view) as scratch:
        m = 0
        for s, w, r in zip(scorers, weights, rare):
            m = s.accumulate(blocks, scratch, m, w, r)
        return scratch.take(view, blocks, m)


def ranking_key(counts, scores):
    """The ranking's sort key from rare clauses matched and the (coordinated) score."""
    return (counts > 0) * TIER + scores


def _key(view, docs, scores, counts, weights, total_weight, sort):
    if sort == "date":
        return view.dates[docs].astype(np.float64)
    return ranking_key(counts, coordinated(scores, weights, total_weight))
