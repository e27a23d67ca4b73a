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
def block_stats(docs, tf, offset, edges, coef, norm, scored, lo, hi, best, pos_lo):
    """Per block [edges[k], edges[k + 1]) of local doc numbers: the rows of the
    postings there (lo, hi), their best BM25 score (when `scored`) and where
    their positions start (the sum of tf before them)."""
    r = 0
    n = docs.shape[0]
    positions = 0
    for k in range(edges.shape[0] - 1):
        lo[k] = r
        pos_lo[k] = positions
        top = 0.0
        end = edges[k + 1]
        while r < n and docs[r] < end:
            t = np.float64(tf[r])
            if scored:
                s = coef * t / (t + norm[docs[r] + offset])
                if s > top:
                    top = s
            positions += np.int64(tf[r])
            r += 1
        hi[k] = r
        best[k] = top


@njit(cache=True, nogil=True)
def add_term(docs, tf, offset, lo, hi, blocks, coef, norm, acc, touched, n):
    """Add one term's BM25 scores in `blocks` into `acc`; record newly touched docs.

    Returns the new count of `touched` (a document is touched when its
    accumulator leaves zero: BM25 scores are positive).
    """
    for j in range(blocks.shape[0]):
        b = blocks[j]
        for r in range(lo[b], hi[b]):
            d = docs[r] + offset
            t = np.float64(tf[r])
            if acc[d] == 0.0:
                touched[n] = d
                n += 1
            acc[d] += coef * t / (t + norm[d])
    return n


@njit(cache=True, nogil=True)
def fold(acc, touched, n, total, count, total_touched, m):
    """Add a clause's scores (acc at touched[:n]) into the query's; clear acc."""
    for k in range(n):
        d = touched[k]
        if count[d] == 0:
            total_touched[m] = d
            m += 1
        total[d] += acc[d]
        count[d] += 1
        acc[d] = 0.0
    return m


@njit(cache=True, nogil=True)
def fold_sparse(docs, scores, total, count, total_touched, m):
    """Add a clause's (docs, scores) into the query's."""
    for k in range(docs.shape[0]):
        d = docs[k]
        if count[d] == 0:
            total_touched[m] = d
            m += 1
        total[d] += scores[k]
        count[d] += 1
    return m


@njit(cache=True, nogil=True)
def mark(docs, offset, mask):
    """Set mask at every doc (+ offset)."""
    for r in range(docs.shape[0]):
        mask[docs[r] + offset] = True


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
def take_blocks(total, count, block_starts, blocks, docs, scores, counts):
    """Move the accumulated documents of `blocks` (ascending) out, in document order.

    Scans the blocks' document ranges instead of sorting what was touched.
    Returns how many; clears them.
    """
    m = 0
    for j in range(blocks.shape[0]):
        b = blocks[j]
        for d in range(block_starts[b], block_starts[b + 1]):
            if count[d]:
                docs[m] = d
                scores[m] = total[d]
                counts[m] = count[d]
                total[d] = 0.0
                count[d] = 0
                m += 1
    return m


@njit(cache=True, nogil=True)
def locate(cands, cand_blocks, docs, tf, lo, pos_lo, starts, counts):
    """Where the positions of each candidate document start, within one term.

    `cands` (ascending, local document numbers, every one holding the term)
    lie in blocks `cand_blocks`; a block's postings start at row lo[b] and
    its positions at pos_lo[b] (relative to the term's first). Walks each
    block's postings once, adding up frequencies.
    """
    block = -1
    r = 0
    acc = 0
    for j in range(cands.shape[0]):
        b = cand_blocks[j]
        if b != block:
            block = b
            r = lo[b]
            acc = pos_lo[b]
        while docs[r] < cands[j]:
            acc += np.int64(tf[r])
            r += 1
        starts[j] = acc
        counts[j] = np.int64(tf[r])


@njit(cache=True, nogil=True)
def _holds(positions, a, b, want):
    """Whether the sorted positions[a:b] hold `want` (binary search)."""
    end = b
    while a < b:
        mid = (a + b) >> 1
        if positions[mid] < want:
            a = mid + 1
        else:
            b = mid
    return a < end and positions[a] == want


@njit(cache=True, nogil=True)
def phrase_check(positions, offsets, matched, gap):
    """For each candidate j: does a position p of group 0 have p + g in group g, for every g?

    With `gap`, p + 2g also counts (the stemmed stream keeps a stopword's
    position, so two words may stand one stopword apart). Group g's positions
    of candidate j are positions[offsets[g, j]:offsets[g, j + 1]], ascending.
    Sets matched[j].
    """
    groups = offsets.shape[0]
    for j in range(offsets.shape[1] - 1):
        found = False
        for r in range(offsets[0, j], offsets[0, j + 1]):
            p = positions[r]
            every = True
            for g in range(1, groups):
                a = offsets[g, j]
                b = offsets[g, j + 1]
                if not (_holds(positions, a, b, p + g) or (gap and _holds(positions, a, b, p + 2 * g))):
                    every = False
                    break
            if every:
                found = True
                break
        matched[j] = found


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
def phrase_blocks(docs, tf, positions, post_base, pos_base, lo, hi, pos_lo, blocks, out_docs, out_rows):
    """Documents in `blocks` where terms 0..k-1 stand at consecutive positions.

    All terms are in one field of one query file: their postings are the
    rows post_base[t] + lo[t, b] .. post_base[t] + hi[t, b] of `docs`/`tf`
    in block b, and their positions start at pos_base[t] + pos_lo[t, b] in
    `positions`. Walks the terms' postings together (a merge join on the
    document), and for a document holding all of them checks the positions
    of term 0 against the others by binary search. Writes each match's
    document and its row per term (for scoring); returns how many.
    """
    k = post_base.shape[0]
    r = np.zeros(k, np.int64)
    end = np.zeros(k, np.int64)
    p = np.zeros(k, np.int64)
    m = 0
    for j in range(blocks.shape[0]):
        b = blocks[j]
        for t in range(k):
            r[t] = post_base[t] + lo[t, b]
            end[t] = post_base[t] + hi[t, b]
            p[t] = pos_base[t] + pos_lo[t, b]
        while True:
            done = False
            top = -1
            for t in range(k):
                if r[t] >= end[t]:
                    done = True
                    break
                if docs[r[t]] > top:
                    top = docs[r[t]]
            if done:
                break
            behind = False
            for t in range(k):
                while r[t] < end[t] and docs[r[t]] < top:
                    p[t] += np.int64(tf[r[t]])
                    r[t] += 1
                if r[t] >= end[t]:
                    behind = True
                elif docs[r[t]] != top:
                    behind = True
            if behind:
                continue
            # Every term is in document `top`: check the positions.
            found = False
            n0 = np.int64(tf[r[0]])
            for a in range(p[0], p[0] + n0):
                x = positions[a]
                every = True
                for t in range(1, k):
                    lo_i = p[t]
                    hi_i = p[t] + np.int64(tf[r[t]])
                    want = x + t
                    while lo_i < hi_i:
                        mid = (lo_i + hi_i) >> 1
                        if positions[mid] < want:
                            lo_i = mid + 1
                        else:
                            hi_i = mid
                    if lo_i == p[t] + np.int64(tf[r[t]]) or positions[lo_i] != want:
                        every = False
                        break
                if every:
                    found = True
                    break
            if found:
                out_docs[m] = top
                for t in range(k):
                    out_rows[t, m] = r[t]
                m += 1
            for t in range(k):
                p[t] += np.int64(tf[r[t]])
                r[t] += 1
    return m
