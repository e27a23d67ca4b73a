"""Relevance dev sets for bench/relevance.py, built from data available offline.

Each split is a `Split`: the documents to index (indexer records), the queries
(id -> text) and the judgments (query id -> {document id: grade}).

- news-title, news-drop, news-typo (known item): ANT news (`--news PATH`,
  never read by default). Every article is indexed WITHOUT its title; the
  title is the query and its article the one relevant document. news-drop
  leaves one word out of the title, news-typo misspells one word (two
  neighbouring letters swapped, or one letter dropped), as people remember
  headlines. The same seeded sample of articles feeds the three splits.
- hadith-chapters (topical): the chapter headings of the five hadith
  collections that bench/corpus.py installs, the hadiths of that chapter the
  relevant documents, every hadith indexed WITHOUT chapter title or tag.
- questions-dev, questions-test: hand-written questions over the Qur'an
  (one document per ayah, ids as corpus.py makes them) and the bundled
  sample, from bench/data/questions.jsonl.

`python bench/devsets.py [--news PATH]` prints the size of each split and a
few of its queries.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
for _p in (str(ROOT), str(BENCH)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

QUESTIONS = BENCH / "data" / "questions.jsonl"
SAMPLE = ROOT / "indexer" / "data" / "sample" / "documents.jsonl"

NEWS_SPLITS = ("news-title", "news-drop", "news-typo")
DEFAULT_SPLITS = (*NEWS_SPLITS, "hadith-chapters", "questions-dev")
ALL_SPLITS = (*DEFAULT_SPLITS, "questions-test")

NEWS_QUERIES = 1_000
NEWS_SEED = 9  # issue 9
MIN_TITLE_WORDS = 3  # so a title with a word dropped still has two
MIN_TYPO_LETTERS = 4  # a word shorter than this is not misspelled (too easily another word)

ARABIC_LETTER = re.compile("[\u0621-\u063a\u0641-\u064a]")
# Harakat (FATHATAN .. SUKUN and the rarer marks up to U+065F), ARABIC LETTER
# SUPERSCRIPT ALEF, TATWEEL and the direction marks: dropped from headings,
# which are labels, never from a document's text.
_MARKS = re.compile("[\u064b-\u065f\u0670\u0640\u200e\u200f]")


@dataclass
class Split:
    name: str
    documents: list  # indexer records
    queries: dict  # query id -> text
    qrels: dict  # query id -> {doc id: grade}
    notes: list = field(default_factory=list)

    def check(self):
        ids = {d["id"] for d in self.documents}
        missing = {doc for rel in self.qrels.values() for doc in rel if doc not in ids}
        if missing:
            raise ValueError(f"{self.name}: judged documents not in the corpus: {sorted(missing)[:10]}")
        if set(self.queries) != set(self.qrels):
            raise ValueError(f"{self.name}: queries without judgments or judgments without queries")
        return self


def plain(text: str) -> str:
    return " ".join(_MARKS.sub("", text).split())


# --- news -----------------------------------------------------------------

def read_news(path) -> list:
    from peers import read_news as _read  # one reader for ANT news in bench/

    return _read(path)


def _query_words(title: str) -> list:
    # ASCII quotes would make the whole title a phrase for arsearch; people
    # retyping a headline leave them out. Typographic quotes stay (they are
    # punctuation to every analyzer here).
    return title.replace('"', " ").split()


def drop_word(words: list, rng: random.Random) -> list:
    """The title with one word left out (any position; punctuation is not a word)."""
    k = rng.choice([i for i, w in enumerate(words) if any(c.isalnum() for c in w)])
    return words[:k] + words[k + 1:]


def misspell(words: list, rng: random.Random):
    """One word misspelled: two neighbouring letters swapped, or one inner letter dropped.

    Only words of MIN_TYPO_LETTERS Arabic letters or more are touched; returns
    None when the title has none. The first letter stays (people rarely get it
    wrong); a swap of two equal letters is not a typo, so the next pair is used.
    """
    candidates = [i for i, w in enumerate(words)
                  if len(w) >= MIN_TYPO_LETTERS and all(ARABIC_LETTER.fullmatch(c) for c in w)]
    if not candidates:
        return None
    i = rng.choice(candidates)
    w = words[i]
    if rng.random() < 0.5:
        pairs = [j for j in range(1, len(w) - 1) if w[j] != w[j + 1]]
        if pairs:
            j = rng.choice(pairs)
            w = w[:j] + w[j + 1] + w[j] + w[j + 2:]
        else:
            j = rng.randrange(1, len(w))
            w = w[:j] + w[j + 1:]
    else:
        j = rng.randrange(1, len(w))
        w = w[:j] + w[j + 1:]
    return words[:i] + [w] + words[i + 1:]


def news_splits(articles, n_queries=NEWS_QUERIES, seed=NEWS_SEED) -> dict:
    """The three known-item splits over one corpus of titleless articles.

    Queries come from articles whose title has MIN_TITLE_WORDS words or more
    and is unique in the corpus (a title shared by two articles has no single
    right answer); a seeded sample of `n_queries` of them, the same articles
    in all three splits (news-typo skips a title with no word to misspell).
    """
    docs, titles = [], {}
    for a in articles:
        if not a["text"].strip():
            continue
        docs.append({"id": a["id"], "title": "", "text": a["text"],
                     "source": a.get("source") or "", "tags": list(a.get("tags") or [])})
        title = " ".join(_query_words(a.get("title") or ""))
        if title:
            titles.setdefault(title, []).append(a["id"])
    eligible = sorted((ids[0], t) for t, ids in titles.items()
                      if len(ids) == 1 and len(t.split()) >= MIN_TITLE_WORDS)
    rng = random.Random(seed)
    chosen = rng.sample(eligible, min(n_queries, len(eligible)))
    chosen.sort()
    out = {name: Split(name, docs, {}, {}) for name in NEWS_SPLITS}
    for doc_id, title in chosen:
        words = title.split()
        # One generator per article: a split's query does not depend on the others'.
        local = random.Random(f"{seed}:{doc_id}")
        variants = {"news-title": words, "news-drop": drop_word(words, local),
                    "news-typo": misspell(words, local)}
        for name, variant in variants.items():
            if variant:
                out[name].queries[doc_id] = " ".join(variant)
                out[name].qrels[doc_id] = {doc_id: 1}
    for s in out.values():
        s.notes.append(f"{len(docs)} articles indexed without titles; {len(eligible)} eligible titles, "
                       f"{len(s.queries)} queries (seed {seed})")
    return out


# --- hadith chapters ----------------------------------------------------------

HEADING_PREFIXES = ("كتاب", "أبواب", "باب")
# Al-Tirmidhi's headings end with "from the Messenger of God ..." (one is cut short):
# part of the label, not of the topic.
HEADING_SUFFIX = re.compile(r"\s*عن رسول الله صلى الله( عليه وسلم)?$")
# Headings that name a part of the book, not a topic: no hadith is "about" them.
GENERIC_HEADINGS = {"المقدمة"}


def heading_query(heading: str):
    """The query a chapter heading gives, or None when it is dropped.

    Harakat removed, the leading كتاب / أبواب / باب removed, al-Tirmidhi's
    trailing "عن رسول الله صلى الله عليه وسلم" removed; dropped when nothing
    is left or what is left is in GENERIC_HEADINGS.
    """
    words = plain(heading).split()
    if words and words[0] in HEADING_PREFIXES:
        words = words[1:]
    text = HEADING_SUFFIX.sub("", " ".join(words)).strip()
    if not text or text in GENERIC_HEADINGS:
        return None
    return text


def heading_key(text: str) -> str:
    """Headings that differ only in hamza seat or final ى/ي are one query (الأضاحى, الأضاحي)."""
    return re.sub("[أإآ]", "ا", text).replace("ى", "ي")


def hadith_split(collections) -> Split:
    """`collections`: (prefix, collection data as in the packages' json) pairs.

    One query per distinct heading across the five collections (كتاب الطهارة
    in four of them is one query); relevant: every hadith of every chapter
    with that heading.
    """
    docs, queries, qrels, dropped = [], {}, {}, []
    for prefix, dist, data in collections:
        chapters = {str(c["id"]): c["arabic"] for c in data["chapters"]}
        for h in data["hadiths"]:
            text = h["arabic"].strip()
            if not text:
                continue
            doc_id = f"{prefix}:{h['id']}"
            docs.append({"id": doc_id, "title": "", "text": text, "source": dist, "tags": []})
            heading = chapters.get(str(h["chapterId"]))
            if heading is None:
                continue
            q = heading_query(heading)
            if q is None:
                dropped.append(plain(heading))
                continue
            key = heading_key(q)
            queries.setdefault(key, q)
            qrels.setdefault(key, {})[doc_id] = 1
    ids = {key: f"h{i:03d}" for i, key in enumerate(sorted(queries))}
    split = Split("hadith-chapters", docs,
                  {ids[k]: q for k, q in queries.items()},
                  {ids[k]: rel for k, rel in qrels.items()})
    sizes = sorted(len(r) for r in split.qrels.values())
    split.notes.append(f"{len(docs)} hadiths, {len(split.queries)} headings "
                       f"(dropped: {', '.join(sorted(set(dropped))) or 'none'}); relevant per query "
                       f"{sizes[0]}-{sizes[-1]}, median {sizes[len(sizes) // 2]}")
    return split


def load_hadith_collections():
    import gzip

    import corpus

    corpus.ensure_installed()
    out = []
    for dist, (_, module, relative, prefix) in corpus.HADITH.items():
        with gzip.open(corpus._data_file(module, relative), "rt", encoding="utf-8") as f:
            out.append((prefix, dist, json.load(f)))
    return out


# --- questions ----------------------------------------------------------------

_PASSAGE = re.compile(r"quran:(\d+)(?::(\d+)(?:-(\d+))?)?$")


def passage_ayat(doc_id: str, ayah_counts: dict):
    """The ayah ids a sample passage covers: quran:S (a whole surah), quran:S:A or quran:S:A-B."""
    m = _PASSAGE.match(doc_id)
    if not m:
        return []
    surah = int(m.group(1))
    if m.group(2) is None:
        first, last = 1, ayah_counts.get(surah, 0)
    else:
        first = int(m.group(2))
        last = int(m.group(3) or first)
    return [f"quran:{surah}:{a}" for a in range(first, last + 1)]


def read_questions(path=QUESTIONS) -> list:
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("//"):
                out.append(json.loads(line))
    return out


def questions_split(name, questions, ayat, sample) -> Split:
    """Questions of one split over the ayat and the sample.

    A sample passage (quran:S, quran:S:A-B in the sample) is relevant when it
    contains a relevant ayah: the judgments name ayat, the passages inherit.
    """
    which = name.split("-", 1)[1]
    ayah_counts = {}
    for d in ayat:
        _, s, a = d["id"].split(":")
        ayah_counts[int(s)] = max(ayah_counts.get(int(s), 0), int(a))
    covers = {d["id"]: set(passage_ayat(d["id"], ayah_counts)) for d in sample}
    queries, qrels = {}, {}
    for q in questions:
        if q["split"] != which:
            continue
        rel = {doc: 1 for doc in q["relevant"]}
        for passage, inside in covers.items():
            if inside & rel.keys():
                rel[passage] = 1
        queries[q["id"]] = q["question"]
        qrels[q["id"]] = rel
    split = Split(name, list(ayat) + list(sample), queries, qrels)
    split.notes.append(f"{len(ayat)} ayat + {len(sample)} sample documents, {len(queries)} questions")
    return split.check()


def load_questions_corpus():
    import corpus

    corpus.ensure_installed()
    ayat = list(corpus._quran_documents())
    with open(SAMPLE, encoding="utf-8") as f:
        sample = [json.loads(line) for line in f if line.strip()]
    return ayat, sample


# --- all ----------------------------------------------------------------------

def build(names, news=None, news_queries=NEWS_QUERIES, seed=NEWS_SEED) -> dict:
    """The named splits; the news splits need `news` (the ANT file's path)."""
    out = {}
    if any(n in NEWS_SPLITS for n in names):
        if not news or not Path(news).is_file():
            raise SystemExit(f"{news or '(no --news)'}: the news splits need the ANT news file "
                             "(ant-news.jsonl.gz; see bench/README.md, --news PATH)")
        out.update(news_splits(read_news(news), news_queries, seed))
    if "hadith-chapters" in names:
        out["hadith-chapters"] = hadith_split(load_hadith_collections()).check()
    wanted = [n for n in names if n.startswith("questions-")]
    if wanted:
        ayat, sample = load_questions_corpus()
        questions = read_questions()
        for n in wanted:
            out[n] = questions_split(n, questions, ayat, sample)
    unknown = set(names) - set(ALL_SPLITS)
    if unknown:
        raise SystemExit(f"unknown split(s): {', '.join(sorted(unknown))}; known: {', '.join(ALL_SPLITS)}")
    return {n: out[n] for n in names}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--split", action="append", choices=ALL_SPLITS)
    p.add_argument("--news", help="ant-news.jsonl.gz (needed for the news splits)")
    p.add_argument("--news-queries", type=int, default=NEWS_QUERIES)
    p.add_argument("--seed", type=int, default=NEWS_SEED)
    args = p.parse_args()
    names = args.split or [n for n in DEFAULT_SPLITS if args.news or n not in NEWS_SPLITS]
    for name, s in build(names, args.news, args.news_queries, args.seed).items():
        print(f"{name}: {len(s.documents)} documents, {len(s.queries)} queries")
        for note in s.notes:
            print(f"  {note}")
        for qid in list(s.queries)[:5]:
            print(f"  {qid}: {s.queries[qid]}  -> {len(s.qrels[qid])} relevant")


if __name__ == "__main__":
    main()
