"""The query path's inner loops, compiled (numba): one pass over postings each.

numpy runs a loop over postings as a chain of whole-array operations, each
making a temporary array; scoring a block of postings took a dozen of them.
These loops read the memory-mapped postings once and add into the caller's
arrays. Pure numeric code: no Whoosh, no Flask, no engine state.

`nogil`: gunicorn's threads score queries on both cores at once. `cache`:
compiled once per installation (numba keeps the machine code next to this
module, or in NUMBA_CACHE_DIR when that folder is not writable).

BM25 as Whoosh computes it: coef * tf / (tf + norm[doc]), where coef is
boost * idf * (K1 + 1) and norm the document's length normalisation
(search_app.index_view); the same expression, in the same order, as the
numpy path, so both give the same floats.
"""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def block_stats(low, tf, run_blocks, run_counts, run_docs, offset, b0, block_docs, coef, norm, scored,
                lo, hi, best, pos_lo):
    """One term's postings in one query file (stored as runs: a run's
    postings are in documents run_blocks[j] * run_docs + low, see
    indexer.query_file), per scoring block of `block_docs` documents (view
    block b0 + local doc // block_docs; block_docs divides run_docs): the rows
    of the postings there (lo, hi), their best BM25 score (when `scored`) and
    where their positions start (the sum of tf before them). Blocks without
    postings are left as they are (zero)."""
    r = 0
    positions = 0
    block = -1
    top = 0.0
    whole = block_docs == run_docs  # a run is a scoring block: no division per posting
    for j in range(run_blocks.shape[0]):
        base = np.int64(run_blocks[j]) * run_docs
        end = r + np.int64(run_counts[j]) + 1
        while r < end:
            local = base + low[r]
            b = b0 + np.int64(run_blocks[j]) if whole else b0 + local // block_docs
            if b != block:
                if block >= 0:
                    hi[block] = r
                    best[block] = top
                block = b
                lo[b] = r
                pos_lo[b] = positions
                top = 0.0
            t = np.float64(tf[r])
            if scored:
                s = coef * t / (t + norm[local + offset])
                if s > top:
                    top = s
            positions += np.int64(tf[r])
            r += 1
    if block >= 0:
        hi[block] = r
        best[block] = top


@njit(cache=True, nogil=True)
def add_term(low, tf, block_base, lo, hi, blocks, coef, norm, acc, touched, n):
    """Add one term's BM25 scores in `blocks` into `acc`; record newly touched docs.

    The postings of block b are rows lo[b]:hi[b], in documents
    block_base[b] + low[row]. Returns the new count of `touched` (a document
    is touched when its accumulator leaves zero: BM25 scores are positive).
    """
    for j in range(blocks.shape[0]):
        b = blocks[j]
        base = block_base[b]
        for r in range(lo[b], hi[b]):
            d = base + low[r]
            t = np.float64(tf[r])
            if acc[d] == 0.0:
                touched[n] = d
                n += 1
            acc[d] += coef * t / (t + norm[d])
    return n


@njit(cache=True, nogil=True)
def fold(acc, touched, n, total, count, weight, total_touched, m, w, rare):
    """Add a clause's scores (acc at touched[:n]) into the query's; clear acc.

    Each document also gets the clause's weight `w` (> 0) into `weight`, the
    coordination of search_app.scoring, and, for a `rare` clause, one more
    into `count`. A document is new to the query while its weight is zero.
    """
    for k in range(n):
        d = touched[k]
        if weight[d] == 0.0:
            total_touched[m] = d
            m += 1
        total[d] += acc[d]
        weight[d] += w
        if rare:
            count[d] += 1
        acc[d] = 0.0
    return m


@njit(cache=True, nogil=True)
def fold_sparse(docs, scores, total, count, weight, total_touched, m, w, rare):
    """Add a clause's (docs, scores) into the query's, as `fold` does."""
    for k in range(docs.shape[0]):
        d = docs[k]
        if weight[d] == 0.0:
            total_touched[m] = d
            m += 1
        total[d] += scores[k]
        weight[d] += w
        if rare:
            count[d] += 1
    return m


@njit(cache=True, nogil=True)
def mark(low, run_blocks, run_counts, run_docs, offset, mask):
    """Set mask at every document of a term's postings (runs, see block_stats), + offset."""
    r = 0
    for j in range(run_blocks.shape[0]):
        base = offset + np.int64(run_blocks[j]) * run_docs
        end = r + np.int64(run_counts[j]) + 1
        while r < end:
            mask[base + low[r]] = True
            r += 1


@njit(cache=True, nogil=True)
def collect(mask, allowed, out):
    """Documents set in `mask` and in `allowed`, ascending, into `out`; clears `mask`.

    Returns how many. One pass over the collection, no temporary arrays.
    """
    m = 0
    for d in range(mask.shape[0]):
        if mask[d]:
            mask[d] = False
            if allowed[d]:
                out[m] = d
                m += 1
    return m


