"""tantivy as a peer of arsearch, fed arsearch's own analysed terms (bench/peers.py).

tantivy (PyPI `tantivy`, the Rust engine's official bindings, version pinned
below) does no morphology here: every document is analysed by
`indexer.analysis.analyze`, the function arsearch's index is built from, and
handed over pre-tokenized (`tantivy.PreTokenizedString`) with arsearch's own
positions and offsets. So the two engines index the same terms at the same
positions, and what differs is the engine:

    field         tokens                                   as in schema.py
    title, text   stems (stopwords left out, their         ArabicTextField(stemmed=True);
                  positions kept as gaps); stored: the      the original text stored
                  original text
    title_exact,  exact (normalized) forms, a dagger-alef   ArabicTextField(stemmed=False)
    text_exact    word's two spellings at one position
    id            the record's id, stored ("raw")          ID(stored=True)

Pre-tokenized rather than a whitespace-joined string: joining would give the
second spelling of a dagger-alef word a position of its own and close the
gaps stopwords leave in the stemmed stream, so phrases and positions would
no longer be arsearch's. The fields' tokenizer is "whitespace" (lowercasing
and stemming off); queries never go through it, they are built term by term.

Queries are parsed by arsearch's parser (`search_app.query.parse`) and
analysed the same way. A word matches its stem in title/text or its exact
form in title_exact/text_exact, each a TermQuery wrapped in a BoostQuery with
the boost of `schema.FIELD_BOOSTS`; the words of a query are OR-ed (SHOULD),
as arsearch counts a document that matches any word; unquoted stopwords are
left out when the query has other words (arsearch's own rule). A quoted
phrase is a PhraseQuery on title_exact and text_exact. tantivy scores each
field with BM25 (k1 1.2, b 0.75) and adds the boosted scores up, as
arsearch sums boosted per-field BM25; arsearch also ranks documents that
match more of the words first, which tantivy's scoring only approximates.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

TANTIVY_VERSION = "0.27.0"
HEAP_BYTES = 256_000_000  # the writer's memory budget, split between its threads
TOKENIZER = "whitespace"


def ensure_installed() -> None:
    """Install the pinned tantivy into this interpreter's environment if it is not there.

    pip's output goes to stderr: stdout belongs to the benchmark's report.
    """
    try:
        installed = importlib.metadata.version("tantivy")
    except importlib.metadata.PackageNotFoundError:
        installed = None
    if installed == TANTIVY_VERSION:
        return
    print(f"peers: installing tantivy=={TANTIVY_VERSION} (found {installed})", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", f"tantivy=={TANTIVY_VERSION}"],
                   stdout=sys.stderr, check=True)
    importlib.invalidate_caches()


def build_schema():
    import tantivy

    b = tantivy.SchemaBuilder()
    b.add_text_field("id", stored=True, tokenizer_name="raw", index_option="basic")
    for name in ("title", "text"):
        b.add_text_field(name, stored=True, tokenizer_name=TOKENIZER, index_option="position")
        b.add_text_field(f"{name}_exact", stored=False, tokenizer_name=TOKENIZER,
                         index_option="position")
    return b.build()


def _streams(text: str):
    """(stem tokens, exact tokens) of `text` as tantivy Tokens, arsearch's positions and offsets."""
    from tantivy import Token

    from indexer.analysis import analyze

    stems, exacts = [], []
    for t in analyze(text):
        exacts.append(Token(t.exact, t.position, t.start, t.end))
        if t.stem is not None:
            stems.append(Token(t.stem, t.position, t.start, t.end))
    return stems, exacts


def document(record: dict):
    from tantivy import Document, PreTokenizedString

    doc = Document()
    doc.add_text("id", record["id"])
    for name in ("title", "text"):
        value = record.get(name) or ""
        stems, exacts = _streams(value)
        # The stemmed field stores the original text, as arsearch's does.
        doc.add_pre_tokenized_text(name, PreTokenizedString(value, stems))
        doc.add_pre_tokenized_text(f"{name}_exact", PreTokenizedString(value, exacts))
    return doc