@njit(cache=True, nogil=True)
def count_single(docs, value, counts):
    """counts[value[d]] += 1 for each d (a field with at most one value per document)."""
    for k in range(docs.shape[0]):
        counts[value[docs[k]]] += 1


@njit(cache=True, nogil=True)
def count_multi(docs, starts, ids, counts):
    """counts[v] += 1 for each value v of each d (values of d: ids[starts[d]:starts[d + 1]])."""
    for k in range(docs.shape[0]):
        d = docs[k]
        for r in range(starts[d], starts[d + 1]):
            counts[ids[r]] += 1


@njit(cache=True, nogil=True)
def take_blocks(total, count, weight, block_starts, blocks, docs, scores, counts, weights):
    """Move the accumulated documents of `blocks` (ascending) out, in document order.

    Scans the blocks' document ranges instead of sorting what was touched.
    Returns how many; clears them.
    """
    m = 0
    for j in range(blocks.shape[0]):
        b = blocks[j]
        for d in range(block_starts[b], block_starts[b + 1]):
            if weight[d] != 0.0:
                docs[m] = d
                scores[m] = total[d]
                counts[m] = count[d]
                weights[m] = weight[d]
                total[d] = 0.0
                count[d] = 0
                weight[d] = 0.0
                m += 1
    return m


@njit(cache=True, nogil=True)
def locate(cands, cand_blocks, low, tf, block_base, lo, pos_lo, starts, counts):
    """Where the positions of each candidate document start, within one term.

    `cands` (ascending, every one holding the term) lie in blocks
    `cand_blocks`; a block's postings start at row lo[b], in documents
    block_base[b] + low[row], and its positions at pos_lo[b] (relative to
    the term's first). Walks each block's postings once, adding up
    frequencies.
    """
    block = -1
    r = 0
    acc = 0
    base = 0
    for j in range(cands.shape[0]):
        b = cand_blocks[j]
        if b != block:
            block = b
            r = lo[b]
            acc = pos_lo[b]
            base = block_base[b]
        while base + low[r] < cands[j]:
            acc += np.int64(tf[r])
            r += 1
        starts[j] = acc
        counts[j] = np.int64(tf[r])


@njit(cache=True, nogil=True)
def _holds(positions, a, b, want):
    """Whether the sorted positions[a:b] hold `want` (binary search)."""
    i = _lower_bound(positions, a, b, want)
    return i < b and positions[i] == want


@njit(cache=True, nogil=True)
def phrase_check(positions, offsets, matched):
    """For each candidate j: does a position p of group 0 have p + g in group g, for every g?

    Group g's positions of candidate j are positions[offsets[g, j]:offsets[g, j + 1]],
    ascending. Sets matched[j].
    """
    groups = offsets.shape[0]
    for j in range(offsets.shape[1] - 1):
        found = False
        for r in range(offsets[0, j], offsets[0, j + 1]):
            p = positions[r]
            every = True
            for g in range(1, groups):
                if not _holds(positions, offsets[g, j], offsets[g, j + 1], p + g):
                    every = False
                    break
            if every:
                found = True
                break
        matched[j] = found


@njit(cache=True, nogil=True)
def near_pairs(positions, offsets, window, close):
    """For each candidate j: how many neighbouring groups (g, g + 1) stand
    within `window` positions of each other, in either order.

    Group g's positions of candidate j are positions[offsets[g, j]:offsets[g, j + 1]],
    ascending (as for phrase_check); adds the count into close[j].
    """
    groups = offsets.shape[0]
    for j in range(offsets.shape[1] - 1):
        for g in range(groups - 1):
            a, a_end = offsets[g, j], offsets[g, j + 1]
            b, b_end = offsets[g + 1, j], offsets[g + 1, j + 1]
            # Walk both sorted lists at once: the nearest pair is between neighbours.
            while a < a_end and b < b_end:
                gap = positions[b] - positions[a]
                if gap != 0 and -window <= gap <= window:
                    close[j] += 1
                    break
                if positions[a] < positions[b]:
                    a += 1
                else:
                    b += 1


@njit(cache=True, nogil=True)
def intersect(a, b, out):
    """The values in both sorted arrays `a` and `b` (each without repeats), into `out`; returns how many."""
    i = 0
    j = 0
    m = 0
    while i < a.shape[0] and j < b.shape[0]:
        if a[i] < b[j]:
            i += 1
        elif a[i] > b[j]:
            j += 1
        else:
            out[m] = a[i]
            m += 1
            i += 1
            j += 1
    return m


@njit(cache=True, nogil=True)
def _lower_bound(values, a, b, want):
    """The first index in a..b-1 of the sorted `values` with values[i] >= want (b if none)."""
    while a < b:
        mid = (a + b) >> 1
        if values[mid] < want:
            a = mid + 1
        else:
            b = mid
    return a


@njit(cache=True, nogil=True)
def _in_order(values, first, count, k):
    """Whether a value x of values[first[0]:first[0] + count[0]] has x + t in
    values[first[t]:first[t] + count[t]] for every t < k (each range ascending)."""
    for a in range(first[0], first[0] + count[0]):
        x = np.int64(values[a])
        every = True
        for t in range(1, k):
            i = _lower_bound(values, first[t], first[t] + count[t], x + t)
            if i == first[t] + count[t] or np.int64(values[i]) != x + t:
                every = False
                break
        if every:
            return True
    return False


@njit(cache=True, nogil=True)
def phrase_blocks(low, tf, positions, exc, high, post_base, pos_base, lo, hi, pos_lo, blocks, block_base,
                  out_docs, out_rows):
    """Documents in `blocks` where terms 0..k-1 stand at consecutive positions.

    All terms are in one field of one query file: their postings are the
    rows post_base[t] + lo[t, b] .. post_base[t] + hi[t, b] of `low`/`tf`
    in block b (documents block_base[b] + low[row]), and their positions
    start at pos_base[t] + pos_lo[t, b] in `positions`: the positions
    themselves, or their low bytes with the high bits of those >= 256 aside
    (position exc[e] has high[e] << 8 more; indexer.query_file). Walks the
    terms' postings together (a merge join on the document), and for a
    document holding all of them checks the positions of term 0 against the
    others by binary search (_in_order). Writes each match's document and its
    row per term (for scoring); returns how many.
    """
    k = post_base.shape[0]
    r = np.zeros(k, np.int64)
    end = np.zeros(k, np.int64)
    p = np.zeros(k, np.int64)
    # Term t's split positions from p[t] on start at exc[e0[t]] = nx[t] (moved
    # forward with p[t]: a search per block, then a step per split position).
    e0 = np.zeros(k, np.int64)
    nx = np.zeros(k, np.int64)
    n_exc = exc.shape[0]
    split = n_exc > 0
    end_of_positions = positions.shape[0]
    n = np.zeros(k, np.int64)  # the current postings' frequencies
    q = np.zeros(k, np.int64)
    buf = np.empty(0, np.int64)
    m = 0
    for j in range(blocks.shape[0]):
        b = blocks[j]
        for t in range(k):
            r[t] = post_base[t] + lo[t, b]
            end[t] = post_base[t] + hi[t, b]
            p[t] = pos_base[t] + pos_lo[t, b]
            if split:
                e0[t] = _lower_bound(exc, e0[t], n_exc, p[t])
                nx[t] = exc[e0[t]] if e0[t] < n_exc else end_of_positions
        while True:
            done = False
            top = -1
            for t in range(k):
                if r[t] >= end[t]:
                    done = True
                    break
                if np.int64(low[r[t]]) > top:
                    top = np.int64(low[r[t]])
            if done:
                break
            behind = False
            for t in range(k):
                while r[t] < end[t] and np.int64(low[r[t]]) < top:
                    p[t] += np.int64(tf[r[t]])
                    r[t] += 1
                if r[t] >= end[t]:
                    behind = True
                elif np.int64(low[r[t]]) != top:
                    behind = True
            if behind:
                continue
            # Every term is in document `top`: check the positions.
            for t in range(k):
                n[t] = np.int64(tf[r[t]])
            if split:
                # Positions >= 256 in these postings (rare): nx[t] < p[t] + n[t].
                spread = False
                for t in range(k):
                    while nx[t] < p[t]:
                        e0[t] += 1
                        nx[t] = exc[e0[t]] if e0[t] < n_exc else end_of_positions
                    if nx[t] < p[t] + n[t]:
                        spread = True
                if spread:
                    # Decode them: low bytes plus high bits, into `buf`.
                    total = 0
                    for t in range(k):
                        total += n[t]
                    if buf.shape[0] < total:
                        buf = np.empty(2 * total, np.int64)
                    at = 0
                    for t in range(k):
                        q[t] = at
                        e = e0[t]
                        for a in range(p[t], p[t] + n[t]):
                            value = np.int64(positions[a])
                            if e < n_exc and exc[e] == a:
                                value += np.int64(high[e]) << 8
                                e += 1
                            buf[at] = value
                            at += 1
                    found = _in_order(buf, q, n, k)
                else:
                    found = _in_order(positions, p, n, k)
            else:
                found = _in_order(positions, p, n, k)
            if found:
                out_docs[m] = block_base[b] + top
                for t in range(k):
                    out_rows[t, m] = r[t]
                m += 1
            for t in range(k):
                p[t] += np.int64(tf[r[t]])
                r[t] += 1
    return m