def build(jsonl, out) -> tuple:
    """Index a JSON Lines file into `out`, from opening the file to the end of the merges.

    Returns (seconds, documents, seconds spent reading and analysing records
    in Python, on this one thread, while tantivy's writer threads index).
    """
    import tantivy

    start = time.perf_counter()
    index = tantivy.Index(build_schema(), path=str(out))
    writer = index.writer(heap_size=HEAP_BYTES)  # num_threads=0: tantivy's choice
    n = 0
    python = 0.0
    with open(jsonl, encoding="utf-8") as f:
        for line in f:
            t0 = time.perf_counter()
            doc = document(json.loads(line))
            python += time.perf_counter() - t0
            writer.add_document(doc)
            n += 1
    writer.commit()
    writer.wait_merging_threads()
    return time.perf_counter() - start, n, python


class Searcher:
    """Top 10 ids (and, unless count=False, the number of matches) for one query string."""

    def __init__(self, index_dir):
        import tantivy

        self.index = tantivy.Index.open(str(Path(index_dir)))
        self.index.reload()
        self.searcher = self.index.searcher()
        self.schema = self.index.schema

    def doc_count(self) -> int:
        return self.searcher.num_docs

    def search(self, q: str, limit: int = 10, count: bool = True) -> tuple:
        result = self.searcher.search(self.query(q), limit, count=count)
        ids = [self.searcher.doc(address)["id"][0] for _, address in result.hits]
        return result.count, ids

    # -- query translation

    def query(self, q: str):
        from tantivy import Occur, Query

        from search_app.query import Phrase, counted_clauses, parse

        parsed = parse(q)
        if parsed.negative or parsed.sources:
            raise ValueError(f"peer_tantivy: exclusions and source: are not translated: {q!r}")
        # arsearch's rule for which clauses count (unquoted stopwords don't,
        # when there are other words).
        counted = counted_clauses(parsed)
        clauses = []
        for clause, counts in zip(parsed.positive, counted):
            if not counts:
                continue
            options = [self._phrase(a) if isinstance(a, Phrase) else self._word(a)
                       for a in clause.options]
            options = [o for o in options if o is not None]
            if options:
                clauses.append(options[0] if len(options) == 1 else
                               Query.boolean_query([(Occur.Should, o) for o in options]))
        if not clauses:
            return Query.empty_query()
        return clauses[0] if len(clauses) == 1 else \
            Query.boolean_query([(Occur.Should, c) for c in clauses])

    def _boosted(self, field, term):
        from tantivy import Query

        from schema import FIELD_BOOSTS

        return Query.boost_query(Query.term_query(self.schema, field, term), FIELD_BOOSTS[field])

    def _word(self, atom):
        from tantivy import Occur, Query

        from indexer.analysis import analyze

        if atom.prefix or atom.fuzzy:
            raise ValueError(f"peer_tantivy: prefix* and typo~ are not translated: {atom.text!r}")
        scope = ("title",) if atom.field == "title" else ("text", "title")
        by_position = {}
        for t in analyze(atom.text):
            by_position.setdefault(t.position, []).append(t)
        parts = []
        # A typed token that analyses into several words (a ligature) needs
        # all of them, as in arsearch; two forms at one position are either-or.
        for tokens in by_position.values():
            stems = {t.stem for t in tokens if t.stem is not None}
            exacts = {t.exact for t in tokens}
            terms = [self._boosted(s, st) for s in scope for st in sorted(stems)]
            terms += [self._boosted(f"{s}_exact", e) for s in scope for e in sorted(exacts)]
            parts.append(Query.boolean_query([(Occur.Should, t) for t in terms]))
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else Query.boolean_query([(Occur.Must, p) for p in parts])

    def _phrase(self, atom):
        from tantivy import Occur, Query

        from indexer.analysis import analyze
        from schema import FIELD_BOOSTS

        scope = ("title",) if atom.field == "title" else ("text", "title")
        positions = {}
        for t in analyze(atom.text):
            positions.setdefault(t.position, []).append(t.exact)
        if not positions:
            return None
        first = min(positions)
        groups = [[(p - first, e) for e in dict.fromkeys(positions[p])] for p in sorted(positions)]
        if len(groups) == 1:  # one word in quotes: a term, as arsearch's phrase of one word
            return Query.boolean_query([(Occur.Should, self._boosted(f"{s}_exact", e))
                                        for s in scope for _, e in groups[0]])
        queries = []
        for s in scope:
            field = f"{s}_exact"
            # Typed text has no dagger alef, so a group has one spelling;
            # should one have two, each combination is a phrase of its own.
            for words in itertools.product(*groups):
                queries.append(Query.boost_query(Query.phrase_query(self.schema, field, list(words)),
                                                 FIELD_BOOSTS[field]))
        return Query.boolean_query([(Occur.Should, q) for q in queries])
